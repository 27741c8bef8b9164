"""Fit time, memory and accuracy of every engine, and reading speed, with baselines, in one run.

    python benchmarks/bench_fit.py --rows 10000000 --features 8
    python benchmarks/bench_fit.py --rows 2000000 --engines csv     # the reading figures
    python benchmarks/bench_fit.py --rows 50000000 --engines streaming-parquet,predict-parquet
    python benchmarks/bench_fit.py --rows 2000000 --engines none --processes train
    python benchmarks/bench_fit.py --rows 10000000 --engines none --processes predict
    python benchmarks/bench_fit.py --quick      # every engine and process on 200,000 rows, once

Whole processes (``--processes``) are what a user waits for: ``linreg-ops train`` and
``predict`` as commands beside their peers as ``python -c`` scripts (pandas + scikit-learn,
pyarrow + normal equations, ``import numpy``), each timed from outside with its peak RSS
and CPU seconds from ``/usr/bin/time``, in interleaved rounds (median [min–max]; the ratios
are of medians, with the per-round range), and the load average printed beside them.

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
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENGINES = {
    "sklearn": "scikit-learn on in-memory arrays",
    "streaming-arrays": "linreg-ops streaming on in-memory arrays",
    "blas-gram-floor": "floor: A.T @ A, A = X with a ones column (built untimed), BLAS",
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
# Whole processes, as a user runs them (interpreter start-up, imports, reading, writing the
# version): each is timed from the outside, its peak RSS by /usr/bin/time (%M, of the
# process itself: ``time`` is small, so no parent's peak is carried over the exec).
PEER_CODE = {
    "pandas-sklearn": (
        "import sys, pandas as pd; from sklearn.linear_model import LinearRegression; "
        "f = pd.read_csv(sys.argv[1]); "
        "LinearRegression().fit(f.iloc[:, :-1].to_numpy(), f.iloc[:, -1].to_numpy())"
    ),
    "pyarrow-normal-equations": (
        "import sys, numpy as np, pyarrow.csv as c, pyarrow.parquet as pq; p = sys.argv[1]; "
        "t = c.read_csv(p) if p.endswith('.csv') else pq.read_table(p); "
        "X = np.column_stack([k.to_numpy() for k in t.columns[:-1]]); "
        "y = t.columns[-1].to_numpy(); Xc = X - X.mean(axis=0); "
        "np.linalg.solve(Xc.T @ Xc, Xc.T @ (y - y.mean()))"
    ),
    "import-numpy": "import numpy",
}
PROCESSES = {
    "train-csv": "linreg-ops train --data data.csv --target y (defaults)",
    "pandas-sklearn-csv": "peer: python: pandas.read_csv + scikit-learn",
    "pyarrow-csv": "peer: python: pyarrow.csv + normal equations",
    "train-parquet": "linreg-ops train --data data.parquet --target y (defaults)",
    "pyarrow-parquet": "peer: python: pyarrow.parquet + normal equations",
    "train-dask-parquet": "linreg-ops train --engine dask --data data.parquet (local cluster)",
    "train-folder": "linreg-ops train --data folder/ (data.parquet cut into up to 8 files)",
    "train-dask-folder": "linreg-ops train --engine dask --data folder/ (local cluster)",
    "train-1000-parquet": "linreg-ops train on a 1,000-row Parquet file",
    "train-1000-csv": "linreg-ops train on a 1,000-row CSV file",
    "predict-float": "linreg-ops predict --input data.parquet --output p.parquet",
    "predict-integer": "linreg-ops predict --integer-only --input data.parquet --output p.parquet",
    "predict-cold": "linreg-ops predict (the stored test split of a 1,000-row model)",
    "import-numpy": 'floor: python -c "import numpy"',
}
PROCESS_RATIOS = [
    ("train-csv", "pandas-sklearn-csv", "train from CSV vs pandas + scikit-learn (goal ≤ 1.0)"),
    ("train-parquet", "pyarrow-parquet", "train from Parquet vs pyarrow + normal eq. (goal ≤ 1.2)"),
    ("train-dask-parquet", "train-parquet", "Dask vs streaming, one file (goal ≤ 1.3)"),
    ("train-dask-folder", "train-folder", "Dask vs streaming, a folder (goal ≤ 1.3)"),
    ("predict-float", "predict-integer", "integer-only vs float predict --input, throughput "
     "(goal ≥ 0.5)"),
    ("predict-cold", "import-numpy", "cold predict vs import numpy (goal ≤ 2.0)"),
]  # fmt: skip
GROUPS = {
    "default": "sklearn,streaming-arrays,blas-gram-floor,pyarrow-parquet,streaming-parquet,"
    "dask-parquet",
    "csv": "read-pandas-csv,read-pyarrow-csv,read-linreg-ops-csv,pandas-sklearn-csv,"
    "pyarrow-csv,streaming-csv,dask-csv,pyarrow-parquet,streaming-parquet",
    "none": "",
}
PROCESS_GROUPS = {
    "all": ",".join(PROCESSES),
    "train": "train-csv,pandas-sklearn-csv,pyarrow-csv,train-parquet,pyarrow-parquet,"
    "train-1000-parquet,train-1000-csv",
    "predict": "predict-float,predict-integer,predict-cold,import-numpy",
    "dask": "train-parquet,train-dask-parquet,train-folder,train-dask-folder",
    "none": "",
}
BLOCK = 1_000_000
TEST_SIZE = 1e-6  # linreg-ops engines hold out ~1 row in a million (they need 2 test rows)


def test_size(rows: int) -> float:
    """TEST_SIZE, or enough for a few test rows in a small (--quick) run."""
    return max(TEST_SIZE, 20 / rows)


def generate(workdir: Path, rows: int, features: int, arrays: bool, csv: bool) -> np.ndarray:
    """y = X·coef + 1 + noise, features on scales 1e-2…1e2; returns the generating coef."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scales = np.logspace(-2, 2, features)
    coef = rng.normal(size=features) / scales
    stamp = workdir / "shape.json"
    wanted = {"rows": rows, "features": features, "arrays": arrays, "csv": csv}
    if stamp.exists():
        have = json.loads(stamp.read_text())
        same = all(have[k] == wanted[k] for k in ("rows", "features"))
        if same and all(have[k] or not wanted[k] for k in ("arrays", "csv")):
            return coef  # what is there covers what is wanted
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


