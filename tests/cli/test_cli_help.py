"""The front door of the CLI (issue 14, item 3): help that says what each option does and its
default, examples that run, suggestions for typos, --json for scripts, -q/-v, completion."""

import argparse
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from helpers import snapshot
from linreg_ops._version import __version__
from linreg_ops.cli.parser import EXAMPLES_HEADING, build_parser, examples
from shell_examples import shell, workspace

pytestmark = pytest.mark.slow


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


HELP_EXAMPLES = [(name, line) for name, sub in commands().items() for line in examples(sub)]


# --------------------------------------------------------------------------- help


def test_bare_command_prints_the_help_and_exits_0(run_cli):
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: linreg-ops")
    assert all(f"    {name} " in result.stdout for name in commands())
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(run_cli, flag):
    assert run_cli(flag, check=True).stdout.strip() == f"linreg-ops {__version__}"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_has_a_description_and_examples(name):
    sub = commands()[name]
    assert len(sub.description or "") > 40
    assert examples(sub), f"{name} --help shows no example"
    assert all(line.startswith("linreg-ops ") or "linreg-ops " in line for line in examples(sub))
    assert EXAMPLES_HEADING in sub.format_help()


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_says_what_it_does_and_its_default(name):
    sub = commands()[name]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = formatter._get_help_string(action) or ""
        flag = "/".join(action.option_strings) or action.dest
        assert len(text) > 10, f"{name} {flag} has no help"
        if action.option_strings and action.default not in (None, False):
            assert "default" in text, f"{name} {flag}: its default {action.default!r} is unsaid"


def test_defaults_are_shown_in_help(run_cli):
    out = " ".join(run_cli("train", "--help", check=True).stdout.split())
    assert "the split's seed (default: 42)" in out
    assert "held out for the test split (default: 0.2)" in out
    assert "seconds to wait for another writer (default: 10)" in out


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(("name", "line"), HELP_EXAMPLES, ids=[line for _, line in HELP_EXAMPLES])
def test_each_help_example_runs(trained_dir, tmp_path, name, line):
    """Every line under ``examples:`` in a command's --help, run as written in bash from a
    folder holding models/ (California, trained and quantized) and examples/."""
    folder = workspace(tmp_path / "checkout", trained_dir)
    with shell(folder) as sh:
        result = sh.run(line)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        if "--json" in line:
            assert isinstance(json.loads(result.stdout), dict), result.stdout
        if name == "serve":
            health = sh.run("curl -sS --fail http://localhost:8000/ready")
            assert health.returncode == 0, health.stderr


# --------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trian"], "linreg-ops: error: argument COMMAND: invalid choice: 'trian'"),
        (["trian"], "did you mean 'train'?"),
        (
            ["train", "--tagret", "price"],
            "unrecognized argument '--tagret'; did you mean '--target'?",
        ),
        (["predict", "--modle", "float"], "did you mean '--model'?"),
        (["predict", "--model", "flot"], "invalid choice: 'flot'"),
        (["predict", "--model", "flot"], "did you mean 'float'?"),
        (["export", "--format", "onx"], "did you mean 'onnx'?"),
    ],
)
def test_typos_suggest_the_closest_name_in_one_line(run_cli, models_copy, args, expected):
    before = snapshot(models_copy)
    result = run_cli(*args, "--models-dir", models_copy)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert result.stdout == ""
    assert snapshot(models_copy) == before


def test_nothing_close_suggests_nothing(run_cli):
    result = run_cli("xyzzy")
    assert result.returncode == 2
    assert "did you mean" not in result.stderr


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_mistyped_column_suggests_the_closest(run_cli, tmp_path, command):
    data = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    result = run_cli(command, "--data", data, "--target", "prcie", "--models-dir", tmp_path / "m")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"linreg-ops {command}: error: target column 'prcie' not found in")
    assert "did you mean 'price'?" in line
    assert not (tmp_path / "m").exists()


def test_a_mistyped_feature_suggests_the_closest(run_cli, tmp_path):
    data = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    result = run_cli(
        "train", "--data", data, "--target", "price", "--features", "MedInc,HouseAeg",
        "--models-dir", tmp_path / "m",
    )  # fmt: skip
    assert result.returncode == 2
    assert "column 'HouseAeg' not found" in result.stderr
    assert "did you mean 'HouseAge'?" in result.stderr


# --------------------------------------------------------------------------- --json, -q, -v


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["predict"], {"model", "version", "rows", "metrics", "first_predictions"}),
        (["predict", "--model", "integer"], {"clipped_rows"}),
        (["evaluate"], {"version", "source", "n_rows", "models"}),
        (["quantize", "--dtype", "int6"], {"version", "quantized", "integer"}),
        (["predict", "--input", "{houses}", "--output", "{tmp}/p.csv"], {"rows", "output"}),
        (["export", "--format", "c", "--model", "integer"], {"sha256", "path", "bytes"}),
    ],
)
def test_json_is_one_object_and_the_only_thing_on_stdout(
    run_cli, models_copy, tmp_path, args, keys
):
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    args = [a.format(houses=houses, tmp=tmp_path) for a in args]
    result = run_cli(*args, "--json", "--models-dir", models_copy, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)  # the whole of stdout: nothing else is there
    assert keys <= set(facts), facts
    assert result.stderr.strip(), "the prose moved to stderr"


