"""Fit time, memory and accuracy of every engine on the same data, in one run.

    python benchmarks/bench_fit.py --rows 10000000 --features 8
    python benchmarks/bench_fit.py --rows 50000000 --engines streaming-parquet,predict-parquet

Generates the data once into --workdir (float64 .npy for the in-memory engines when it fits,
and a Parquet file written block by block), then runs each engine in its own subprocess so
that its peak RSS (VmHWM) is its own. Prints wall seconds of the fit, rows/s, peak RSS,
the largest relative coefficient difference from scikit-learn's (or from the generating
coefficients when scikit-learn is not run), and one numpy pass over the array as the
memory-bandwidth floor.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENGINES = ("sklearn", "streaming-arrays", "streaming-parquet", "dask-parquet", "predict-parquet")
BLOCK = 1_000_000


def generate(workdir: Path, rows: int, features: int, arrays: bool) -> np.ndarray:
    """y = X·coef + 1 + noise, features on scales 1e-2…1e2; returns the generating coef."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scales = np.logspace(-2, 2, features)
    coef = rng.normal(size=features) / scales
    stamp = workdir / "shape.json"
    if stamp.exists() and json.loads(stamp.read_text()) == [rows, features, arrays]:
        return coef
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"x{j}" for j in range(features)]
    X_file = y_file = None
    if arrays:
        X_file = np.lib.format.open_memmap(workdir / "X.npy", "w+", np.float64, (rows, features))
        y_file = np.lib.format.open_memmap(workdir / "y.npy", "w+", np.float64, (rows,))
    schema = pa.schema([(name, pa.float64()) for name in [*names, "y"]])
    with pq.ParquetWriter(workdir / "data.parquet", schema) as writer:
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            X = rng.normal(size=(n, features)) * scales
            y = X @ coef + 1.0 + rng.normal(size=n)
            if arrays:
                X_file[start : start + n], y_file[start : start + n] = X, y
            writer.write_table(pa.table({**{nm: X[:, j] for j, nm in enumerate(names)}, "y": y}))
    if arrays:
        X_file.flush()
        y_file.flush()
    stamp.write_text(json.dumps([rows, features, arrays]))
    return coef


def prepare_model(workdir: Path) -> None:
    """A model to score with, fitted (in this process, not the measured one) on row group 0."""
    import pyarrow.parquet as pq

    from linreg_ops.train import train_files

    sample = workdir / "sample.parquet"
    pq.write_table(pq.ParquetFile(workdir / "data.parquet").read_row_group(0), sample)
    train_files(sample, "y", None, workdir / "models")


def child(engine: str, workdir: Path, rows: int) -> dict:
    """Runs in a fresh process: one engine, timed, with its own peak RSS."""
    result: dict = {}
    if engine in ("sklearn", "streaming-arrays"):
        from sklearn.linear_model import LinearRegression

        from linreg_ops.engines import stream_arrays
        from linreg_ops.stats import solve

        X = np.load(workdir / "X.npy")
        y = np.load(workdir / "y.npy")
        start = time.perf_counter()  # imports and loading stay outside the timed fit
        if engine == "sklearn":
            coef = LinearRegression().fit(X, y).coef_
        else:
            coef, _ = solve(stream_arrays(X, y, BLOCK), [str(j) for j in range(X.shape[1])])
        result["seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        np.add.reduce(X, axis=0)
        result["floor_seconds"] = time.perf_counter() - start
    elif engine in ("streaming-parquet", "dask-parquet"):
        from linreg_ops.data import feature_columns
        from linreg_ops.engines import DaskSession, dask_files, stream_files

        files = [workdir / "data.parquet"]
        features = feature_columns(files, "y", None)
        if engine == "streaming-parquet":
            start = time.perf_counter()
            fit = stream_files(files, "y", features, 0.0, 0)
            result["seconds"] = time.perf_counter() - start
        else:
            with DaskSession() as client:
                address = client.scheduler.address
                start = time.perf_counter()
                fit = dask_files(files, "y", features, 0.0, 0, address)
                result["seconds"] = time.perf_counter() - start
                result["worker_rss_mb"] = (
                    sum(
                        client.run(
                            lambda: __import__("psutil").Process().memory_info().rss
                        ).values()
                    )
                    / 2**20
                )
        coef = fit.coef
    else:  # predict-parquet: out-of-core scoring with the model prepare_model() trained
        from linreg_ops import artifacts
        from linreg_ops.predict import predict_file

        start = time.perf_counter()
        done = predict_file(
            workdir / "models", workdir / "data.parquet", workdir / "predictions.parquet"
        )
        result["seconds"] = time.perf_counter() - start
        result["rows_written"] = done.rows
        coef = artifacts.load_model(workdir / "models").coef
    result["coef"] = np.asarray(coef).tolist()
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter carries the parent's peak over
    # fork + exec, while the high-water mark belongs to this process's own address space.
    status = Path("/proc/self/status").read_text().splitlines()
    result["peak_rss_mb"] = (
        int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/fit"))
    parser.add_argument(
        "--engines", default="sklearn,streaming-arrays,streaming-parquet,dask-parquet"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workdir, args.rows)))
        return
    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engine {unknown[0]!r}: choose from {', '.join(ENGINES)}")
    arrays = any(e in ("sklearn", "streaming-arrays") for e in engines)
    start = time.perf_counter()
    true_coef = generate(args.workdir, args.rows, args.features, arrays)
    gigabytes = args.rows * (args.features + 1) * 8 / 1e9
    print(
        f"{args.rows:,} rows × {args.features} features (float64, {gigabytes:.1f} GB with y); "
        f"data ready in {time.perf_counter() - start:.1f} s"
    )
    if "predict-parquet" in engines:
        prepare_model(args.workdir)
    results = {}
    for engine in engines:
        output = subprocess.run(
            [sys.executable, __file__, "--child", engine, "--workdir", str(args.workdir), "--rows", str(args.rows)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results[engine] = json.loads(output.strip().splitlines()[-1])
    reference = np.array(results["sklearn"]["coef"]) if "sklearn" in results else true_coef
    against = "scikit-learn" if "sklearn" in results else "generating coef"
    print(f"| engine | fit s | rows/s | peak RSS MB | max rel. coef diff vs {against} |")
    print("|---|---:|---:|---:|---:|")
    for engine, result in results.items():
        diff = np.max(np.abs(np.array(result["coef"]) - reference) / np.abs(reference))
        rss = f"{result['peak_rss_mb']:,.0f}"
        if "worker_rss_mb" in result:
            rss += f" (+ workers {result['worker_rss_mb']:,.0f})"
        label = "predict-parquet (out-of-core scoring)" if engine == "predict-parquet" else engine
        shown_diff = "—" if engine == "predict-parquet" else f"{diff:.1e}"
        print(
            f"| {label} | {result['seconds']:.2f} | {args.rows / result['seconds']:,.0f} | {rss} | {shown_diff} |"
        )
    if "floor_seconds" in next(iter(results.values()), {}) or any(
        "floor_seconds" in r for r in results.values()
    ):
        floor = min(r["floor_seconds"] for r in results.values() if "floor_seconds" in r)
        print(f"one numpy pass over X (np.add.reduce): {floor:.2f} s")
        if "sklearn" in results and "streaming-arrays" in results:
            sk, st = results["sklearn"]["seconds"], results["streaming-arrays"]["seconds"]
            print(
                f"streaming-arrays: {sk / st:.1f}× faster than scikit-learn, {st / floor:.1f}× the one-pass floor"
            )


if __name__ == "__main__":
    main()
