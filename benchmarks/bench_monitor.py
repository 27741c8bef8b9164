"""``linreg-ops monitor`` beside Evidently's DataDriftPreset: the same verdicts, the time, and
constant memory on 10M rows.

    python benchmarks/bench_monitor.py [--quick] [--rows 1000000] [--big-rows 10000000]

Needs Evidently (an optional benchmark dependency, not in any extra:
``.venv/bin/python -m pip install -c requirements-dev.txt evidently``); without it, only the
linreg-ops side runs. California Housing from scikit-learn's cache (set SCIKIT_LEARN_DATA for
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
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHIFTS = {"MedInc": 1.0, "Latitude": 0.5}  # in training σ
RSS_PROBE = (
    "import resource, sys\n"
    "from linreg_ops.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
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


def monitor_process(models: Path, data: Path, reports: Path) -> tuple[float, int, str]:
    """``linreg-ops monitor --json`` as a process: seconds, peak RSS in kB, stdout."""
    command = [sys.executable, "-c", RSS_PROBE, "monitor", "--models-dir", str(models),
               "--input", str(data), "--reports-dir", str(reports), "--json"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    rss = int(result.stderr.split("peak_rss_kb")[-1].split()[0])
    return seconds, rss, result.stdout


def monitor_in_process(models: Path, data: Path) -> tuple[float, dict]:
    from linreg_ops.inference import loading
    from linreg_ops.monitoring.drift import drift_report
    from linreg_ops.monitoring.profile import load_profile
    from linreg_ops.monitoring.stats import Accumulator, scan

    start = time.perf_counter()
    loaded = loading.load(models)
    profile = load_profile(loaded.version, loaded.float)
    stats = scan(data, Accumulator.of(profile, loaded.float), loaded.float)
    report = drift_report(profile, stats, loaded.float.coef, source=str(data), version=1)
    return time.perf_counter() - start, report


def evidently_verdicts(reference, current) -> tuple[float, dict[str, tuple[bool, float]]]:
    """Evidently's DataDriftPreset at its defaults: seconds, {column: (drifted, score)}."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    seconds = time.perf_counter() - start
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        name = metric["metric_id"]
        if not name.startswith("ValueDrift("):
            continue
        config = metric.get("config", {})
        column = config.get("column") or name.split("column=")[1].split(",")[0].rstrip(")")
        threshold = config.get("threshold")
        method = config.get("method", "")
        score = float(metric["value"])
        p_value = "p_value" in str(method).lower() or "ks" in str(method).lower()
        drifted = score < threshold if p_value else score >= threshold
        verdicts[column] = (drifted, score)
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 and 1,000,000 rows")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows = 100_000, 1_000_000
    try:
        import evidently
        import pandas as pd
    except ImportError:
        evidently = None
        print("Evidently is not installed: only linreg-ops runs (pip install evidently)")
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
        if evidently is not None:
            print(
                f"Evidently {evidently.__version__}, linreg-ops from {Path(pipeline.__file__).parent}"
            )
            reference = pd.DataFrame(X_train, columns=names)
        timings = []
        print("\n| data | feature | linreg-ops W/σ | linreg-ops drift | Evidently score | "
              "Evidently drift | agree |")  # fmt: skip
        print("|---|---|---:|---|---:|---|---|")
        disagreements = 0
        for label, path in files.items():
            process_s, _, _ = monitor_process(work / "models", path, reports)
            in_process_s, report = monitor_in_process(work / "models", path)
            evidently_s, verdicts = None, {}
            if evidently is not None:
                current = pd.read_parquet(path)
                evidently_s, verdicts = evidently_verdicts(reference, current)
                del current
            for feature in report["features"]:
                name = feature["name"]
                ours = feature["drift"]
                theirs, score = verdicts.get(name, (None, float("nan")))
                agree = "—" if theirs is None else ("yes" if theirs == ours else "NO")
                disagreements += agree == "NO"
                print(f"| {label} | {name} | {feature['wasserstein_norm']:.4f} | "
                      f"{'DRIFT' if ours else 'no'} | {score:.4f} | "
                      f"{'—' if theirs is None else ('DRIFT' if theirs else 'no')} | {agree} |")  # fmt: skip
            timings.append((label, process_s, in_process_s, evidently_s))
        print(f"\nverdicts disagree on {disagreements} feature(s)")
        print("\n| data | monitor process, s | monitor in-process, s | Evidently Report.run, s "
              "| speed-up (process) | speed-up (in-process) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for label, process_s, in_process_s, evidently_s in timings:
            if evidently_s is None:
                print(f"| {label} | {process_s:.2f} | {in_process_s:.2f} | — | — | — |")
            else:
                print(f"| {label} | {process_s:.2f} | {in_process_s:.2f} | {evidently_s:.2f} | "
                      f"{evidently_s / process_s:.1f}× | {evidently_s / in_process_s:.1f}× |")  # fmt: skip
        big = write_rows(work / "big.parquet", names, X_test, args.big_rows, shift, 3)
        _, small_rss, _ = monitor_process(work / "models", files["shifted"], reports)
        big_s, big_rss, _ = monitor_process(work / "models", big, reports)
        print(f"\nmonitor on {args.rows:,} Parquet rows: peak RSS {small_rss / 1024:.0f} MB; "
              f"on {args.big_rows:,} rows ({os.path.getsize(big) / 1e6:.0f} MB file): peak RSS "
              f"{big_rss / 1024:.0f} MB, {big_s:.1f} s")  # fmt: skip
    print(
        f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()
