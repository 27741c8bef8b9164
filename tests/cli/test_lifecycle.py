"""``versions``, ``show``, ``diff``, ``promote``, ``rollback``, ``history``, ``gc`` and
``--version``/``--alias`` as a user runs them (real processes), on small folders: a good
model (versions 1, 2) and a worse one trained on noisier data (version 3)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import abc_csv, snapshot, three_feature_rows
from linreg_ops import lifecycle, pipeline
from linreg_ops.errors import InputError
from linreg_ops.storage import store
from linreg_ops.training import sources


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """v1 train, v2 quantize (current after them), v3 train on noisier data; current = 2."""
    root = tmp_path_factory.mktemp("lifecycle")
    rng = np.random.default_rng(11)
    X, y = three_feature_rows(rng, 400)
    good = abc_csv(root / "good.csv", X, y)
    noisy = abc_csv(root / "noisy.csv", X, y + rng.normal(scale=3.0, size=400))
    models = root / "models"
    pipeline.train(sources.file_source(good, "y"), models)
    pipeline.quantize(models)
    pipeline.train(sources.file_source(noisy, "y"), models)
    with store.writer(models, "test") as writer:
        writer.move_alias("current", 2, "promote")
    return models


@pytest.fixture
def models(folder, tmp_path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "models", symlinks=True))


def cli(run_cli, models: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return run_cli(*args, "--models-dir", models, check=check)


def test_versions_lists_every_version_oldest_first_with_aliases(run_cli, models):
    listed = json.loads(cli(run_cli, models, "versions", "--json", check=True).stdout)
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert [v["current"] for v in listed] == [False, True, False]
    assert listed[1]["aliases"] == ["current"]
    assert set(listed[1]["r2"]) == {"float", "quantized", "integer"}
    assert listed[1]["r2"]["float"] == listed[0]["r2"]["float"]  # quantize carries the fit
    assert listed[2]["r2"]["float"] < 0.5 < listed[0]["r2"]["float"]
    assert all(len(v["data_sha256"]) == 64 for v in listed)
    table = cli(run_cli, models, "versions", check=True).stdout.splitlines()
    assert table[0].startswith("| version | created (UTC) | data |")
    assert table[3].endswith("| current |")


def test_show_and_diff_put_parameters_metrics_and_coefficients_side_by_side(run_cli, models):
    shown = json.loads(cli(run_cli, models, "show", "2", "--json", check=True).stdout)
    assert set(shown["coefficients"]) == {"a", "b", "c"}
    assert shown["coefficients"]["b"] == pytest.approx(-2.0, abs=0.05)
    assert shown["parameters"]["quantization"]["dtype"] == "int8"
    text = cli(run_cli, models, "diff", "1", "3", check=True).stdout
    assert "| coef b |" in text
    assert "| R² float |" in text
    row = next(line for line in text.splitlines() if line.startswith("| data SHA-256 |"))
    assert row.endswith("| changed |")  # other data


def test_the_gate_refuses_a_worse_version_with_exit_3_and_changes_nothing(run_cli, models):
    before = snapshot(models)
    result = cli(run_cli, models, "promote", "3", "--alias", "current")
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "worse by" in result.stderr
    assert "--max-r2-regression 0.001" in result.stderr
    assert snapshot(models) == before
    loose = cli(run_cli, models, "promote", "3", "--alias", "current", "--max-r2-regression", "1")
    assert loose.returncode == 0, loose.stderr
    assert store.alias_holder(models, "current") == 3


def test_force_promotes_and_rollback_returns_to_the_previous_holder(run_cli, models):
    forced = cli(run_cli, models, "promote", "3", "--alias", "current", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "--force" in forced.stdout
    predicted = cli(run_cli, models, "predict", check=True).stdout
    assert "version 3 of" in predicted
    assert os.readlink(models / "model.json") == "current/model.json"  # the seed's paths
    assert (models / "quantized_model.json").is_symlink() is False  # v3 has none: unlinked
    back = cli(run_cli, models, "rollback", "--alias", "current")
    assert back.returncode == 0, back.stderr
    assert "current: version 2 (was version 3; rollback" in back.stdout
    assert (models / "quantized_model.json").is_symlink()
    logged = json.loads(cli(run_cli, models, "history", "--alias", "current", "--json").stdout)
    assert [(m["action"], m["version"], m["previous"]) for m in logged] == [
        ("publish", 1, None),
        ("publish", 2, 1),
        ("publish", 3, 2),
        ("promote", 2, 3),
        ("promote", 3, 2),
        ("rollback", 2, 3),
    ]
    assert all(m["user"] and m["time_utc"] for m in logged)


def test_any_name_is_an_alias_and_reading_commands_follow_it(run_cli, models, tmp_path):
    assert cli(run_cli, models, "promote", "1", "--alias", "champion").returncode == 0
    assert os.readlink(models / "aliases" / "champion") == "../versions/1"
    scored = cli(run_cli, models, "predict", "--alias", "champion", check=True).stdout
    assert "version 1 of" in scored
    evaluated = cli(run_cli, models, "evaluate", "--version", "3", check=True).stdout
    assert "version 3" in evaluated
    out = tmp_path / "v1.onnx"
    exported = cli(run_cli, models, "export", "--format", "onnx", "--alias", "champion",
                   "--output", out, check=True)  # fmt: skip
    assert "of version 1" in exported.stdout
    assert store.read_exports(models)[-1].version == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["promote", "9", "--alias", "champion"], "has no version 9"),
        (["promote", "1", "--alias", "Champion!"], "is not a name"),
        (["promote", "2", "--alias", "current"], "already names version 2"),
        (["rollback", "--alias", "champion"], "has no alias 'champion'"),
        (["history", "--alias", "nobody"], "no alias 'nobody'"),
        (["predict", "--alias", "nobody"], "has no alias 'nobody'"),
        (["predict", "--version", "7"], "has no version 7"),
        (
            ["evaluate", "--version", "1", "--alias", "current"],
            "not allowed with argument --version",
        ),
        (["show", "5"], "has no version 5"),
    ],
)
def test_bad_arguments_are_exit_2_in_one_line_and_change_nothing(run_cli, models, args, words):
    before = snapshot(models)
    result = cli(run_cli, models, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert snapshot(models) == before


def test_rollback_with_no_earlier_holder_is_exit_2(run_cli, models):
    assert cli(run_cli, models, "promote", "1", "--alias", "champion").returncode == 0
    result = cli(run_cli, models, "rollback", "--alias", "champion")
    assert result.returncode == 2
    assert "no earlier holder" in result.stderr


def test_a_busy_folder_makes_promote_wait_for_the_lock(run_cli, models):
    with store.writer(models, "test"):
        result = cli(run_cli, models, "promote", "1", "--alias", "x", "--lock-timeout", "0.3")
    assert result.returncode == 2
    assert "is being written by PID" in result.stderr
    assert cli(run_cli, models, "promote", "1", "--alias", "x").returncode == 0


LEASE_HOLDER = """
import sys, time
from linreg_ops.storage import store
lease = store.take_lease(sys.argv[1], int(sys.argv[2]))
print("leased", flush=True)
time.sleep(60)
"""


def test_gc_keeps_alias_holders_and_leased_versions_and_drops_stale_leases(run_cli, models):
    assert cli(run_cli, models, "promote", "1", "--alias", "champion").returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", LEASE_HOLDER, str(models), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "leased"
        # a server that crashed: its lease file stays, its lock went with it
        crashed = subprocess.run([sys.executable, "-c", LEASE_HOLDER.replace("time.sleep(60)", ""),
                                  str(models), "2"], capture_output=True, check=True)  # fmt: skip
        assert crashed.returncode == 0
        assert len(list((models / "leases").glob("*.lease"))) == 2
        result = cli(run_cli, models, "gc", "--keep", "1", check=True)
        assert "Kept version 1: alias champion" in result.stdout
        assert "Kept version 2: alias current" in result.stdout
        assert "Kept version 3: leased by a serving process" in result.stdout
    finally:
        holder.kill()
        holder.communicate()
    assert store.version_numbers(models) == [1, 2, 3]
    assert len(list((models / "leases").glob("*.lease"))) == 1  # the stale one went
    cli(run_cli, models, "promote", "3", "--alias", "champion", "--force", check=True)
    result = cli(run_cli, models, "gc", "--keep", "1", check=True)
    assert "Removed versions: 1" in result.stdout  # v3 is no longer leased: its server died
    assert store.version_numbers(models) == [2, 3]
    assert list((models / "leases").glob("*.lease")) == []


def test_gc_removes_a_version_a_killed_writer_left_unpublished(run_cli, models):
    # what a kill between the rename into versions/ and the switch of current leaves
    shutil.copytree(models / "versions" / "3", models / "versions" / "4")
    manifest = models / "versions" / "4" / "manifest.json"
    os.chmod(manifest, 0o644)
    manifest.write_text(manifest.read_text().replace('"version": 3', '"version": 4'))
    listed = json.loads(cli(run_cli, models, "versions", "--json", check=True).stdout)
    assert [v["published"] for v in listed] == [True, True, True, False]
    result = cli(run_cli, models, "gc", "--keep", "5", check=True)
    assert "Removed versions: 4" in result.stdout
    assert store.version_numbers(models) == [1, 2, 3]


# Rollback's rule, against a model of it: every promote stacks its version, every rollback
# takes the top off; rollback with one version on the stack is refused.
@given(st.lists(st.one_of(st.integers(1, 3), st.none()), min_size=1, max_size=8))
def test_rollback_returns_along_the_promotions_in_reverse(folder, tmp_path_factory, steps):
    models = Path(shutil.copytree(folder, tmp_path_factory.mktemp("prop") / "m", symlinks=True))
    stack: list[int] = []
    for step in steps:
        if step is None:  # rollback
            if len(stack) < 2:
                with pytest.raises(InputError, match=r"no earlier holder|has no alias"):
                    lifecycle.rollback_target(models, "champion")
                continue
            assert lifecycle.rollback_target(models, "champion") == stack[-2]
            with store.writer(models, "test") as writer:
                writer.move_alias("champion", stack[-2], "rollback")
            stack.pop()
        elif not stack or stack[-1] != step:
            with store.writer(models, "test") as writer:
                writer.move_alias("champion", step, "promote")
            stack.append(step)
        assert store.alias_holder(models, "champion") == (stack[-1] if stack else None)


def test_aliases_and_history_reached_through_links_are_refused(run_cli, models, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (models / "aliases").symlink_to(elsewhere)
    result = cli(run_cli, models, "promote", "1", "--alias", "champion")
    assert result.returncode == 2
    assert "is not a folder (a symbolic link?)" in result.stderr
    assert list(elsewhere.iterdir()) == []
    (models / "aliases").unlink()
    history = models / "history.jsonl"
    (tmp_path / "outside.jsonl").write_bytes(history.read_bytes())
    history.unlink()
    history.symlink_to(tmp_path / "outside.jsonl")
    before = (tmp_path / "outside.jsonl").read_bytes()
    result = cli(run_cli, models, "promote", "1", "--alias", "champion")
    assert result.returncode == 2
    assert (tmp_path / "outside.jsonl").read_bytes() == before
    assert store.alias_holder(models, "champion") is None
