"""Break a linreg-ops command at each of its file operations, or starve it of space, and
report what a reader then finds. Run as a script:
``python fault_driver.py MODE TEMPLATE WORKDIR -- ARGS...`` with MODE one of

- ``kill``: SIGKILL the command right after its k-th file operation, for every k;
- ``ENOSPC`` / ``EDQUOT``: make its k-th file operation fail with that error instead of
  happening, for every k (a full disk, a quota), and let the command go on from there;
- ``inodes`` / ``bytes``: run it on a fresh tmpfs (root only) holding a copy of TEMPLATE
  with 0, 1, 2, … free inodes or free pages, until it succeeds (and two budgets beyond).

``python fault_driver.py serve`` takes such requests as JSON lines on stdin instead (the
tests start one per session, so the imports below are paid once, not once per case).

The command runs in a forked child of this process (everything is imported once, so a trial
costs only the command's own work). File operations are every call that changes the file
system — os.open for writing, write, pwrite, fsync, ftruncate, rename, replace, link,
symlink, unlink, mkdir, rmdir, chmod, fchmod. No cooperation from the code under test:
nothing in linreg-ops knows it is being broken. One JSON line per trial goes to stdout.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for helpers

import matplotlib.figure  # noqa: F401 - imported before the fork, like the rest
import pyarrow.csv
import pyarrow.parquet  # noqa: F401
import sklearn.linear_model
import sklearn.model_selection  # noqa: F401

from helpers import snapshot
from linreg_ops import cli, pipeline, report  # noqa: F401 - imported once
from linreg_ops.errors import InputError
from linreg_ops.inference import loading
from linreg_ops.storage import store

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MUTATIONS = (
    "write", "pwrite", "fsync", "ftruncate", "rename", "replace", "link", "symlink",
    "unlink", "remove", "mkdir", "rmdir", "chmod", "fchmod",
)  # fmt: skip
ERRNOS = {"ENOSPC": errno.ENOSPC, "EDQUOT": errno.EDQUOT}
PAGE = os.sysconf("SC_PAGE_SIZE")
BEYOND = 2  # budgets tried after the first that succeeds
EIGHTHS = 8
NEXT_WRITER = [
    "export",
    "--format",
    "onnx",
    "--models-dir",
    "{models}",
    "--output",
    "{work}/next.onnx",
]


def run_counting(argv: list[str], at: int | None, fault: str, work: Path) -> int:
    """Run the command in this process, counting file operations; at the ``at``-th, name it
    in ``work/operation`` and die right after it (``kill``) or fail it with an error
    (``ENOSPC``, ``EDQUOT``). Returns the count if the command succeeded, else -1."""
    count = 0

    def step(name: str) -> None:
        nonlocal count
        count += 1
        if count == at:
            (work / "operation").write_text(name)
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            code = ERRNOS[fault]
            raise OSError(code, os.strerror(code))

    def counted(function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            if fault == "kill":  # killed right after the operation happened
                result = function(*args, **kwargs)
                step(function.__name__)
                return result
            step(function.__name__)  # failed instead of happening
            return function(*args, **kwargs)

        return wrapper

    real_open = os.open

    def counted_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not flags & WRITE_FLAGS:
            return real_open(path, flags, *args, **kwargs)
        return counted(real_open)(path, flags, *args, **kwargs)

    os.open = counted_open
    for name in MUTATIONS:
        setattr(os, name, counted(getattr(os, name)))
    status = cli.main(argv)
    return count if status == 0 else -1


def seed_links_ok(models_dir: Path, version: store.Version) -> bool:
    """Every seed path links through ``current`` to what the current version holds, and
    no other seed path does."""
    for name in store.SEED_PATHS:
        link = models_dir / name
        linked = link.is_symlink() and os.readlink(link) == f"{store.CURRENT}/{name}"
        if linked != (name == store.MANIFEST_JSON or version.has(name)):
            return False
    return True


def state(models_dir: Path) -> dict[str, object]:
    """What a reader finds: the current version, whether it loads whole, and leftovers."""
    try:
        models = loading.load(models_dir)
        loading.stored_test_rows(models)
        current: object = models.version.number
        files = {
            n: store.read_artifact(models.version, n).hex()[:16]
            for n in models.version.manifest.artifacts
        }
        error = None
        links = seed_links_ok(models_dir, models.version)
    except InputError as exc:
        current, files, error, links = None, {}, str(exc), False
    leftovers = sorted(
        str(p.relative_to(models_dir))
        for p in models_dir.rglob("*")
        if p.name.startswith(".link-") or p.name.endswith(".tmp") or p.parent.name == ".staging"
    )
    try:  # every alias's holder, and the moves the log says happened
        holders: object = store.aliases(models_dir)
        logged: object = [
            [m.alias, m.action, m.version, m.previous] for m in store.moves(models_dir)
        ]
        numbers: object = store.version_numbers(models_dir)
        for number in store.version_numbers(models_dir):  # each one whole
            version = store.open_version(models_dir, number)
            for name in version.manifest.artifacts:
                store.read_artifact(version, name)
    except InputError as exc:
        holders, logged, numbers = None, str(exc), None
    return {
        "current": current,
        "files": files,
        "error": error,
        "leftovers": leftovers,
        "seed_links_ok": links,
        "aliases": holders,
        "moves": logged,
        "versions": numbers,
    }


def in_child(work: Path, function, *args: object) -> object:  # type: ignore[no-untyped-def]
    """``function(*args)`` in a forked child, its JSON answer read back: this process never
    starts pyarrow's threads, so every fork it makes is of a single-threaded process."""
    answer = work / "answer.json"
    pid = os.fork()
    if pid == 0:
        try:
            answer.write_text(json.dumps(function(*args)))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return json.loads(answer.read_text())


