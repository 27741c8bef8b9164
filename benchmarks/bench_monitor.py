"""``linreg-ops monitor`` beside Evidently's DataDriftPreset: the same verdicts, the time, and
constant memory on 10M rows.

    python benchmarks/bench_monitor.py [--quick] [--rows 1000000] [--big-rows 10000000]
                                       [--evidently-python PYTHON]

Evidently is an optional benchmark dependency in an interpreter of its own: Evidently 0.7
does not import under the pandas 3 this project pins (``infer_dtype_from_object`` is gone),
so make one beside the project's and pass it:
``python3 -m venv /tmp/ev && /tmp/ev/bin/pip install evidently 'pandas<3' pyarrow``, then
``--evidently-python /tmp/ev/bin/python``. It reads the same Parquet files; only its
``Report.run`` is timed. Without it, only the linreg-ops side runs. California Housing from scikit-learn's cache (set SCIKIT_LEARN_DATA for
an offline copy), trained into a temporary models folder with the seed's split.

1. Verdicts: --rows rows drawn with replacement from the test split, unshifted, and shifted
   (MedInc by +1 training σ, Latitude by +0.5σ). Per feature, both tools' drift verdict at
   their defaults (Evidently: normed Wasserstein ≥ 0.1 above 1,000 reference rows), on the
   same reference (the 16,512 training rows) and the same current rows.
2. Time: ``linreg-ops monitor`` end to end (a process reading the Parquet file, writing
   drift.md/png/json) and in-process (read + statistics + figures, no plot) against
   Evidently's ``Report.run`` on DataFrames already in memory.
3. Memory: ``linreg-ops monitor`` as a process on --rows and on --big-rows Parquet rows; its
   peak RSS printed for both (constant memory: the two are alike).
--quick: 100,000 and 1,000,000 rows.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHIFTS = {"MedInc": 1.0, "Latitude": 0.5}  # in training σ
RSS_PROBE = (  # VmHWM: this process's peak RSS since exec (ru_maxrss keeps the parent's at fork)
    "import re, sys\n"
    "from linreg_ops.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "status_text = open('/proc/self/status').read()\n"
    "print('peak_rss_kb', re.search(r'VmHWM:\\s+(\\d+)', status_text).group(1), file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def california_split():
    from sklearn.model_selection import train_test_split

    from linreg_ops.training.sources import california_source, use_shared_cache

    use_shared_cache(Path(__file__).parents[1])
    source = california_source()
    X_train, X_test, _, _ = train_test_split(source.X, source.y, test_size=0.2, random_state=42)
    return source, X_train, X_test


def write_rows(path: Path, names: list[str], X_test: np.ndarray, rows: int, shift, seed: int):
    """``rows`` rows drawn from the test split, shifted, written in 1M-row row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, 1_000_000):
            block = X_test[rng.integers(0, len(X_test), min(1_000_000, rows - start))] + shift
            table = pa.table({name: block[:, j] for j, name in enumerate(names)})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def monitor_process(models: Path, data: Path, reports: Path) -> tuple[float, float, int]:
    """``linreg-ops monitor --json`` as a process: wall seconds, CPU seconds, peak RSS (kB)."""
    command = [sys.executable, "-c", RSS_PROBE, "monitor", "--models-dir", str(models),
               "--input", str(data), "--reports-dir", str(reports), "--json"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = int(result.stderr.split("peak_rss_kb")[-1].split()[0])
    return seconds, cpu, rss


def monitor_in_process(models: Path, data: Path) -> tuple[float, float, dict]:
    from linreg_ops.inference import loading
    from linreg_ops.monitoring.drift import drift_report
    from linreg_ops.monitoring.profile import load_profile
    from linreg_ops.monitoring.stats import Accumulator, scan

    start, cpu = time.perf_counter(), time.process_time()
    loaded = loading.load(models)
    profile = load_profile(loaded.version, loaded.float)
    stats = scan(data, Accumulator.of(profile, loaded.float), loaded.float)
    report = drift_report(profile, stats, loaded.float.coef, source=str(data), version=1)
    return time.perf_counter() - start, time.process_time() - cpu, report


EVIDENTLY_WORKER = """
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
start, cpu = time.perf_counter(), time.process_time()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
metrics = snapshot.dict()["metrics"]
print(json.dumps({"seconds": seconds, "cpu": cpu, "metrics": metrics}, default=str))
"""


def evidently_verdicts(python: str, reference: Path, current: Path):
    """Evidently's DataDriftPreset at its defaults, in ``python``: seconds of Report.run,
    {column: (drifted, score)}."""
    result = subprocess.run(
        [python, "-c", EVIDENTLY_WORKER, str(reference), str(current)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    verdicts = {}
    for metric in answer["metrics"]:
        name = metric.get("metric_name") or metric.get("metric_id", "")
        if not name.startswith("ValueDrift("):
            continue
        column = name.split("column=")[1].split(",")[0].rstrip(")")
        method = name.split("method=")[1].split(",")[0].rstrip(")") if "method=" in name else ""
        threshold = float(name.split("threshold=")[1].split(",")[0].rstrip(")"))
        score = float(metric["value"])
        p_value = "p_value" in method.lower() or "K-S" in method or method.lower() == "ks"
        drifted = score < threshold if p_value else score >= threshold
        verdicts[column] = (drifted, score)
    return (answer["seconds"], answer["cpu"]), verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 and 1,000,000 rows")
    parser.add_argument("--evidently-python", help="an interpreter with Evidently installed")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows = 100_000, 1_000_000
    evidently = args.evidently_python
    if evidently is None:
        print("no --evidently-python: only linreg-ops runs")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from linreg_ops import pipeline

    source, X_train, X_test = california_split()
    names = list(source.feature_names)
    sigma = X_train.std(axis=0)
    shift = np.array([SHIFTS.get(name, 0.0) for name in names]) * sigma
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        work = Path(folder)
        pipeline.train(source, work / "models")
        reports = work / "reports"
        files = {
            "unshifted": write_rows(work / "unshifted.parquet", names, X_test, args.rows, 0.0, 1),
            "shifted": write_rows(work / "shifted.parquet", names, X_test, args.rows, shift, 2),
        }
        print(f"{args.rows:,} rows × {len(names)} features; reference: {len(X_train):,} "
              f"training rows; shifted: {', '.join(f'{k} +{v:g}σ' for k, v in SHIFTS.items())}")  # fmt: skip
        reference = work / "reference.parquet"
        pq.write_table(pa.table({n: X_train[:, j] for j, n in enumerate(names)}), reference)
        if evidently is not None:
            version = subprocess.run(
                [evidently, "-c", "import evidently; print(evidently.__version__)"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            print(f"Evidently {version} ({evidently})")
        timings = []
        print("\n| data | feature | linreg-ops W/σ | linreg-ops drift | Evidently score | "
              "Evidently drift | agree |")  # fmt: skip
        print("|---|---|---:|---|---:|---|---|")
        disagreements = 0
        for label, path in files.items():
            process_s = monitor_process(work / "models", path, reports)[:2]
            in_process_s = monitor_in_process(work / "models", path)
            report = in_process_s[2]
            evidently_s, verdicts = None, {}
            if evidently is not None:
                evidently_s, verdicts = evidently_verdicts(evidently, reference, path)
            for feature in report["features"]:
                name = feature["name"]
                ours = feature["drift"]
                theirs, score = verdicts.get(name, (None, float("nan")))
                agree = "—" if theirs is None else ("yes" if theirs == ours else "NO")
                disagreements += agree == "NO"
                print(f"| {label} | {name} | {feature['wasserstein_norm']:.4f} | "
                      f"{'DRIFT' if ours else 'no'} | {score:.4f} | "
                      f"{'—' if theirs is None else ('DRIFT' if theirs else 'no')} | {agree} |")  # fmt: skip
            timings.append((label, process_s, in_process_s[:2], evidently_s))
        print(f"\nverdicts disagree on {disagreements} feature(s)")
        print("\nwall seconds (CPU seconds): monitor as a process (load, read, statistics, "
              "drift.md/png/json) and in-process (load, read, statistics); Evidently's Report.run "
              "on DataFrames in memory")  # fmt: skip
        print("| data | monitor process | monitor in-process | Evidently | speed-up (process, "
              "wall / CPU) | speed-up (in-process, wall / CPU) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")

        def pair(times) -> str:
            return f"{times[0]:.2f} ({times[1]:.2f})"

        for label, process_s, in_process_s, evidently_s in timings:
            if evidently_s is None:
                print(f"| {label} | {pair(process_s)} | {pair(in_process_s)} | — | — | — |")
                continue
            ratios = [
                f"{evidently_s[0] / ours[0]:.1f}× / {evidently_s[1] / ours[1]:.1f}×"
                for ours in (process_s, in_process_s)
            ]
            print(f"| {label} | {pair(process_s)} | {pair(in_process_s)} | {pair(evidently_s)} | "
                  f"{ratios[0]} | {ratios[1]} |")  # fmt: skip
        big = write_rows(work / "big.parquet", names, X_test, args.big_rows, shift, 3)
        small_rss = monitor_process(work / "models", files["shifted"], reports)[2]
        big_s, big_cpu, big_rss = monitor_process(work / "models", big, reports)
        print(f"\nmonitor on {args.rows:,} Parquet rows: peak RSS {small_rss / 1024:.0f} MB; "
              f"on {args.big_rows:,} rows ({os.path.getsize(big) / 1e6:.0f} MB file): peak RSS "
              f"{big_rss / 1024:.0f} MB, {big_s:.1f} s ({big_cpu:.1f} s CPU)")  # fmt: skip


if __name__ == "__main__":
    main()
