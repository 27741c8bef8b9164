"""Microseconds per single-row request of /v2/models/linreg-ops/infer and /invocations,
through the whole ASGI app in process (middlewares, FastAPI's routing for /invocations,
``oip.answer`` for /v2): no network, no wrk, seconds to run; for development, beside
bench_serve.py's ``--variants v2`` (the figure that counts, over real HTTP).

    python benchmarks/bench_oip_asgi.py [--models-dir models] [--requests 1000] [--repeats 5]

Each route answers the same row (the stored test split's first), as JSON; the best repeat
counts. Both answers are checked to be the same predictions before timing.
"""

import argparse
import asyncio
import csv
import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from linreg_ops.inference.serve import ServeSettings, create_app


def bodies(models_dir: Path) -> dict[str, bytes]:
    with (models_dir / "test_split.csv").open(newline="") as file:
        reader = csv.reader(file)
        columns = next(reader)[:-1]
        row = [float(value) for value in next(reader)[:-1]]
    tensor = {"name": "input", "shape": [1, len(row)], "datatype": "FP64", "data": [row]}
    return {
        "/invocations": json.dumps(
            {"dataframe_split": {"columns": columns, "data": [row]}}
        ).encode(),
        "/v2/models/linreg-ops/infer": json.dumps({"inputs": [tensor]}).encode(),
    }


async def call(app: Any, path: str, body: bytes) -> dict[str, Any]:
    """One request through the app; the answer's JSON."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"{path}: {sent[0]['status']} {sent[1]['body'][:300]!r}")
    answer: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return answer


async def measure(app: Any, requests: dict[str, bytes], count: int, repeats: int) -> None:
    invocations = await call(app, "/invocations", requests["/invocations"])
    v2 = await call(app, "/v2/models/linreg-ops/infer", requests["/v2/models/linreg-ops/infer"])
    if v2["outputs"][0]["data"] != invocations["predictions"]:
        raise SystemExit(f"the routes disagree: {v2} vs {invocations}")
    best = {}
    for path, body in requests.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(count):
                await call(app, path, body)
            times.append((time.perf_counter() - started) / count * 1e6)
        best[path] = min(times)
        print(f"{path}: {best[path]:.0f} µs per request (best of {repeats} × {count:,})")
    ratio = best["/invocations"] / best["/v2/models/linreg-ops/infer"]
    print(f"/v2 infer req/s ÷ /invocations req/s, in process: {ratio:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    requests = bodies(args.models_dir)
    app = create_app(ServeSettings(models_dir=args.models_dir))
    with TestClient(app):  # runs the lifespan: the models load
        asyncio.run(measure(app, requests, args.requests, args.repeats))


if __name__ == "__main__":
    main()
