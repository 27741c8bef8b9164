"""HTTP serving side by side: linreg-ops, a hand-written FastAPI app, a framework-free ASGI
app (the floor) and MLflow's scoring server, pinned, interleaved, in one run.

    python benchmarks/bench_serve.py [--models-dir models] [--repeats 5] [--seconds 10]
                                     [--variants linreg-ops,bare-fastapi,raw-asgi,mlflow,v2]
                                     [--skip-mlflow] [--quick] [--json results.json]

Needs Debian's ``wrk`` (``apt-get install -y wrk``), ``taskset`` and two CPUs; a trained
models folder (``make run``); MLflow (the ``mlflow`` extra) unless ``--skip-mlflow``.

Method. Every server runs one worker on 127.0.0.1, pinned to CPU 0; wrk runs one thread,
pinned to CPU 1. Each repeat starts every peer once, in the order of ``PEERS`` (A B C A B C
…), measures its start-up to ready (from the command to the first 200 of its ready path) and
idle RSS (its process tree, 2 s after ready), checks that every route answers 200 with one
prediction per row (and, on the float routes, ``X @ coef + b`` of those rows to 1e-9), warms
each route up, then runs every load on every route it serves, and stops it. Every load is
bounded twice, by a request count and by ``--seconds``; the rate is counted from the first to
the last response. Printed: the median [min–max] over the repeats of req/s, p50 and p99, and
of each repeat's ratio to the bare FastAPI app and to the raw ASGI app measured in the same
repeat. ``--json`` also writes every repeat's figures.

Peers and variants are the ``PEERS`` table (name, command, ready path, routes, environment)
and routes the ``ROUTES`` table; ``--variants`` picks the peers to run. The variants
``linreg-ops metrics off`` (``--no-metrics``) and ``linreg-ops logs off`` (``--access-log
off``) are the same server with one kind of bookkeeping off: a last table prints each one's
req/s as a ratio to ``linreg-ops`` (metrics and JSON logs on, the defaults) in the same
repeat. A full run (6 peers, 4 routes, 5 repeats, 10 s caps) takes about 25 minutes on an idle
2-core machine; ``--quick`` (1 repeat, 2 s caps, a tenth of the requests) about 2.

Fairness: every peer gets the same bytes for a route — the first rows of the stored test split
(``models/test_split.csv``) — so it parses what linreg-ops parses:

* ``/invocations float``: ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``
  (what MLflow's own client sends), to every peer;
* ``/predict float`` and ``/predict integer``: ``{"instances": [[...], ...], "model": "float"``
  or ``"integer"}``, to every peer but MLflow, which has no such route. The bare apps ignore
  ``model`` and answer the float ``X @ coef + b``: the integer rows compare linreg-ops's
  integer-only model with the hand-written float app, the bar issue 15 sets;
* ``/invocations integer``: the ``dataframe_split`` body to ``/invocations?model=integer``
  (the bare apps ignore the query, as above).

The bare apps (``benchmarks/peers``) validate nothing: they are the yardstick of what
checking every input costs.
"""

import argparse
import csv
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SERVER_CPU, CLIENT_CPU = 0, 1
BARE, FLOOR = "bare-fastapi", "raw-asgi"  # the yardstick and the floor every ratio is taken to
SETTLE_SECONDS = 2.0  # after ready, before reading idle memory
START_TIMEOUT_SECONDS = 120
PACKAGES_SHOWN = ("linreg-ops", "fastapi", "uvicorn", "uvloop", "httptools", "orjson", "numpy",
                  "mlflow")  # fmt: skip


@dataclass(frozen=True)
class Load:
    name: str
    rows: int  # per request
    connections: int
    cap: int  # requests; the time cap is --seconds


LOADS = (
    Load("1 row, c=1", 1, 1, 5_000),
    Load("1 row, c=8", 1, 8, 20_000),
    Load("1000 rows, c=4", 1000, 4, 2_000),
)


@dataclass(frozen=True)
class Route:
    """A route and the JSON body built from (feature names, rows); routes of one ``group``
    (the same model on the same rows) share a table and are compared with the bare apps'
    route of that name."""

    name: str
    path: str
    body: Callable[[list[str], list[list[float]]], dict[str, Any]]
    group: str = ""
    float_model: bool = True  # answers X @ coef + b (checked before timing)

    @property
    def table(self) -> str:
        return self.group or self.name