def child(engine: str, workdir: Path, repeats: int, rows: int) -> dict:
    """Runs in a fresh process: one engine's set-up (untimed), then ``repeats`` timed runs."""
    result: dict = {}
    parquet, csv = workdir / "data.parquet", workdir / "data.csv"
    cleanup = None
    if engine == "blas-gram-floor":
        A = np.load(workdir / "X.npy")
        A = np.column_stack([A, np.ones(len(A))])

        def work() -> object:
            A.T @ A
            return None

    elif engine in ("sklearn", "streaming-arrays"):
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
        config = TrainConfig(test_size=test_size(rows), engine="streaming")
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
                test_size=test_size(rows), engine="dask", scheduler=cluster.scheduler_address
            )

            def cleanup() -> None:
                # one more run, its tasks recorded: where the workers' time went
                from distributed import get_task_stream

                with get_task_stream(client) as stream:
                    started = time.perf_counter()
                    engines.fit(source, config)
                    result["split_wall_seconds"] = time.perf_counter() - started
                kinds = {"partition_rows": "counting rows", "_piece_summary": "reading",
                         "_merge_optional": "reducing"}  # fmt: skip
                split: dict[str, float] = {}
                for task in stream.data:
                    name = str(task["key"][0] if isinstance(task["key"], tuple) else task["key"])
                    kind = next((v for k, v in kinds.items() if name.startswith(k)), "other")
                    busy = sum(s["stop"] - s["start"] for s in task["startstops"])
                    split[kind] = split.get(kind, 0.0) + busy
                result["task_seconds"] = split
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