def test_json_figures_are_the_prose_figures(run_cli, models_copy):
    prose = run_cli("predict", "--models-dir", models_copy, check=True).stdout
    facts = json.loads(run_cli("predict", "--json", "--models-dir", models_copy).stdout)
    assert f"R² Score: {facts['metrics']['r2']:.4f}" in prose
    assert facts["rows"] == 4128
    assert facts["first_predictions"][0] == pytest.approx(0.71912284)


def test_json_and_predictions_on_stdout_conflict(run_cli, models_copy):
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    result = run_cli(
        "predict", "--input", houses, "--output", "-", "--json", "--models-dir", models_copy
    )
    assert result.returncode == 2
    assert "--json and --output - both want standard output" in result.stderr
    assert result.stdout == ""


def test_quiet_prints_nothing_but_keeps_data_and_errors(run_cli, models_copy):
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    assert run_cli("predict", "-q", "--models-dir", models_copy, check=True).stdout == ""
    piped = run_cli(
        "predict", "-q", "--input", houses, "--output", "-", "--models-dir", models_copy
    )
    assert piped.stdout.splitlines()[0] == "prediction"
    assert len(piped.stdout.splitlines()) == 301
    assert piped.stderr == ""
    bad = run_cli("predict", "-q", "--models-dir", models_copy / "nothing")
    assert bad.returncode == 2
    assert bad.stderr.strip()


def test_verbose_says_how_long_and_shows_the_traceback(run_cli, models_copy):
    ok = run_cli("evaluate", "-v", "--models-dir", models_copy, check=True)
    assert re.search(r"linreg-ops evaluate: done in \d+\.\d\d s", ok.stderr)
    bad = run_cli("evaluate", "-v", "--models-dir", models_copy / "nothing")
    assert bad.returncode == 2
    assert "Traceback" in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("linreg-ops evaluate: error:")


# --------------------------------------------------------------------------- the seed's lines


def test_the_seed_lines_print_only_for_the_seed_data(run_cli, tmp_path):
    """Not for other data, nor the streaming engine (tests/cli/test_seed_shims.py checks that
    the seed's own run still prints them)."""
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    models = tmp_path / "models"
    train = run_cli("train", "--data", houses, "--target", "price", "--models-dir", models)
    assert train.returncode == 0, train.stderr
    assert "Creating LinearRegression model." not in train.stdout
    assert "Training LinearRegression (engine: auto)." in train.stdout
    quantize = run_cli("quantize", "--models-dir", models, check=True)
    assert "Inference Test" not in quantize.stdout
    assert "Integer weights:" in quantize.stdout
    streaming = run_cli("train", "--engine", "streaming", "--models-dir", models, check=True)
    assert "Creating LinearRegression model." not in streaming.stdout
    assert "Training LinearRegression (engine: streaming)." in streaming.stdout


# --------------------------------------------------------------------------- export, completion


def test_export_defaults_to_the_exports_folder(run_cli, models_copy, tmp_path):
    result = run_cli(
        "export", "--format", "onnx", "--models-dir", models_copy, cwd=tmp_path, check=True
    )
    assert (tmp_path / "exports" / "float.onnx").stat().st_size > 0
    assert "exports/float.onnx" in result.stdout
    assert "exports/" in (Path(__file__).resolve().parents[2] / ".gitignore").read_text()