ROUTES = (
    Route("/invocations float", "/invocations",
          lambda columns, rows: {"dataframe_split": {"columns": columns, "data": rows}}),
    Route("/predict float", "/predict",
          lambda columns, rows: {"instances": rows, "model": "float"}),
    Route("/predict integer", "/predict",
          lambda columns, rows: {"instances": rows, "model": "integer"}, float_model=False),
    Route("/invocations integer", "/invocations?model=integer",
          lambda columns, rows: {"dataframe_split": {"columns": columns, "data": rows}},
          group="/invocations integer", float_model=False),
    # the Open Inference Protocol (issue 16), printed beside /invocations and compared with
    # the bare apps' /invocations: one FP64 tensor [N, d], JSON in and out
    Route("/v2 infer float", "/v2/models/linreg-ops/infer",
          lambda columns, rows: {"inputs": [{"name": "input", "shape": [len(rows), len(columns)],
                                             "datatype": "FP64", "data": rows}]},
          group="/invocations float"),
)  # fmt: skip
EVERY_ROUTE = ("/invocations float", "/predict float", "/predict integer", "/invocations integer")


@dataclass(frozen=True)
class Peer:
    """A server to measure: its command and extra environment (``{placeholders}`` filled by
    ``placeholders``), the GET path that answers 200 once it is ready, the routes it serves."""

    name: str
    command: tuple[str, ...]
    ready: str
    routes: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


LINREG_OPS = ("{bin}/linreg-ops", "serve", "--models-dir", "{models_dir}", "--host", "127.0.0.1",
              "--port", "{port}", "--workers", "1", "--log-level", "warning")  # fmt: skip
UVICORN = ("{python}", "-m", "uvicorn", "--factory", "--app-dir", "{peers}", "--host",
           "127.0.0.1", "--port", "{port}", "--workers", "1", "--loop", "uvloop", "--http",
           "httptools", "--no-access-log", "--log-level", "warning")  # fmt: skip
MLFLOW = ("{bin}/mlflow", "models", "serve", "-m", "{mlflow_model}", "--env-manager", "local",
          "--host", "127.0.0.1", "--port", "{port}", "--workers", "1")  # fmt: skip
BARE_ENV = {"BENCH_MODEL_JSON": "{model_json}"}

PEERS = (
    Peer("linreg-ops", LINREG_OPS, "/ready", EVERY_ROUTE),
    # the variants: the same server with one kind of bookkeeping off, compared with linreg-ops
    Peer("linreg-ops metrics off", (*LINREG_OPS, "--no-metrics"), "/ready", EVERY_ROUTE),
    Peer("linreg-ops logs off", (*LINREG_OPS, "--access-log", "off"), "/ready", EVERY_ROUTE),
    Peer(BARE, (*UVICORN, "bare_fastapi:create_app"), "/health", EVERY_ROUTE, BARE_ENV),
    Peer(FLOOR, (*UVICORN, "raw_asgi:create_app"), "/health", EVERY_ROUTE, BARE_ENV),
    Peer("mlflow", MLFLOW, "/ping", ("/invocations float",), {"PATH": "{bin}:{PATH}"}),
    # /v2 against /invocations on the same server (issue 16: ≥ 80 % of its single-row req/s)
    Peer("v2", LINREG_OPS, "/ready", ("/invocations float", "/v2 infer float")),
)
# A variant is one more Peer whose name starts with "linreg-ops ": its req/s is also printed
# as a ratio to linreg-ops's in the same repeat (metrics on/off, logs on/off).
DEFAULT_VARIANTS = ("linreg-ops", "linreg-ops metrics off", "linreg-ops logs off", BARE, FLOOR,
                    "mlflow")  # fmt: skip
VARIANT_BASE = "linreg-ops"

# wrk's main thread sleeps for the whole -d whatever its threads do, so the script ends the run
# itself: at the cap-th response it stops the thread and sends wrk SIGINT (wrk's own "stop
# now"), through LuaJIT's FFI, which also gives a microsecond monotonic clock. The rate is
# taken between the first and the cap-th response, so connecting is not counted.
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
int getpid(void);
int kill(int pid, int sig);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
cap, seen, first, last = {cap}, 0, 0, 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  seen = seen + 1
  if seen == 1 then first = now_us() end
  if seen == cap then
    last = now_us()
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  local t = threads[1]
  local started, stopped = t:get("first"), t:get("last")
  local count, elapsed, by = summary.requests, summary.duration, "time"
  if stopped > 0 then count, elapsed, by = cap - 1, stopped - started, "count" end
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "ended_by": "%s"}}\\n',
    count, elapsed, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, by))
