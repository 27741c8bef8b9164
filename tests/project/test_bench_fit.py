"""Every bench_fit.py command that docs/benchmarks.md quotes runs as the page shows it (on a
few thousand rows): a row for every engine and process it names, and every ratio whose two
sides it ran."""

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_fit.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_fit", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documented_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    commands = re.findall(r"`(python benchmarks/bench_fit\.py [^`]+)`", text)
    assert commands, "docs/benchmarks.md quotes no bench_fit.py command"
    # the test runs each on a few thousand rows: commands that differ only in --rows are one
    runs = {}
    for command in commands:
        argv = shlex.split(command)
        key = [a if argv[i - 1] != "--rows" else "N" for i, a in enumerate(argv)]
        runs.setdefault(" ".join(key), argv)
    return list(runs.values())


def _expand(value: str, groups: dict[str, str]) -> list[str]:
    names = [n for group in value.split(",") for n in groups.get(group, group).split(",") if n]
    return list(dict.fromkeys(names))


@pytest.mark.parametrize("argv", _documented_commands(), ids=" ".join)
def test_a_documented_command_runs_and_prints_every_row_and_ratio(tmp_path, argv):
    bench = _bench()
    args = argv[2:]
    args[args.index("--rows") + 1] = "3000"  # the page's command, on a few thousand rows
    if "--repeats" in args:  # the index table quotes a command without it
        args[args.index("--repeats") + 1] = "1"
    result = subprocess.run(
        [sys.executable, str(BENCH), *args, "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    option = {
        a: args[i + 1] for i, a in enumerate(args) if a.startswith("--") and i + 1 < len(args)
    }
    engines = _expand(option.get("--engines", "default"), bench.GROUPS)
    processes = _expand(option.get("--processes", "none"), bench.PROCESS_GROUPS)
    rows = {
        line.split("|")[1].strip(): line.split("|") for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith(("| process", "| engine"))
    }  # fmt: skip
    assert set(rows) == {*engines, *processes}, result.stdout
    for name in processes:
        assert float(rows[name][3]) > 0  # median seconds
        assert float(rows[name][6].replace(",", "")) > 10  # a peak RSS, in MiB
    for ours, theirs, label in bench.PROCESS_RATIOS:
        if ours in processes and theirs in processes:
            assert re.search(re.escape(label) + r": \d+\.\d\d× \(per round", result.stdout), label
    if "streaming-arrays" in engines and "blas-gram-floor" in engines:
        assert re.search(r"Gram floor \(goal ≤ 1\.5\): \d+\.\d\d× the time", result.stdout)