def outline(root: Path) -> dict[str, object]:
    """Every file's bytes and link's target (``helpers.snapshot``), and every folder inside
    ``versions`` and ``.staging``: an empty orphan version folder is garbage too."""
    folders = sorted(
        str(p.relative_to(root))
        for pattern in ("*/versions/*", "*/.staging/*")
        for p in root.glob(pattern)
    )
    files = {key: value.hex() for key, value in snapshot(root).items()}
    return {"files": files, "folders": folders}


def prepare(template: Path, root: Path, argv: list[str]) -> list[str]:
    """``root/models`` a copy of the template (nothing, if it is an empty folder); the
    command's placeholders filled in."""
    if any(template.iterdir()):
        shutil.copytree(template, root / "models", symlinks=True)
    return [a.replace("{models}", str(root / "models")).replace("{work}", str(root)) for a in argv]


def trial(
    template: Path, work: Path, argv: list[str], at: int | None, fault: str, root: Path
) -> dict[str, object]:
    """One run of the command, broken at operation ``at`` (None: not broken)."""
    argv = prepare(template, root, argv)
    before = outline(root)
    pid = os.fork()
    if pid == 0:  # the child: run, and report the count and status through files
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        sys.stderr = open(work / "stderr", "w")  # noqa: SIM115
        count = run_counting(argv, at, fault, work)
        sys.stderr.close()
        (work / "count").write_text(str(count))
        os._exit(0)
    _, wait_status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGKILL
    result: dict[str, object] = {"k": at, "killed": killed}
    if at is not None:
        result["operation"] = (work / "operation").read_text()
    if not killed:
        count = int((work / "count").read_text())
        result["status"] = 0 if count >= 0 else 2  # the exit status is checked below
        result["count"] = count
        result["stderr"] = (work / "stderr").read_text()
        result["unchanged"] = outline(root) == before
    if killed or count >= 0:  # a reader's view; a refused command is judged by `unchanged`
        result.update(in_child(work, state, root / "models"))  # type: ignore[arg-type]
    return result


