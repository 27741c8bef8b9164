"""Fit time, memory and accuracy of every engine, and reading speed, with baselines, in one run.

    python benchmarks/bench_fit.py --rows 10000000 --features 8
    python benchmarks/bench_fit.py --rows 2000000 --engines csv     # the reading figures
    python benchmarks/bench_fit.py --rows 50000000 --engines streaming-parquet,predict-parquet

Generates the data once into --workdir (float64 .npy for the in-memory engines, a Parquet
file with 1M-row row groups, and a CSV of the same numbers when a CSV engine is asked for),
then runs each engine in its own subprocess so that its peak RSS (VmHWM) is its own. The
linreg-ops engines hold out about one row in a million (test_size 1e-6), the baselines fit
every row; coefficients are compared with scikit-learn's on the engines' training rows
(computed after the timed runs), so the baselines differ by those few rows.
Each engine runs --repeats times in its process after an untimed set-up (imports, loading
arrays, starting a Dask cluster, as a running cluster would be); the best run counts, and
the first run of a Dask engine (workers still importing) is printed beside the table.
Prints wall seconds, rows/s, MB/s of the file, peak RSS and the largest relative coefficient
difference from scikit-learn's.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENGINES = {
    "sklearn": "scikit-learn on in-memory arrays",
    "streaming-arrays": "linreg-ops streaming on in-memory arrays",
    "pyarrow-parquet": "baseline: pyarrow.parquet.read_table + normal equations",
    "streaming-parquet": "linreg-ops streaming from Parquet",
    "dask-parquet": "linreg-ops Dask from Parquet (2 workers, 512 MiB each)",
    "pandas-sklearn-csv": "baseline: pandas.read_csv + scikit-learn",
    "pyarrow-csv": "baseline: pyarrow.csv.read_csv + normal equations",
    "streaming-csv": "linreg-ops streaming from CSV",
    "dask-csv": "linreg-ops Dask from CSV (2 workers, 512 MiB each)",
    "read-pandas-csv": "read only: pandas.read_csv",
    "read-pyarrow-csv": "read only: pyarrow.csv.read_csv",
    "read-linreg-ops-csv": "read only: linreg_ops.storage.tables.iter_blocks",
    "predict-parquet": "linreg-ops out-of-core scoring of the Parquet file",
}
GROUPS = {
    "default": "sklearn,streaming-arrays,pyarrow-parquet,streaming-parquet,dask-parquet",
    "csv": "read-pandas-csv,read-pyarrow-csv,read-linreg-ops-csv,pandas-sklearn-csv,"
    "pyarrow-csv,streaming-csv,dask-csv,pyarrow-parquet,streaming-parquet",
}
BLOCK = 1_000_000
TEST_SIZE = 1e-6  # linreg-ops engines hold out ~1 row in a million (they need 2 test rows)


def generate(workdir: Path, rows: int, features: int, arrays: bool, csv: bool) -> np.ndarray:
    """y = X·coef + 1 + noise, features on scales 1e-2…1e2; returns the generating coef."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scales = np.logspace(-2, 2, features)
    coef = rng.normal(size=features) / scales
    stamp = workdir / "shape.json"
    wanted = {"rows": rows, "features": features, "arrays": arrays, "csv": csv}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return coef
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"x{j}" for j in range(features)]
    X_file = y_file = None
    if arrays:
        X_file = np.lib.format.open_memmap(workdir / "X.npy", "w+", np.float64, (rows, features))
        y_file = np.lib.format.open_memmap(workdir / "y.npy", "w+", np.float64, (rows,))
    schema = pa.schema([(name, pa.float64()) for name in [*names, "y"]])
    csv_handle = open(workdir / "data.csv", "w") if csv else None  # noqa: SIM115
    if csv_handle:
        csv_handle.write(",".join([*names, "y"]) + "\n")
    with pq.ParquetWriter(workdir / "data.parquet", schema) as writer:
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            X = rng.normal(size=(n, features)) * scales
            y = X @ coef + 1.0 + rng.normal(size=n)
            if arrays:
                X_file[start : start + n], y_file[start : start + n] = X, y
            if csv_handle:
                np.savetxt(csv_handle, np.column_stack([X, y]), delimiter=",", fmt="%.17g")
            writer.write_table(pa.table({**{nm: X[:, j] for j, nm in enumerate(names)}, "y": y}))
    if csv_handle:
        csv_handle.close()
    if arrays:
        X_file.flush()
        y_file.flush()
    stamp.write_text(json.dumps(wanted))
    return coef


