"""Constants and small helpers shared by the test suites (importable: tests/ is on pythonpath)."""

import contextlib
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The seed's reference run (../shared/reference/mission-seed.txt).
SEED_R2 = 0.5758
SEED_MSE = 0.5559
SEED_INTERCEPT = -37.023277706064
SEED_COEF = np.array(
    [
        4.48674910e-01,
        9.72425752e-03,
        -1.23323343e-01,
        7.83144907e-01,
        -2.02962058e-06,
        -3.52631849e-03,
        -4.19792487e-01,
        -4.33708065e-01,
    ]
)
SEED_FIRST_PREDICTIONS = np.array(
    [0.71912284, 1.76401657, 2.70965883, 2.83892593, 2.60465725,
     2.01175367, 2.64550005, 2.16875532, 2.74074644, 3.91561473]
)  # fmt: skip
CALIFORNIA_FEATURES = (
    "MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude",
)  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (recursively, links as their targets), to prove nothing changed."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = b"-> " + str(path.readlink()).encode()
        elif path.is_file() and path.name != ".lock":
            found[key] = path.read_bytes()
    return found


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def three_feature_rows(rng: np.random.Generator, n: int):
    """X (n × 3, standard normal) and y = X·(1, −2, 0.5) + N(0, 0.1²): a small problem with
    a known fit, for tests about folders of versions rather than about fitting."""
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=n)


def abc_csv(path: Path, X, y) -> Path:
    """Three features and a target as a CSV with columns a, b, c, y."""
    return write_csv(path, ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())


def fit_model(X, y, names=None, target="y"):
    """A LinearModel fitted the project's way on in-memory arrays (every row, no split)."""
    from linreg_ops.model import LinearModel
    from linreg_ops.moments import MomentStats
    from linreg_ops.training.engines import fit_linear_regression
    from linreg_ops.training.features import feature_statistics

    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    estimator = fit_linear_regression(X, y)
    return LinearModel(
        feature_names=tuple(names or (f"x{i}" for i in range(X.shape[1]))),
        target_name=target,
        coef=np.asarray(estimator.coef_, dtype=np.float64),
        intercept=float(estimator.intercept_),
        stats=feature_statistics(MomentStats.of(X, y), X),
    )


def model_with(coef, intercept, X):
    """A LinearModel with given coefficients and the statistics of ``X`` (for edge cases)."""
    from dataclasses import replace

    model = fit_model(X, X[:, 0] + np.arange(len(X)) % 3)
    return replace(model, coef=np.asarray(coef, dtype=np.float64), intercept=float(intercept))


def collinear_data(seed: int, n: int = 4000, k: int = 10):
    """k near-copies of one signal with large alternating coefficients that cancel."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = x[:, None] + 0.01 * rng.normal(size=(n, k))
    coef = 30.0 * (-1.0) ** np.arange(k) + 0.1
    return X, X @ coef + 0.3 * rng.normal(size=n)


def split_rows(X, y, test_share: float = 0.2):
    """A deterministic head/tail split for synthetic data (rows are already random)."""
    cut = int(len(y) * (1 - test_share))
    return X[:cut], y[:cut], X[cut:], y[cut:]


def tamper(models_dir: Path, name: str, edit, rewrite_sha: bool = False) -> Path:
    """Edit an artifact of the current version in place (as an attacker would: the file is
    read-only, not immutable); with ``rewrite_sha`` also make the manifest agree."""
    import hashlib
    import json
    import os

    version = Path(models_dir) / os.readlink(Path(models_dir) / "current")
    path = version / name
    data = edit(path.read_bytes())
    path.chmod(0o644)
    path.write_bytes(data)
    if rewrite_sha:
        manifest_path = version / "manifest.json"
        manifest = json.loads(manifest_path.read_bytes())
        manifest["artifacts"][name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        manifest_path.chmod(0o644)
        manifest_path.write_text(json.dumps(manifest, indent=2))
    return path


def publish_without_profile(models_dir: Path):
    """Publish, on top of the current version, one as a linreg-ops from before drift
    profiles wrote it (every artifact carried but the profile); returns the version it
    was published on."""
    from linreg_ops.storage import store

    current = store.open_version(models_dir)
    manifest = current.manifest
    with store.writer(models_dir, "an older linreg-ops") as writer:
        writer.publish(
            {},
            {"training_data": manifest.training_data, "split": manifest.split,
             "versions": manifest.versions, "known_answers": manifest.known_answers},
            parent=current,
            carry=tuple(n for n in manifest.artifacts if n != store.DRIFT_PROFILE_JSON),
        )  # fmt: skip
    return current


def stop(process: subprocess.Popen, timeout: float = 20.0, sig: int = signal.SIGTERM) -> str:
    """Stop a server the way an operator would, then kill it if it hangs; always reaped, so
    no still-running Popen is left for the garbage collector (a ResourceWarning in a later
    test). Returns what it printed."""
    process.send_signal(sig)
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    return output or ""


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def linreg_ops_command() -> str:
    """The ``linreg-ops`` script of the test's own interpreter (not whichever is on PATH)."""
    return str(Path(sys.executable).with_name("linreg-ops"))


