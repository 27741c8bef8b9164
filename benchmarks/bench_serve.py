"""HTTP serving under bounded load on 127.0.0.1: linreg-ops beside `mlflow models serve`.

    python benchmarks/bench_serve.py [--models-dir models] [--seconds 10]

Needs `wrk` (Debian: apt-get install wrk) and MLflow (the `mlflow` extra, which `make test`
installs); the MLflow side serves the same float model, exported with `linreg-ops export
--format mlflow` (a pyfunc over model.json). Both servers get one worker and the same model; wrk runs one thread, so the two cores are shared by one
server and one client. Every load is bounded twice: a request count and a time cap. Only
loopback addresses are used. Prints a table and the ratios (linreg-ops / MLflow).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from linreg_ops import pipeline
from linreg_ops.inference import loading

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOADS = [  # (name, rows per request, connections, request cap)
    ("1 row, c=1", 1, 1, 5_000),
    ("1 row, c=8", 1, 8, 20_000),
    ("1 row, c=32", 1, 32, 20_000),
    ("1000 rows, c=4", 1000, 4, 2_000),
]

# wrk keeps its clock running for the whole -d even after a thread stops, so the script
# times the capped run itself: wall clock at the first and at the last counted response.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
cap, seen, first, last = {cap}, 0, 0, 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
local function now_us()
  local p = io.popen("date +%s%6N"); local t = p:read("*n"); p:close(); return t
end
function response(status, headers, body)
  seen = seen + 1
  if seen == 1 then first = now_us() end
  if seen == cap then last = now_us(); wrk.thread:stop() end
end
function done(summary, latency, requests)
  local e = summary.errors
  local t = threads[1]
  local started, stopped = t:get("first"), t:get("last")
  local count, elapsed = summary.requests, summary.duration
  if stopped > 0 then count, elapsed = cap - 1, stopped - started end
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
    count, elapsed, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    startup_s: float
    idle_rss_mb: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (MLflow forks workers)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def start(
    name: str, command: list[str], ready_path: str, port: int, env: dict | None = None
) -> Server:
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited during start-up: {' '.join(command)}")
        try:
            with urllib.request.urlopen(url + ready_path, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.02)
    else:
        raise SystemExit(f"{name} was not ready after 120 s")
    startup = time.perf_counter() - started
    time.sleep(2.0)  # let it settle before reading idle memory
    return Server(name, process, url, startup, tree_rss_mb(process.pid))


def stop(server: Server) -> None:
    os.killpg(server.process.pid, 15)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, 9)


def wrk(url: str, body: Path, connections: int, cap: int, seconds: int, workdir: Path) -> dict:
    script = workdir / f"load-{connections}-{cap}.lua"
    script.write_text(WRK_SCRIPT.format(body=body, cap=cap))
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    result = json.loads(
        next(line for line in output.splitlines() if line.startswith("RESULT "))[7:]
    )
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def mlflow_model(models_dir: Path, workdir: Path) -> Path:
    """The same float model as an MLflow model (``linreg-ops export --format mlflow``: a
    pyfunc that reads model.json and predicts through linreg-ops)."""
    target = workdir / "mlflow-model"
    pipeline.export(models_dir, "mlflow", "float", target)
    return target


def payloads(models_dir: Path, workdir: Path) -> dict[int, Path]:
    """dataframe_split bodies (the MLflow client's format) of 1 and 1000 test rows."""
    test = loading.stored_test_rows(loading.load(models_dir))
    columns = list(test.columns[:-1])
    bodies = {}
    for rows in {load[1] for load in LOADS}:
        data = test.values[:rows, :-1].tolist()
        path = workdir / f"split-{rows}.json"
        path.write_text(json.dumps({"dataframe_split": {"columns": columns, "data": data}}))
        bodies[rows] = path
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=int, default=10, help="time cap per load")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_serve needs wrk: apt-get install wrk")
    models_dir = args.models_dir.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    bodies = payloads(models_dir, workdir)

    servers = []
    port = free_port()
    ours = [str(Path(sys.executable).with_name("linreg-ops")), "serve",
            "--models-dir", str(models_dir),
            "--port", str(port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
    servers.append(("linreg-ops", ours, "/ready", port, None))
    if not args.skip_mlflow:
        model = mlflow_model(models_dir, workdir)
        port = free_port()
        mlflow = [str(BIN / "mlflow"), "models", "serve", "-m", str(model),
                  "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
                  "--workers", "1"]  # fmt: skip
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        servers.append(("mlflow", mlflow, "/ping", port, env))

    results: dict[str, dict] = {}
    print("| server | load | req/s | rows/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, command, ready_path, port, env in servers:
        server = start(name, command, ready_path, port, env)
        try:
            wrk(server.url + "/invocations", bodies[1], 8, 500, 2, workdir)  # warm-up
            for load, rows, connections, cap in LOADS:
                result = wrk(
                    server.url + "/invocations",
                    bodies[rows],
                    connections,
                    cap,
                    args.seconds,
                    workdir,
                )
                results[f"{name}|{load}"] = result
                print(
                    f"| {name} | {load} | {result['rps']:,.0f} | {result['rps'] * rows:,.0f} | "
                    f"{result['p50_us'] / 1000:.1f} | {result['p99_us'] / 1000:.1f} | "
                    f"{result['errors']} |",
                    flush=True,
                )
            results[f"{name}|start"] = {"startup_s": server.startup_s, "rss_mb": server.idle_rss_mb}
        finally:
            stop(server)
    print()
    print("| server | start-up to ready, s | idle RSS, MB |")
    print("|---|---:|---:|")
    for name, *_ in servers:
        start_info = results[f"{name}|start"]
        print(f"| {name} | {start_info['startup_s']:.2f} | {start_info['rss_mb']:.0f} |")
    if not args.skip_mlflow:
        print()
        print("| load | req/s ratio (linreg-ops / mlflow) | p99 ratio |")
        print("|---|---:|---:|")
        for load, *_ in LOADS:
            ours_result, theirs = results[f"linreg-ops|{load}"], results[f"mlflow|{load}"]
            rps_ratio = ours_result["rps"] / theirs["rps"]
            p99_ratio = ours_result["p99_us"] / max(theirs["p99_us"], 1)
            print(f"| {load} | {rps_ratio:.1f}× | {p99_ratio:.2f}× |")
        ours_start, theirs_start = results["linreg-ops|start"], results["mlflow|start"]
        print(
            f"start-up {theirs_start['startup_s'] / ours_start['startup_s']:.1f}× faster, "
            f"idle RSS {theirs_start['rss_mb'] / ours_start['rss_mb']:.1f}× smaller"
        )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