def complete(line: str, cwd: Path) -> list[str]:
    """What bash's completion gets for ``line`` (argcomplete writes to file descriptor 8)."""
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_SUPPRESS_SPACE": "1"}  # fmt: skip
    executable = Path(sys.executable).with_name("linreg-ops")
    result = subprocess.run(
        ["bash", "-c", f"'{executable}' 8>&1 9>/dev/null"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(word.strip() for word in result.stdout.split("\n") if word.strip())


def test_completion_completes_commands_flags_and_choices(tmp_path):
    assert complete("linreg-ops tr", tmp_path) == ["train"]
    assert "--model" in complete("linreg-ops predict --mo", tmp_path)
    assert complete("linreg-ops predict --model ", tmp_path) == ["float", "integer", "quantized"]


def test_completion_prints_the_shell_code(run_cli):
    code = run_cli("completion", "bash", check=True).stdout
    assert "complete " in code
    assert "linreg-ops" in code
    assert run_cli("completion", "cmd").returncode == 2


# --------------------------------------------------------------------------- progress


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with standard error on a pseudo-terminal; return (status, what it showed)."""
    leader, follower = pty.openpty()
    # a terminal of 24 rows × 100 columns (a fresh pty has 0 columns: tqdm would draw nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    executable = Path(sys.executable).with_name("linreg-ops")
    process = subprocess.Popen(
        [str(executable), *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process exited
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=60), shown.decode(errors="replace")


def test_predict_shows_progress_on_a_terminal_only(run_cli, models_copy, tmp_path):
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    args = ["predict", "--input", str(houses), "--output", str(tmp_path / "p.csv"),
            "--models-dir", str(models_copy)]  # fmt: skip
    status, shown = run_on_a_terminal([*args, "--chunk-rows", "100"], tmp_path)
    assert status == 0
    assert re.search(r"\b300 rows\b", shown), shown
    assert_bytes_with_a_total_and_an_eta(shown, houses.stat().st_size)
    piped = run_cli(*args, check=True)
    assert piped.stderr == ""


def assert_bytes_with_a_total_and_an_eta(shown: str, size: int) -> None:
    """tqdm's bar of bytes: ``100%|…| 25.6k/25.6k [00:00<00:00, 1.2MB/s, 300 rows]`` — the
    share, the bytes read of the file's size (KiB), and the time left."""
    total = f"{size / 1024:.1f}k"
    assert "100%" in shown, shown
    assert f"{total}/{total}" in shown, shown
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", shown), shown  # elapsed<ETA


def test_sweep_shows_schemes_done_of_the_total_on_a_terminal(models_copy, tmp_path):
    args = ["sweep", "--models-dir", str(models_copy), "--reports-dir", str(tmp_path / "r")]
    status, shown = run_on_a_terminal(args, tmp_path)
    assert status == 0, shown
    assert "90/90" in shown, shown  # 15 widths × 3 roundings × 2 granularities, with an ETA


def test_export_when_exports_is_a_file_is_one_line(run_cli, models_copy, tmp_path):
    """Attack: the default folder's name taken by a file (mkdir's FileExistsError)."""
    (tmp_path / "exports").write_text("not a folder")
    result = run_cli("export", "--format", "onnx", "--models-dir", models_copy, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "linreg-ops export: error: cannot make the folder exports/ for the export: "
        "File exists; pass --output PATH"
    ]


def test_json_object_is_strict_json(capsys):
    """numpy numbers and arrays, paths, NaN and ∞ (JSON has none: null) all print as JSON."""
    import numpy as np

    from linreg_ops.cli import render

    render.json_object(
        {"r2": np.float64("nan"), "n": np.int64(3), "w": np.array([1, -2], dtype=np.int8),
         "path": Path("models"), "inf": float("inf"), "nested": [(np.float32(0.5),)]}
    )  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "r2": None,
        "n": 3,
        "w": [1, -2],
        "path": "models",
        "inf": None,
        "nested": [[0.5]],
    }


def test_train_shows_rows_read_on_a_terminal_only(run_cli, tmp_path):
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    args = ["train", "--data", str(houses), "--target", "price", "--chunk-rows", "100"]
    status, shown = run_on_a_terminal([*args, "--models-dir", str(tmp_path / "a")], tmp_path)
    assert status == 0, shown
    assert re.search(r"\b300 rows\b", shown), shown  # 3 blocks of 100 rows
    assert_bytes_with_a_total_and_an_eta(shown, houses.stat().st_size)
    piped = run_cli(*args, "--models-dir", tmp_path / "b", check=True)
    assert piped.stderr == ""


def test_predict_progress_totals_every_file_of_a_folder(models_copy, tmp_path):
    """The bar's total is the folder's bytes (a CSV and a Parquet file), reached at the end."""
    houses = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_bytes(houses.read_bytes())
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(houses), folder / "b.parquet", row_group_size=50)
    size = sum(path.stat().st_size for path in folder.iterdir())
    args = ["predict", "--input", str(folder), "--output", str(tmp_path / "p.csv"),
            "--models-dir", str(models_copy), "--chunk-rows", "50"]  # fmt: skip
    status, shown = run_on_a_terminal(args, tmp_path)
    assert status == 0, shown
    assert re.search(r"\b600 rows\b", shown), shown
    assert_bytes_with_a_total_and_an_eta(shown, size)


def test_a_refused_predict_shows_its_error_and_no_empty_bar(models_copy, tmp_path):
    """The bar is drawn at the first block read: a missing column is one line, alone."""
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    args = ["predict", "--input", str(bad), "--output", str(tmp_path / "p.csv"),
            "--models-dir", str(models_copy)]  # fmt: skip
    status, shown = run_on_a_terminal(args, tmp_path)
    assert status == 2
    assert shown.strip().splitlines() == [
        f"linreg-ops predict: error: column 'MedInc' not found in {bad} (columns are: a, b)"
    ], shown