def process_command(name: str, workdir: Path, run: int) -> list[str]:
    """The argv of one whole-process measurement (fresh models folders per run)."""
    tool = str(Path(sys.executable).with_name("linreg-ops"))
    python = [sys.executable, "-c"]
    if name.startswith("train-"):
        data = {
            "train-csv": "data.csv", "train-parquet": "data.parquet",
            "train-dask-parquet": "data.parquet", "train-folder": "folder",
            "train-dask-folder": "folder",
        }.get(name) or ("small.parquet" if name.endswith("parquet") else "small.csv")  # fmt: skip
        models = workdir / "runs" / f"{name}-{run}"
        engine = ["--engine", "dask"] if "dask" in name else []
        return [tool, "train", "--data", str(workdir / data), "--target", "y",
                "--models-dir", str(models), *engine]  # fmt: skip
    if name == "pandas-sklearn-csv":
        return [*python, PEER_CODE["pandas-sklearn"], str(workdir / "data.csv")]
    if name in ("pyarrow-csv", "pyarrow-parquet"):
        data = workdir / ("data.csv" if name.endswith("csv") else "data.parquet")
        return [*python, PEER_CODE["pyarrow-normal-equations"], str(data)]
    if name == "import-numpy":
        return [*python, PEER_CODE["import-numpy"]]
    models = ["--models-dir", str(workdir / "small-models")]
    if name == "predict-cold":
        return [tool, "predict", *models]
    kind = ["--integer-only"] if name == "predict-integer" else []
    output = workdir / "runs" / f"{name}-{run}.parquet"
    return [tool, "predict", *models, *kind, "--input", str(workdir / "data.parquet"),
            "--output", str(output)]  # fmt: skip


def prepare_processes(workdir: Path, names: list[str]) -> None:
    """The 1,000-row files and the model the predict processes use (quantized: ``run``)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if any(name.endswith("folder") for name in names):
        whole = pq.ParquetFile(workdir / "data.parquet")
        groups = list(range(whole.num_row_groups))
        folder = workdir / "folder"
        folder.mkdir(exist_ok=True)
        for part, chunk in enumerate(np.array_split(groups, min(8, len(groups)))):
            pq.write_table(whole.read_row_groups(chunk.tolist()), folder / f"part-{part}.parquet")
    small = pq.read_table(workdir / "data.parquet").slice(0, 1000)
    pq.write_table(small, workdir / "small.parquet")
    pacsv.write_csv(small, workdir / "small.csv", pacsv.WriteOptions(quoting_header="none"))
    if any(name.startswith("predict") for name in names):
        import shutil

        shutil.rmtree(workdir / "small-models", ignore_errors=True)
        tool = str(Path(sys.executable).with_name("linreg-ops"))
        subprocess.run(
            [tool, "run", "--data", str(workdir / "small.parquet"), "--target", "y",
             "--models-dir", str(workdir / "small-models"),
             "--reports-dir", str(workdir / "small-reports"), "--max-r2-drop", "none"],
            check=True, capture_output=True,
        )  # fmt: skip


def measure_process(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system: less disturbed by a loaded machine than
    wall time) and peak RSS (MiB) of one whole process."""
    import tempfile

    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%U %S %M", *argv],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        user, system, peak = report.read().split()[-3:]
        return seconds, float(user) + float(system), int(peak) / 1024


