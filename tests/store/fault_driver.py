"""Kill a linreg-ops command after its k-th file operation, for every k, and report what a
reader then finds. Run as a script: ``python fault_driver.py TEMPLATE WORKDIR -- ARGS...``.

The command runs in a forked child of this process (everything is imported once, so a trial
costs only the command's own work). The child counts every call that changes the file
system — os.open for writing, write, pwrite, fsync, ftruncate, rename, replace, link,
symlink, unlink, mkdir, rmdir, chmod, fchmod — and SIGKILLs itself right after the k-th.
No cooperation from the code under test: nothing in linreg-ops knows it is being killed.
One JSON line per trial goes to stdout.
"""

import json
import os
import shutil
import signal
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.figure  # noqa: F401 - imported before the fork, like the rest
import pyarrow.csv
import pyarrow.parquet  # noqa: F401
import sklearn.linear_model
import sklearn.model_selection  # noqa: F401

from linreg_ops import cli, predict, store
from linreg_ops.errors import InputError

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MUTATIONS = (
    "write", "pwrite", "fsync", "ftruncate", "rename", "replace", "link", "symlink",
    "unlink", "remove", "mkdir", "rmdir", "chmod", "fchmod",
)  # fmt: skip


def run_counting(argv: list[str], kill_after: int | None) -> int:
    """Run the command in this process, counting file operations (and dying at one)."""
    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if kill_after is not None and count == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def counted(function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = function(*args, **kwargs)
            step()
            return result

        return wrapper

    real_open = os.open

    def counted_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        fd = real_open(path, flags, *args, **kwargs)
        if flags & WRITE_FLAGS:
            step()
        return fd

    os.open = counted_open
    for name in MUTATIONS:
        setattr(os, name, counted(getattr(os, name)))
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    status = cli.main(argv)
    return count if status == 0 else -1


def state(models_dir: Path) -> dict[str, object]:
    """What a reader finds: the current version, whether it loads whole, and leftovers."""
    try:
        models = predict.load(models_dir)
        predict.stored_test_rows(models)
        current: object = models.version.number
        files = {
            n: store.read_artifact(models.version, n).hex()[:16]
            for n in models.version.manifest.artifacts
        }
        error = None
    except InputError as exc:
        current, files, error = None, {}, str(exc)
    leftovers = sorted(
        str(p.relative_to(models_dir))
        for p in models_dir.rglob("*")
        if p.name.startswith(".link-") or p.name.endswith(".tmp") or p.parent.name == ".staging"
    )
    return {"current": current, "files": files, "error": error, "leftovers": leftovers}


def state_in_child(work: Path) -> dict[str, object]:
    """``state`` in a forked child: this process never starts pyarrow's threads, so every
    fork it makes is of a single-threaded process."""
    pid = os.fork()
    if pid == 0:
        (work / "state.json").write_text(json.dumps(state(work / "models")))
        os._exit(0)
    os.waitpid(pid, 0)
    found: dict[str, object] = json.loads((work / "state.json").read_text())
    return found


def trial(template: Path, work: Path, argv: list[str], kill_after: int | None) -> dict[str, object]:
    models_dir = work / "models"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, models_dir, symlinks=True)
    argv = [a.replace("{models}", str(models_dir)).replace("{work}", str(work)) for a in argv]
    pid = os.fork()
    if pid == 0:  # the child: run, and report the count by exit status (0..250) or a file
        count = run_counting(argv, kill_after)
        (work / "count").write_text(str(count))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    result: dict[str, object] = {"k": kill_after, "killed": killed, **state_in_child(work)}
    if not killed:
        result["count"] = int((work / "count").read_text())
    return result


def main() -> None:
    template, work = Path(sys.argv[1]), Path(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    dry = trial(template, work, argv, None)
    print(json.dumps({"dry": True, **dry}), flush=True)
    results = []
    for k in range(1, int(dry["count"]) + 1):  # type: ignore[call-overload]
        results.append(trial(template, work, argv, k))
        print(json.dumps(results[-1]), flush=True)
    # Killed just before the pointer moved (a whole staged version left behind), then run
    # again: the next writer must clean up and publish.
    last_before = max(int(r["k"]) for r in results if r["current"] == results[0]["current"])  # type: ignore[call-overload]
    trial(template, work, argv, last_before)
    status = run_counting_in_child(argv, work)
    print(json.dumps({"recovery": True, "status": status, **state_in_child(work)}), flush=True)


def run_counting_in_child(argv: list[str], work: Path) -> int:
    models_dir = work / "models"
    argv = [a.replace("{models}", str(models_dir)).replace("{work}", str(work)) for a in argv]
    pid = os.fork()
    if pid == 0:
        os._exit(0 if run_counting(argv, None) >= 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    main()