def exit_status(argv: list[str], root: Path) -> int:
    """``linreg-ops ARGS`` run whole in a forked child, unbroken: its exit status."""
    pid = os.fork()
    if pid == 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        argv = [
            a.replace("{models}", str(root / "models")).replace("{work}", str(root)) for a in argv
        ]
        os._exit(cli.main(argv))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fresh(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


def each_operation(template: Path, work: Path, argv: list[str], fault: str) -> None:
    """A dry run, then one trial per file operation; after a kill just before the switch, or
    a success that left seed paths unlinked, the next writer's view."""
    root = work / "root"
    dry = trial(template, work, argv, None, fault, fresh(root))
    print(json.dumps({"dry": True, **dry}), flush=True)
    results = []
    for k in range(1, int(dry["count"]) + 1):  # type: ignore[call-overload]
        results.append(trial(template, work, argv, k, fault, fresh(root)))
        if fault != "kill" and results[-1]["status"] == 0 and not results[-1]["seed_links_ok"]:
            # published, seed paths half-linked: the next writer repairs them, even one
            # that publishes nothing (an export)
            status = exit_status(NEXT_WRITER, root)
            results[-1]["next_writer"] = {
                "status": status,
                **in_child(work, state, root / "models"),
            }  # type: ignore[dict-item]
        print(json.dumps(results[-1]), flush=True)
    if fault == "kill":
        # Killed just before the pointer moved (a whole staged version left behind), then
        # run again: the next writer must clean up and publish.
        first = results[0]["current"]
        last_before = max(int(r["k"]) for r in results if r["current"] == first)  # type: ignore[call-overload]
        trial(template, work, argv, last_before, fault, fresh(root))
        status = exit_status(argv, root)
        print(
            json.dumps(
                {"recovery": True, "status": status, **in_child(work, state, root / "models")}
            ),
            flush=True,
        )  # type: ignore[dict-item]


def mount_tmpfs(root: Path, size: int, inodes: int) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes},mode=0755", "tmpfs", str(root)],
        check=True, capture_output=True,
    )  # fmt: skip


def unmount(root: Path) -> None:
    subprocess.run(["umount", str(root)], check=True, capture_output=True)


def used(root: Path) -> tuple[int, int]:
    """Pages and inodes in use on the file system at ``root``."""
    info = os.statvfs(root)
    return (info.f_blocks - info.f_bfree) * info.f_frsize // PAGE, info.f_files - info.f_ffree


def every_budget(template: Path, work: Path, argv: list[str], resource: str) -> None:
    """The command on a tmpfs holding the template and 0, 1, 2, … free inodes, or free pages
    from 0 up in steps of an eighth of what it takes (every page when that is ≤ 8)."""
    root = fresh(work / "root")
    roomy_pages, roomy_inodes = 1 << 16, 1 << 16
    step = 1
    mount_tmpfs(root, roomy_pages * PAGE, roomy_inodes)
    try:
        prepare(template, root, argv)
        pages, inodes = used(root)
        if resource == "bytes":
            exit_status(argv, root)  # measure what a run takes
            step = max(1, (used(root)[0] - pages) // EIGHTHS)
    finally:
        unmount(root)
    # size=0 or nr_inodes=0 would mean "no limit": an empty template starts at one page
    budget = max(0, 1 - pages) if resource == "bytes" else 0
    first_success = None
    while first_success is None or budget <= first_success + BEYOND * step:
        size = (pages + budget) * PAGE if resource == "bytes" else roomy_pages * PAGE
        count = inodes + budget if resource == "inodes" else roomy_inodes
        mount_tmpfs(root, size, count)
        try:
            result = trial(template, work, argv, None, "none", root)
        finally:
            unmount(root)
        print(json.dumps({"budget": budget, **result}), flush=True)
        if result["status"] == 0 and first_success is None:
            first_success = budget
        budget += step
        if budget > 10_000:
            raise SystemExit("no budget up to 10,000 was enough")


def drive(mode: str, template: Path, work: Path, argv: list[str]) -> None:
    if mode in ("inodes", "bytes"):
        every_budget(template, work, argv, mode)
    else:
        each_operation(template, work, argv, mode)


def serve() -> None:
    """Run requests, one JSON line each on stdin (``[mode, template, work, argv]``), so the
    imports above are paid once per test session, not once per case: each request runs in a
    forked child — this process stays as it was after importing, single-threaded — which
    writes its lines to stdout and its stderr to ``work/driver.stderr``; then one line
    ``{"done": exit status}``."""
    for line in sys.stdin:
        mode, template, work, argv = json.loads(line)
        Path(work).mkdir(parents=True, exist_ok=True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(Path(work) / "driver.stderr", "w") as err:
                    os.dup2(err.fileno(), 2)
                drive(mode, Path(template), Path(work), argv)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"done": os.waitstatus_to_exitcode(status)}), flush=True)


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    mode, template, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    drive(mode, template, work, sys.argv[sys.argv.index("--") + 1 :])


if __name__ == "__main__":
    main()
