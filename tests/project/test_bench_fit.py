"""The whole-process benchmark that docs/benchmarks.md quotes runs as the page shows it (on a
few thousand rows): every process it names, its peers in the same run, and every ratio."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _documented_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    commands = re.findall(r"`(python benchmarks/bench_fit\.py [^`]+)`", text)
    assert commands, "docs/benchmarks.md quotes no bench_fit.py command"
    return [shlex.split(command) for command in commands]


@pytest.mark.parametrize("argv", _documented_commands(), ids=" ".join)
def test_the_documented_process_benchmark_runs_and_prints_every_ratio(tmp_path, argv):
    args = argv[2:]
    args[args.index("--rows") + 1] = "3000"  # the page's command, on a few thousand rows
    args[args.index("--repeats") + 1] = "1"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_fit.py"), *args,
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| process")
    }  # fmt: skip
    for name in ("train-csv", "pandas-sklearn-csv", "train-parquet", "pyarrow-parquet",
                 "train-1000-parquet", "predict-integer", "predict-cold", "import-numpy"):  # fmt: skip
        assert name in rows, f"{name} missing from:\n{result.stdout}"
        seconds, peak = rows[name].split("|")[3], rows[name].split("|")[6]
        assert float(seconds) > 0
        assert float(peak.replace(",", "")) > 10  # an RSS, in MiB
    for label in ("train from CSV vs pandas", "train from Parquet vs pyarrow",
                  "integer-only vs float predict", "cold predict vs import numpy"):  # fmt: skip
        assert re.search(re.escape(label) + r".*: \d+\.\d\d× \(per round", result.stdout), label
