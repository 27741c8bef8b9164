"""Record how a real MLflow scoring server answers MLflow's scoring protocol, for parity tests.

    .venv/bin/python scripts/record_mlflow_answers.py [--models-dir DIR] [--output FILE]

Exports the California float model with ``linreg-ops export --format mlflow`` (from
``--models-dir``, or from a model trained into a temporary folder with ``linreg-ops train``),
starts ``mlflow models serve`` on 127.0.0.1, sends it every request in ``PAYLOADS`` — the
four JSON formats (row- and column-oriented), CSV, and the malformed and edge cases worth
comparing — and writes, for each, the status code, the media type and the *shape* of the body
(keys and types, never the numbers: ``{"predictions": "list[float] of 3"}``), with the MLflow
version, into ``tests/fixtures/mlflow_scoring_answers.json`` (``--output``).
Issue 16's parity test sends linreg-ops the same ``PAYLOADS`` and compares.

Needs the ``mlflow`` extra. Only loopback addresses are used; the server is stopped at exit.
"""

import argparse
import csv
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "tests" / "fixtures" / "mlflow_scoring_answers.json"
SHARED_SKLEARN_DATA = (
    REPO.parent / "shared" / "datasets" / "california_housing" / "scikit_learn_data"
)
ROWS = 3  # the first rows of the stored test split, the data of every payload
SHORT_TEXT = 32  # a plain-text body up to this length is recorded as it is (/ping, /version)
JSON, CSV = "application/json", "text/csv"

Columns = list[str]
Rows = list[list[float]]


@dataclass(frozen=True)
class Payload:
    """One request: ``body`` builds its bytes from the feature names and ``ROWS`` rows."""

    method: str
    path: str
    content_type: str | None
    body: Callable[[Columns, Rows], bytes] | None = None


def as_json(build: Callable[[Columns, Rows], Any]) -> Callable[[Columns, Rows], bytes]:
    return lambda columns, rows: json.dumps(build(columns, rows)).encode()


def as_csv(build: Callable[[Columns, Rows], list[list[Any]]]) -> Callable[[Columns, Rows], bytes]:
    return lambda columns, rows: "".join(
        ",".join(str(value) for value in line) + "\n" for line in build(columns, rows)
    ).encode()


def records(columns: Columns, rows: Rows) -> list[dict[str, float]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def column_dict(columns: Columns, rows: Rows) -> dict[str, list[float]]:
    return {name: [row[j] for row in rows] for j, name in enumerate(columns)}


def split(columns: Columns, rows: Rows) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns, "data": rows}}


def with_value(rows: Rows, value: Any) -> list[list[Any]]:
    """The rows, with the first row's second value (HouseAge) replaced by ``value``."""
    return [[rows[0][0], value, *rows[0][2:]], *rows[1:]]


def post(
    body: Callable[[Columns, Rows], bytes],
    content_type: str | None = JSON,
    path: str = "/invocations",
) -> Payload:
    return Payload("POST", path, content_type, body)


def get(path: str) -> Payload:
    return Payload("GET", path, None)