@dataclass
class Server:
    """A server process on a loopback port; ``output`` (stdout and stderr) once stopped."""

    process: subprocess.Popen[str]
    port: int
    output: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """SIGTERM, kill if it hangs, reap (``stop``); keeps and returns what it printed."""
        self.output = stop(self.process)
        return self.output


def start_server(
    command: Sequence[str],
    port: int,
    *,
    ready: str = "/ready",
    timeout: float = 30.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``command`` (a server that will listen on ``port``) and return once ``ready``
    answers 2xx. If it exits first or the deadline passes, it is stopped and reaped and the
    AssertionError holds its output (its stderr is merged into it), so a failed start says
    why."""
    process = subprocess.Popen(
        list(command), cwd=cwd, env=None if env is None else dict(env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    server = Server(process, port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}{ready}", timeout=1):
                return server
        except OSError:
            if process.poll() is not None:
                problem = f"exited with {process.returncode} before {ready} answered"
            elif time.monotonic() > deadline:
                problem = f"did not answer {ready} within {timeout:g} s"
            else:
                time.sleep(0.1)
                continue
            output = server.stop()
            raise AssertionError(
                f"{shlex.join(command)} {problem}; it printed:\n{output}"
            ) from None


@contextlib.contextmanager
def served(
    models_dir: Path,
    *options: str,
    ready: str = "/ready",
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """``linreg-ops serve --models-dir models_dir --port <free> *options`` as a real process,
    ready (see ``start_server``); stopped and reaped on leaving, its output then in
    ``Server.output``."""
    port = free_port()
    command = [linreg_ops_command(), "serve", "--models-dir", str(models_dir),
               "--port", str(port), *options]  # fmt: skip
    server = start_server(command, port, ready=ready, timeout=timeout, env=env)
    try:
        yield server
    finally:
        server.stop()


def integer_model(
    weights, input_scale, input_zero_point, *, input_bits, multiplier, shift, bias=0, output_bits=16
):
    """An IntegerLinearModel with chosen integers (accumulator and output scale 1): the
    arithmetic's edge cases without a training run."""
    from linreg_ops.model import IntegerLinearModel

    weights = np.asarray(weights, dtype=np.int64)
    return IntegerLinearModel(
        feature_names=tuple(f"x{j}" for j in range(weights.size)),
        target_name="y",
        weight_dtype="int64",
        weights=weights,
        accumulator_scale=1.0,
        rounding="nearest",
        bias=int(bias),
        input_bits=input_bits,
        input_scale=np.asarray(input_scale, dtype=np.float32),
        input_zero_point=np.asarray(input_zero_point, dtype=np.int64),
        calibration="minmax",
        output_bits=output_bits,
        output_scale=1.0,
        multiplier=int(multiplier),
        shift=int(shift),
    )


def device_node(path: Path) -> Path:
    """A character device like /dev/null (1, 3) at ``path``: the real /dev/null is never put
    at risk. Creating one needs root (CAP_MKNOD)."""
    import os
    import stat

    import pytest

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a character device (mknod) needs root")
    return path


def build_once(run_dir: Path, name: str, build) -> Path:
    """The folder ``run_dir/name``, made by ``build(folder)`` once for every process that asks:
    the first builds it under a file lock while the others wait, then all reuse it. Only a
    finished build is reused (``name.done`` is written after it returns): one that raised or
    was killed part-way is wiped and redone by the next caller."""
    import shutil

    from filelock import FileLock

    folder = run_dir / name
    done = run_dir / f"{name}.done"
    with FileLock(run_dir / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def answer_json(handler, status: int, body: bytes) -> None:
    """Answer a proxied request with ``status`` and a JSON ``body``."""
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
