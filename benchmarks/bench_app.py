"""CPU microseconds per request of the whole ASGI app in process — linreg-ops with metrics and
request logs on, each off, both off, and the hand-written FastAPI app — on one row and on
1,000 rows of ``/invocations``: what each kind of bookkeeping costs, without the network,
uvicorn or wrk (``bench_serve.py`` measures those, over real HTTP, and is the figure that
counts; this one is steadier on a shared machine, since it counts this process's CPU time).

    python benchmarks/bench_app.py [--models-dir models] [--rounds 12] [--requests 1500]

The apps take turns, round after round; each one's best round counts. Every app's answer is
checked to be the same predictions (within rounding) before timing.
"""

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from linreg_ops.inference.serve import ServeSettings, create_app

PEERS = Path(__file__).with_name("peers")
VARIANTS = {
    "linreg-ops": {},
    "linreg-ops metrics off": {"metrics": False},
    "linreg-ops logs off": {"access_log": "off"},
    "linreg-ops both off": {"metrics": False, "access_log": "off"},
}


def bodies(models_dir: Path, rows: int) -> bytes:
    with (models_dir / "current" / "test_split.csv").open(newline="") as file:
        reader = csv.reader(file)
        columns = next(reader)[:-1]
        data = [
            [float(value) for value in row[:-1]]
            for _, row in zip(range(rows), reader, strict=False)
        ]
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()


async def call(app: Any, body: bytes) -> list[float]:
    """One POST /invocations through the app; its predictions."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/invocations", "raw_path": b"/invocations",
        "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"{sent[0]['status']}: {sent[1]['body'][:300]!r}")
    answer: list[float] = json.loads(sent[1]["body"])["predictions"]
    return answer


async def measure(
    apps: dict[str, Any], body: bytes, requests: int, rounds: int
) -> dict[str, float]:
    expected = await call(apps["bare-fastapi"], body)
    for name, app in apps.items():
        # the same within rounding: the bare app's BLAS product sums in another order
        if not np.allclose(await call(app, body), expected, rtol=1e-12, atol=1e-12):
            raise SystemExit(f"{name} answers other predictions than bare-fastapi")
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(rounds):
        for name, app in apps.items():
            started = time.process_time()
            for _ in range(requests):
                await call(app, body)
            await asyncio.sleep(0)  # the loop's turn: request logs are written here
            best[name] = min(best[name], (time.process_time() - started) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=1500, help="per round, for one row")
    args = parser.parse_args()
    os.environ["BENCH_MODEL_JSON"] = str(args.models_dir / "current" / "model.json")
    sys.path.insert(0, str(PEERS))
    import bare_fastapi

    quiet = os.open(os.devnull, os.O_WRONLY)  # the request logs go nowhere, as to a quiet file
    clients = []
    apps: dict[str, Any] = {}
    for name, options in VARIANTS.items():
        app = create_app(ServeSettings(models_dir=args.models_dir, **options))
        clients.append(TestClient(app).__enter__())  # runs the lifespan: the models load
        app.service.log.fd = quiet
        apps[name] = app
    apps["bare-fastapi"] = bare_fastapi.create_app()
    print(f"CPU µs per POST /invocations in process (best of {args.rounds} interleaved rounds)")
    print("| rows | " + " | ".join(apps) + " |")
    print("|---:|" + "---:|" * len(apps))
    ratios = []
    for rows, requests in ((1, args.requests), (1000, max(args.requests // 30, 10))):
        best = asyncio.run(measure(apps, bodies(args.models_dir, rows), requests, args.rounds))
        print(f"| {rows:,} | " + " | ".join(f"{best[name]:.1f}" for name in apps) + " |")
        ratios.append((rows, best))
    for rows, best in ratios:
        base = best["linreg-ops"]
        print(
            f"{rows:,} row(s): metrics cost {1 - best['linreg-ops metrics off'] / base:.1%}, "
            f"request logs {1 - best['linreg-ops logs off'] / base:.1%} of linreg-ops's CPU; "
            f"linreg-ops ÷ bare-fastapi CPU {base / best['bare-fastapi']:.2f}×"
        )
    for client in clients:
        client.__exit__(None, None, None)


if __name__ == "__main__":
    main()