def run_processes(workdir: Path, names: list[str], repeats: int) -> None:
    """Every process ``repeats`` times, interleaved (one of each per round, so a load that
    comes and goes hits every one alike); median [min–max] and the largest peak RSS."""
    import shutil
    import statistics

    prepare_processes(workdir, names)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rss: dict[str, float] = dict.fromkeys(names, 0.0)
    load = os.getloadavg()[0]
    for run in range(repeats):
        for name in names:
            seconds, cpu_seconds, peak = measure_process(process_command(name, workdir, run))
            times[name].append(seconds)
            cpu[name].append(cpu_seconds)
            rss[name] = max(rss[name], peak)
        shutil.rmtree(workdir / "runs", ignore_errors=True)
    print(
        f"whole processes, {repeats} interleaved rounds, load average {load:.1f} → "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| process | what | median s | [min–max] | CPU s (median) | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        t = times[name]
        print(
            f"| {name} | {PROCESSES[name]} | {statistics.median(t):.2f} | "
            f"[{min(t):.2f}–{max(t):.2f}] | {statistics.median(cpu[name]):.2f} | "
            f"{rss[name]:,.0f} |"
        )
    for ours, theirs, label in PROCESS_RATIOS:
        if ours in times and theirs in times:
            ratio = statistics.median(times[ours]) / statistics.median(times[theirs])
            pairs = [a / b for a, b in zip(times[ours], times[theirs], strict=True)]
            print(f"{label}: {ratio:.2f}× (per round {min(pairs):.2f}–{max(pairs):.2f})")


def reference_coef(workdir: Path, rows: int) -> np.ndarray:
    """scikit-learn on the rows the linreg-ops engines train on (the row-hash split)."""
    import pyarrow.parquet as pq
    from sklearn.linear_model import LinearRegression

    from linreg_ops.training.split import held_out_rows

    table = pq.read_table(workdir / "data.parquet")
    values = np.column_stack([column.to_numpy() for column in table.columns])
    keep = ~held_out_rows(np.arange(rows, dtype=np.uint64), 42, test_size(rows))
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
    parser.add_argument(
        "--processes",
        default="none",
        help="whole processes or groups, comma-separated: all, train, predict, dask, none "
        f"(choose from {', '.join(PROCESSES)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 200,000 rows, one repeat, every engine and process",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 200_000, 1
        args.engines, args.processes = "default,csv", "all"
    workdir = args.workdir or Path(f".bench/fit-{args.rows}x{args.features}")
    if args.child:
        print(json.dumps(child(args.child, workdir, args.repeats, args.rows)))
        return
    engines = [
        e for group in args.engines.split(",") for e in GROUPS.get(group, group).split(",") if e
    ]
    engines = list(dict.fromkeys(engines))
    processes = [
        p
        for group in args.processes.split(",")
        for p in PROCESS_GROUPS.get(group, group).split(",")
        if p
    ]
    processes = list(dict.fromkeys(processes))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engine {unknown[0]!r}: choose from {', '.join(ENGINES)}")
    unknown = [p for p in processes if p not in PROCESSES]
    if unknown:
        raise SystemExit(f"unknown process {unknown[0]!r}: choose from {', '.join(PROCESSES)}")
    arrays = any(e in ("sklearn", "streaming-arrays", "blas-gram-floor") for e in engines)
    csv = any(e.endswith("csv") for e in [*engines, *processes])
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
    if processes:
        run_processes(workdir, processes, args.repeats)
    if not engines:
        return
    print("In-process (each engine in its own process, after an untimed set-up):")
    if "predict-parquet" in engines:
        prepare_model(workdir)
    results = {}
    for engine in engines:
        output = subprocess.run(
            [sys.executable, __file__, "--child", engine, "--workdir", str(workdir),
             "--repeats", str(args.repeats), "--rows", str(args.rows)],
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
            tasks = result.get("task_seconds", {})
            print(
                f"{engine}: a run of {result['split_wall_seconds']:.2f} s wall; worker task "
                "seconds (summed over workers): "
                + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in sorted(tasks.items()))
                + " — the rest is scheduling, transfer and the client's solve"
            )
    ratios = [
        (
            "streaming-arrays",
            "blas-gram-floor",
            "in-memory fit vs the BLAS Gram floor (goal ≤ 1.5)",
        ),
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