# Each body is built from c, the feature names, and r, the test rows.
PAYLOADS: dict[str, Payload] = {
    # the four JSON formats, row- and column-oriented
    "dataframe_split, 1 row": post(as_json(lambda c, r: split(c, r[:1]))),
    "dataframe_split, 3 rows": post(as_json(split)),
    "dataframe_split with index": post(
        as_json(lambda c, r: {"dataframe_split": {"index": [0, 1, 2], "columns": c, "data": r}})
    ),
    "dataframe_split, columns reordered": post(
        as_json(lambda c, r: split(c[::-1], [row[::-1] for row in r]))
    ),
    "dataframe_split, integer values": post(
        as_json(lambda c, r: split(c, [[round(value) for value in row] for row in r]))
    ),
    "dataframe_records, 1 row": post(
        as_json(lambda c, r: {"dataframe_records": records(c, r[:1])})
    ),
    "dataframe_records, 3 rows": post(as_json(lambda c, r: {"dataframe_records": records(c, r)})),
    "instances, list of objects": post(as_json(lambda c, r: {"instances": records(c, r)})),
    "instances, list of lists": post(as_json(lambda c, r: {"instances": r})),
    "instances, column dict": post(as_json(lambda c, r: {"instances": column_dict(c, r)})),
    "inputs, list of objects": post(as_json(lambda c, r: {"inputs": records(c, r)})),
    "inputs, list of lists": post(as_json(lambda c, r: {"inputs": r})),
    "inputs, column dict": post(as_json(lambda c, r: {"inputs": column_dict(c, r)})),
    "params beside dataframe_split": post(
        as_json(lambda c, r: {**split(c, r), "params": {"model": "integer"}})
    ),
    "content type with charset": post(as_json(split), "application/json; charset=utf-8"),
    "content type with another charset": post(as_json(split), "application/json; charset=latin-1"),
    "content type with an unknown parameter": post(
        as_json(split), "application/json; format=pandas-split"
    ),
    # CSV (a header row, then the rows)
    "csv, 1 row": post(as_csv(lambda c, r: [c, r[0]]), CSV),
    "csv, 3 rows": post(as_csv(lambda c, r: [c, *r]), CSV),
    "csv, columns reordered": post(as_csv(lambda c, r: [c[::-1], *(row[::-1] for row in r)]), CSV),
    "csv, header only": post(as_csv(lambda c, r: [c]), CSV),
    "csv, missing column": post(as_csv(lambda c, r: [c[1:], *(row[1:] for row in r)]), CSV),
    "csv, extra column": post(
        as_csv(lambda c, r: [[*c, "extra"], *([*row, 1.0] for row in r)]), CSV
    ),
    "csv, non-numeric value": post(as_csv(lambda c, r: [c, *with_value(r, "abc")]), CSV),
    "csv, empty value": post(as_csv(lambda c, r: [c, *with_value(r, "")]), CSV),
    "csv, ragged row": post(as_csv(lambda c, r: [c, r[0][:-1], *r[1:]]), CSV),
    "csv, empty body": post(lambda c, r: b"", CSV),
    # content types and malformed bodies
    "no content type": post(as_json(split), None),
    "unsupported content type text/plain": post(as_json(split), "text/plain"),
    "unsupported content type form": post(as_json(split), "application/x-www-form-urlencoded"),
    "malformed json": post(lambda c, r: b'{"dataframe_split": {'),
    "json that is not utf-8": post(lambda c, r: b'{"inputs": "\xff"}'),
    "empty body": post(lambda c, r: b""),
    "json array at top level": post(as_json(lambda c, r: r)),
    "json number at top level": post(lambda c, r: b"1"),
    "no format key": post(as_json(lambda c, r: {"data": r})),
    "two format keys": post(as_json(lambda c, r: {**split(c, r), "instances": records(c, r)})),
    "json NaN literal": post(as_json(lambda c, r: split(c, with_value(r, float("nan"))))),
    # wrong columns, types and sizes
    "missing column": post(as_json(lambda c, r: split(c[1:], [row[1:] for row in r]))),
    "extra column": post(as_json(lambda c, r: split([*c, "extra"], [[*row, 1.0] for row in r]))),
    "unknown column name": post(as_json(lambda c, r: split(["unknown", *c[1:]], r))),
    "wrong type: string": post(as_json(lambda c, r: split(c, with_value(r, "abc")))),
    "wrong type: numeric string": post(as_json(lambda c, r: split(c, with_value(r, "41")))),
    "wrong type: boolean": post(as_json(lambda c, r: split(c, with_value(r, True)))),
    "wrong type: null": post(as_json(lambda c, r: split(c, with_value(r, None)))),
    "wrong type: nested list": post(as_json(lambda c, r: split(c, with_value(r, [1.0])))),
    "ragged rows": post(as_json(lambda c, r: split(c, [r[0][:-1], *r[1:]]))),
    "empty data": post(as_json(lambda c, r: split(c, []))),
    "empty records": post(as_json(lambda c, r: {"dataframe_records": []})),
    "empty instances": post(as_json(lambda c, r: {"instances": []})),
    "empty inputs": post(as_json(lambda c, r: {"inputs": []})),
    # the other routes
    "GET /ping": get("/ping"),
    "GET /health": get("/health"),
    "GET /version": get("/version"),
    "GET /invocations": get("/invocations"),
    "POST /ping": post(as_json(split), JSON, "/ping"),
    "GET a wrong path": get("/no-such-route"),
    "POST a wrong path": post(as_json(split), JSON, "/predict"),
}