def prepare_model(workdir: Path) -> None:
    """A model to score with, fitted (in this process, not the measured one) on row group 0."""
    import pyarrow.parquet as pq

    from linreg_ops import pipeline
    from linreg_ops.training import sources

    sample = workdir / "sample.parquet"
    pq.write_table(pq.ParquetFile(workdir / "data.parquet").read_row_group(0), sample)
    pipeline.train(sources.file_source(sample, "y"), workdir / "models")


def normal_equations(table_columns: list[np.ndarray]) -> np.ndarray:
    """The baseline solve: centred XᵀX and Xᵀy from whole columns, then one d×d solve."""
    X = np.column_stack(table_columns[:-1])
    y = table_columns[-1]
    mean = X.mean(axis=0)
    Xc = X - mean
    return np.linalg.solve(Xc.T @ Xc, Xc.T @ (y - y.mean()))


def peak_rss_mb() -> float:
    """This process's high-water mark (VmHWM), in MiB."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024


def child(engine: str, workdir: Path, repeats: int) -> dict:
    """Runs in a fresh process: one engine's set-up (untimed), then ``repeats`` timed runs."""
    result: dict = {}
    parquet, csv = workdir / "data.parquet", workdir / "data.csv"
    cleanup = None
    if engine in ("sklearn", "streaming-arrays"):
        from sklearn.linear_model import LinearRegression

        from linreg_ops.training.engines import stream_arrays
        from linreg_ops.training.solve import solve

        X = np.load(workdir / "X.npy")
        y = np.load(workdir / "y.npy")
        names = [str(j) for j in range(X.shape[1])]

        def work() -> object:
            if engine == "sklearn":
                return LinearRegression().fit(X, y).coef_
            return solve(stream_arrays(X, y, BLOCK), names)[0]

    elif engine in ("pyarrow-parquet", "pyarrow-csv"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        def work() -> object:
            table = pq.read_table(parquet) if engine == "pyarrow-parquet" else pacsv.read_csv(csv)
            return normal_equations([column.to_numpy() for column in table.columns])

    elif engine == "pandas-sklearn-csv":
        import pandas as pd
        from sklearn.linear_model import LinearRegression

        def work() -> object:
            frame = pd.read_csv(csv)
            X, y = frame.iloc[:, :-1].to_numpy(), frame["y"].to_numpy()
            return LinearRegression().fit(X, y).coef_

    elif engine.startswith("read-"):
        import pandas as pd
        import pyarrow.csv as pacsv

        from linreg_ops.storage import tables

        def work() -> object:
            if engine == "read-pandas-csv":
                result["rows_read"] = len(pd.read_csv(csv))
            elif engine == "read-pyarrow-csv":
                result["rows_read"] = pacsv.read_csv(csv).num_rows
            else:
                names = tables.read_header(csv)
                blocks = tables.iter_blocks(csv, names)
                result["rows_read"] = sum(len(block.values) for block in blocks)
            return None

    elif engine in ("streaming-parquet", "streaming-csv", "dask-parquet", "dask-csv"):
        from linreg_ops.config import TrainConfig
        from linreg_ops.training import engines, sources

        source = sources.file_source(parquet if engine.endswith("parquet") else csv, "y")
        config = TrainConfig(test_size=TEST_SIZE, engine="streaming")
        if engine.startswith("dask"):
            from distributed import Client, LocalCluster

            started = time.perf_counter()
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                memory_limit="512MiB",
            )  # fmt: skip
            client = Client(cluster)
            result["cluster_start_seconds"] = time.perf_counter() - started
            config = TrainConfig(
                test_size=TEST_SIZE, engine="dask", scheduler=cluster.scheduler_address
            )

            def cleanup() -> None:
                result["worker_peak_mb"] = sorted(client.run(peak_rss_mb).values())
                client.close()
                cluster.close()

        def work() -> object:
            return engines.fit(source, config).coef

    else:  # predict-parquet: out-of-core scoring with the model prepare_model() trained
        from linreg_ops.inference import loading, predict

        models = loading.load(workdir / "models")

        def work() -> object:
            done = predict.predict_file(models, "float", parquet, workdir / "predictions.parquet")
            result["rows_written"] = done.rows
            return None

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        coef = work()
        times.append(time.perf_counter() - start)
    if cleanup is not None:
        cleanup()
    result["first_seconds"], result["seconds"] = times[0], min(times)
    result["coef"] = None if coef is None else np.asarray(coef).tolist()
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter carries the parent's peak over
    # fork + exec, while the high-water mark belongs to this process's own address space.
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def reference_coef(workdir: Path, rows: int) -> np.ndarray:
    """scikit-learn on the rows the linreg-ops engines train on (the row-hash split)."""
    import pyarrow.parquet as pq
    from sklearn.linear_model import LinearRegression

    from linreg_ops.training.split import held_out_rows

    table = pq.read_table(workdir / "data.parquet")
    values = np.column_stack([column.to_numpy() for column in table.columns])
    keep = ~held_out_rows(np.arange(rows, dtype=np.uint64), 42, TEST_SIZE)
    return LinearRegression().fit(values[keep, :-1], values[keep, -1]).coef_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--engines", default="default", help="comma-separated engines, or a group: default, csv"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per engine (best counts)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(f".bench/fit-{args.rows}x{args.features}")
    if args.child:
        print(json.dumps(child(args.child, workdir, args.repeats)))
        return
    engines = GROUPS.get(args.engines, args.engines).split(",")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engine {unknown[0]!r}: choose from {', '.join(ENGINES)}")
    arrays = any(e in ("sklearn", "streaming-arrays") for e in engines)
    csv = any(e.endswith("csv") for e in engines)
    start = time.perf_counter()
    generate(workdir, args.rows, args.features, arrays, csv)
    sizes = {
        fmt: (workdir / f"data.{fmt}").stat().st_size / 1e6
        for fmt in ("csv", "parquet")
        if (workdir / f"data.{fmt}").exists()
    }
    print(
        f"{args.rows:,} rows × {args.features} features + y; "
        + ", ".join(f"{fmt} {mb:,.0f} MB" for fmt, mb in sizes.items())
        + f"; data ready in {time.perf_counter() - start:.1f} s; files in the page cache"
    )
    if "predict-parquet" in engines:
        prepare_model(workdir)
    results = {}
    for engine in engines:
        output = subprocess.run(
            [sys.executable, __file__, "--child", engine, "--workdir", str(workdir),
             "--repeats", str(args.repeats)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results[engine] = json.loads(output.strip().splitlines()[-1])
    reference = reference_coef(workdir, args.rows)
    print(
        "| engine | what | seconds | rows/s | MB/s | peak RSS MB "
        "| max rel. coef diff vs scikit-learn on the training rows |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for engine, result in results.items():
        fmt = "csv" if engine.endswith("csv") else "parquet" if engine.endswith("parquet") else None
        rate = f"{sizes[fmt] / result['seconds']:,.0f}" if fmt in sizes else "—"
        rss = f"{result['peak_rss_mb']:,.0f}"
        if "worker_peak_mb" in result:
            rss += " (workers " + ", ".join(f"{mb:,.0f}" for mb in result["worker_peak_mb"]) + ")"
        diff = (
            "—"
            if result["coef"] is None
            else f"{np.max(np.abs(np.array(result['coef']) - reference) / np.abs(reference)):.1e}"
        )
        print(
            f"| {engine} | {ENGINES[engine]} | {result['seconds']:.2f} | "
            f"{args.rows / result['seconds']:,.0f} | {rate} | {rss} | {diff} |"
        )
    for engine, result in results.items():
        if "cluster_start_seconds" in result:
            print(
                f"{engine}: LocalCluster start-up {result['cluster_start_seconds']:.2f} s, first "
                f"(cold workers) run {result['first_seconds']:.2f} s; neither is in the table"
            )
    ratios = [
        ("streaming-csv", "pandas-sklearn-csv", "CSV streaming vs pandas + scikit-learn"),
        ("streaming-parquet", "pyarrow-parquet", "Parquet streaming vs pyarrow + normal equations"),
        ("dask-parquet", "streaming-parquet", "Dask vs streaming, Parquet"),
        ("dask-csv", "streaming-csv", "Dask vs streaming, CSV"),
    ]
    for ours, theirs, label in ratios:
        if ours in results and theirs in results:
            print(f"{label}: {results[ours]['seconds'] / results[theirs]['seconds']:.2f}× the time")


if __name__ == "__main__":
    main()