end
"""


Bodies = dict[tuple[str, int], Path]  # (route, rows per request) → the request body's file
Expected = dict[int, np.ndarray]  # rows per request → the float model's predictions
Run = dict[str, Any]  # one wrk run: requests, duration_us, p50_us, p99_us, errors, ended_by, rps
Results = dict[tuple[str, str, str], list[Run]]  # (peer, route, load) → one run per repeat
Startups = dict[str, list[dict[str, float]]]  # peer → start-up to ready and idle RSS per repeat


@dataclass
class Server:
    peer: Peer
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    startup_s: float = 0.0
    idle_rss_mb: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def start(peer: Peer, placeholders: dict[str, str], workdir: Path) -> Server:
    """Start ``peer`` on CPU 0 and wait until its ready path answers 200."""
    port = free_port()
    values = {**placeholders, "port": str(port)}
    command = ["taskset", "-c", str(SERVER_CPU), *(part.format(**values) for part in peer.command)]
    env = {**os.environ, **{name: value.format(**values) for name, value in peer.env.items()}}
    log = workdir / f"{peer.name.replace(' ', '_').replace('/', '_')}.log"
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(peer, process, f"http://127.0.0.1:{port}", log)
    while time.perf_counter() - started < START_TIMEOUT_SECONDS:
        if process.poll() is not None:
            raise SystemExit(f"{peer.name} exited during start-up:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + peer.ready, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.01)
    else:
        stop(server)
        raise SystemExit(f"{peer.name} was not ready after {START_TIMEOUT_SECONDS} s")
    server.startup_s = time.perf_counter() - started
    time.sleep(SETTLE_SECONDS)
    server.idle_rss_mb = tree_rss_mb(process.pid)
    return server


def stop(server: Server) -> None:
    os.killpg(server.process.pid, 15)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, 9)
        server.process.wait()


def check_answers(server: Server, route: Route, bodies: Bodies, expected: Expected) -> None:
    """Refuse to time a route that does not answer 200 with one prediction per row, or, for
    the float model, with other numbers than ``X @ coef + b`` on the same rows."""
    for rows in sorted({load.rows for load in LOADS}):
        request = urllib.request.Request(
            server.url + route.path,
            data=bodies[route.name, rows].read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except OSError as exc:
            raise SystemExit(f"{server.peer.name} {route.name}: {exc}") from None
        if "outputs" in answer:  # the Open Inference Protocol's answer
            answer = {"predictions": answer["outputs"][0]["data"]}
        predictions = answer.get("predictions", ())
        if len(predictions) != rows or (
            route.float_model and not np.allclose(predictions, expected[rows], rtol=1e-9, atol=0)
        ):
            raise SystemExit(
                f"{server.peer.name} {route.name}: {rows} rows, answer {str(answer)[:300]}"
            )


def wrk(url: str, body: Path, connections: int, cap: int, seconds: int, workdir: Path) -> Run:
    """One bounded load from CPU 1: wrk's RESULT line, with the rate in req/s."""
    script = workdir / "load.lua"
    script.write_text(WRK_SCRIPT.format(body=body, cap=cap))
    command = ["taskset", "-c", str(CLIENT_CPU), "wrk", "-t1", f"-c{connections}",
               f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    line = next((line for line in output.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result for {url}:\n{output}")
    result: Run = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def read_test_rows(models_dir: Path, count: int) -> tuple[list[str], list[list[float]]]:
    """The feature names and the first ``count`` feature rows of the stored test split (the
    features, then the target)."""
    path = models_dir / "test_split.csv"
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = [[float(value) for value in row[:-1]] for row in itertools.islice(reader, count)]
    if len(rows) < count:
        raise SystemExit(f"{path} holds {len(rows)} rows; the batch load needs {count}")
    return header[:-1], rows


def write_bodies(
    models_dir: Path, model_json: Path, routes: list[Route], workdir: Path
) -> tuple[Bodies, Expected]:
    """One body file per route and batch size, the same bytes for every peer; and the float
    model's predictions of those rows, which every float route must answer."""
    sizes = sorted({load.rows for load in LOADS})
    columns, rows = read_test_rows(models_dir, max(sizes))
    bodies = {}
    for index, route in enumerate(routes):
        for size in sizes:
            path = workdir / f"body-{index}-{size}.json"
            path.write_text(json.dumps(route.body(columns, rows[:size])))
            bodies[route.name, size] = path
    model = json.loads(model_json.read_bytes())
    predictions = np.asarray(rows) @ np.asarray(model["coef"]) + model["intercept"]
    return bodies, {size: predictions[:size] for size in sizes}


def export_mlflow(models_dir: Path, workdir: Path) -> Path:
    """The same float model as an MLflow model, exported the way a user would."""
    target = workdir / "mlflow-model"
    subprocess.run(
        [str(Path(sys.executable).with_name("linreg-ops")), "export", "--format", "mlflow",
         "--model", "float", "--models-dir", str(models_dir), "--output", str(target)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return target


def spread(values: list[float], spec: str) -> str:
    """median [min–max], or the value alone for one repeat."""
    if not values:
        return "–"
    middle = format(statistics.median(values), spec)
    if len(values) == 1:
        return middle
    return f"{middle} [{format(min(values), spec)}–{format(max(values), spec)}]"


def ratios(runs: list[Run], baseline: list[Run] | None, key: str) -> str:
    """Each repeat's ``key`` over the baseline's in the same repeat: median [min–max]."""
    if not baseline:
        return "–"
    pairs = zip(runs, baseline, strict=True)
    return spread([run[key] / max(base[key], 1e-9) for run, base in pairs], ".2f") + "×"


def print_tables(
    peers: list[Peer], routes: list[Route], results: Results, startups: Startups
) -> None:
    """One table per load, each route's peers side by side; then start-up and memory."""
    print(
        f"\nMedian [min–max] over the repeats; a ratio is taken per repeat, over {BARE}'s (or "
        f"{FLOOR}'s) figure on the same route in the same repeat."
    )
    by_name = {route.name: route for route in routes}
    for load in LOADS:
        print(f"\n### {load.name} ({load.cap:,} requests at most)\n")
        print(f"| route | peer | req/s | p50 ms | p99 ms | req/s ÷ {BARE} | p99 ÷ {BARE} "
              f"| req/s ÷ {FLOOR} | errors | ended by the time cap |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for table in dict.fromkeys(route.table for route in routes):
            bare = results.get((BARE, table, load.name))
            floor = results.get((FLOOR, table, load.name))
            for peer in peers:
                for name in peer.routes:
                    if by_name[name].table != table:
                        continue
                    runs = results[peer.name, name, load.name]
                    rps = spread([run["rps"] for run in runs], ",.0f")
                    p50 = spread([run["p50_us"] / 1000 for run in runs], ".2f")
                    p99 = spread([run["p99_us"] / 1000 for run in runs], ".2f")
                    timed_out = sum(run["ended_by"] == "time" for run in runs)
                    errors = sum(run["errors"] for run in runs)
                    print(
                        f"| {name} | {peer.name} | {rps} | {p50} | {p99} "
                        f"| {ratios(runs, bare, 'rps')} | {ratios(runs, bare, 'p99_us')} "
                        f"| {ratios(runs, floor, 'rps')} | {errors} | {timed_out}/{len(runs)} |"
                    )
    variants = [peer for peer in peers if peer.name.startswith(VARIANT_BASE + " ")]
    if variants and any(peer.name == VARIANT_BASE for peer in peers):
        print(f"\n### Bookkeeping: each variant's req/s ÷ {VARIANT_BASE}'s, same route, load "
              "and repeat (≤ 5 % apart is the goal)\n")  # fmt: skip
        print("| route | load | " + " | ".join(peer.name for peer in variants) + " |")
        print("|---|---|" + "---:|" * len(variants))
        for route in routes:
            for load in LOADS:
                base = results.get((VARIANT_BASE, route.name, load.name))
                if not base:
                    continue
                cells = [
                    ratios(results[peer.name, route.name, load.name], base, "rps")
                    if (peer.name, route.name, load.name) in results
                    else "–"
                    for peer in variants
                ]
                print(f"| {route.name} | {load.name} | " + " | ".join(cells) + " |")
    print_v2_ratios(peers, results)
    print("\n| peer | start-up to ready, s | idle RSS, MB |")
    print("|---|---:|---:|")
    for peer in peers:
        startup = [entry["startup_s"] for entry in startups[peer.name]]
        rss = [entry["idle_rss_mb"] for entry in startups[peer.name]]
        print(f"| {peer.name} | {spread(startup, '.2f')} | {spread(rss, '.0f')} |")


def print_v2_ratios(peers: list[Peer], results: Results) -> None:
    """The "v2" variant: /v2 infer's req/s over /invocations' on the same server, per repeat
    (issue 16 asks for ≥ 0.80 on one row)."""
    if "v2" not in {peer.name for peer in peers}:
        return
    print("\n| load | /v2 infer ÷ /invocations, req/s | p99 ÷ |")
    print("|---|---:|---:|")
    for load in LOADS:
        v2 = results["v2", "/v2 infer float", load.name]
        invocations = results["v2", "/invocations float", load.name]
        print(
            f"| {load.name} | {ratios(v2, invocations, 'rps')} "
            f"| {ratios(v2, invocations, 'p99_us')} |"
        )


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--repeats", type=int, default=5, help="servers started per peer")
    parser.add_argument("--seconds", type=int, default=10, help="time cap per load")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated peers to run, in order; known: {', '.join(p.name for p in PEERS)}",
    )
    parser.add_argument("--skip-mlflow", action="store_true", help="leave MLflow out")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 repeat, 2 s caps, a tenth of the requests (figures are rough)",
    )
    parser.add_argument("--json", type=Path, help="also write every repeat's figures here")
    args = parser.parse_args()
    if args.quick:
        global LOADS
        args.repeats, args.seconds = 1, 2
        LOADS = tuple(
            Load(load.name, load.rows, load.connections, load.cap // 10) for load in LOADS
        )
    if shutil.which("wrk") is None:
        raise SystemExit("bench_serve needs wrk: apt-get install -y wrk")
    if shutil.which("taskset") is None:
        raise SystemExit("bench_serve needs taskset (util-linux) to pin server and client")
    if not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        raise SystemExit(f"bench_serve pins to CPUs {SERVER_CPU} and {CLIENT_CPU}: not both usable")
    known = {peer.name: peer for peer in PEERS}
    wanted = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        parser.error(f"--variants: unknown {unknown}; known: {', '.join(known)}")
    peers = [known[name] for name in wanted if not (args.skip_mlflow and name == "mlflow")]
    routes = [route for route in ROUTES if any(route.name in peer.routes for peer in peers)]

    began = time.perf_counter()
    models_dir = args.models_dir.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        model_json = (models_dir / "model.json").resolve()
        bodies, expected = write_bodies(models_dir, model_json, routes, workdir)
        placeholders = {
            "python": sys.executable,
            "bin": str(Path(sys.executable).parent),
            "peers": str(REPO / "benchmarks" / "peers"),
            "models_dir": str(models_dir),
            "model_json": str(model_json),
            "PATH": os.environ.get("PATH", ""),
        }
        if any("{mlflow_model}" in part for peer in peers for part in peer.command):
            placeholders["mlflow_model"] = str(export_mlflow(models_dir, workdir))
        shown = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES_SHOWN)
        print(
            f"bench_serve: {len(peers)} peers × {args.repeats} interleaved repeats, time cap "
            f"{args.seconds} s per load; servers on CPU {SERVER_CPU}, wrk (1 thread) on CPU "
            f"{CLIENT_CPU}; {shown}",
            flush=True,
        )
        results: Results = {}
        startups: Startups = {peer.name: [] for peer in peers}
        by_name = {route.name: route for route in routes}
        for repeat in range(args.repeats):
            for peer in peers:
                server = start(peer, placeholders, workdir)
                startups[peer.name].append(
                    {"startup_s": server.startup_s, "idle_rss_mb": server.idle_rss_mb}
                )
                try:
                    for name in peer.routes:
                        route = by_name[name]
                        url = server.url + route.path
                        check_answers(server, route, bodies, expected)
                        wrk(url, bodies[name, 1], 8, 300, 2, workdir)  # warm-up
                        for load in LOADS:
                            result = wrk(
                                url, bodies[name, load.rows], load.connections, load.cap,
                                args.seconds, workdir,
                            )  # fmt: skip
                            results.setdefault((peer.name, name, load.name), []).append(result)
                finally:
                    stop(server)
                print(
                    f"repeat {repeat + 1}/{args.repeats}: {peer.name} done "
                    f"({time.perf_counter() - began:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        print_tables(peers, routes, results, startups)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "results": [
                            {"peer": peer, "route": route, "load": load, "runs": runs}
                            for (peer, route, load), runs in results.items()
                        ],
                        "startups": startups,
                    },
                    indent=1,
                )
            )
        print(f"\nwall time {time.perf_counter() - began:.0f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