def shape(value: Any) -> Any:
    """The shape of a parsed JSON value: its keys and types, never its numbers.

    A scalar is its type's name (``float``, ``int``, ``str``, ``bool``, ``null``); an object
    is the shape of each member; a list of scalars of one type is ``"list[float] of 3"``, an
    empty list ``"list of 0"``, any other list ``{"list of N": [its items' distinct shapes]}``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | str):
        return type(value).__name__
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if not value:
        return "list of 0"
    items: list[Any] = []
    for item in map(shape, value):
        if item not in items:
            items.append(item)
    if len(items) == 1 and isinstance(items[0], str):
        return f"list[{items[0]}] of {len(value)}"
    return {f"list of {len(value)}": items}


def describe(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """What the parity test compares: status, media type, body shape (and, for an MLflow
    error, its ``error_code``; for a short plain-text answer, the text)."""
    answer: dict[str, Any] = {"status": status, "content_type": content_type.split(";")[0]}
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        answer["body"] = "empty" if not body else "text"
        if body and len(text) <= SHORT_TEXT:
            answer["text"] = text
        return answer
    answer["body"] = shape(parsed)
    if isinstance(parsed, dict) and isinstance(parsed.get("error_code"), str):
        answer["error_code"] = parsed["error_code"]
    return answer


def send(port: int, payload: Payload, columns: Columns, rows: Rows) -> dict[str, Any]:
    """Send one payload (http.client adds no Content-Type of its own) and describe the answer."""
    body = payload.body(columns, rows) if payload.body else None
    headers = {"Content-Type": payload.content_type} if payload.content_type else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(payload.method, payload.path, body=body, headers=headers)
        response = connection.getresponse()
        return describe(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        connection.close()


def linreg_ops(*args: str) -> None:
    command = [str(Path(sys.executable).with_name("linreg-ops")), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def stored_test_rows(models_dir: Path) -> tuple[Columns, Rows]:
    """The feature names and the first ``ROWS`` feature rows of the stored test split."""
    with (models_dir / "test_split.csv").open(newline="") as file:
        lines = list(itertools.islice(csv.reader(file), ROWS + 1))
    return lines[0][:-1], [[float(value) for value in line[:-1]] for line in lines[1:]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
        try:
            if send(port, get("/ping"), [], [])["status"] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("mlflow models serve was not ready after 180 s")


def record(model: Path, columns: Columns, rows: Rows, workdir: Path) -> dict[str, Any]:
    """Start ``mlflow models serve`` on the exported model and record every payload's answer."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(model), "--env-manager",
               "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = workdir / "mlflow-serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_ready(process, port, log)
        return {name: send(port, payload, columns, rows) for name, payload in PAYLOADS.items()}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="default: train California afresh")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if "SCIKIT_LEARN_DATA" not in os.environ and SHARED_SKLEARN_DATA.is_dir():
        os.environ["SCIKIT_LEARN_DATA"] = str(SHARED_SKLEARN_DATA)  # as the Makefile does
    from importlib.metadata import version

    workdir = Path(tempfile.mkdtemp(prefix="record-mlflow-"))
    try:
        models_dir = args.models_dir
        if models_dir is None:
            models_dir = workdir / "models"
            linreg_ops("train", "--models-dir", str(models_dir))
        model = workdir / "mlflow-model"
        linreg_ops("export", "--format", "mlflow", "--model", "float",
                   "--models-dir", str(models_dir), "--output", str(model))  # fmt: skip
        columns, rows = stored_test_rows(models_dir)
        answers = record(model, columns, rows, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fixture = {
        "mlflow_version": version("mlflow"),
        "recorded_with": "scripts/record_mlflow_answers.py",
        "model": "linreg-ops export --format mlflow --model float (California Housing)",
        "rows": f"the first {ROWS} rows of the stored test split",
        "answers": answers,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(answers)} answers of MLflow {fixture['mlflow_version']} written to {args.output}")


if __name__ == "__main__":
    main()
