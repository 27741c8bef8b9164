"""Kill ``promote`` and ``rollback`` after each of their file operations in turn (every k,
with the store's fault driver): the alias names its old holder or its new one, never
neither; ``history.jsonl`` tells which (a move logged but never switched is left out); the
next writer removes what the killed one left."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import abc_csv, three_feature_rows
from linreg_ops import lifecycle, pipeline
from linreg_ops.training import sources

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("fault_driver.py")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Version 1 (train), version 2 (quantize: current); champion moved 1 → 2."""
    folder = tmp_path_factory.mktemp("aliases")
    X, y = three_feature_rows(np.random.default_rng(5), 300)
    data = abc_csv(folder / "data.csv", X, y)
    models = folder / "models"
    pipeline.train(sources.file_source(data, "y"), models)
    pipeline.quantize(models)
    lifecycle.promote(models, 1, "champion")
    lifecycle.promote(models, 2, "champion")
    return models


def kill_at_each_step(template: Path, tmp_path: Path, argv: list[str]):
    """The fault driver's ``kill`` run of a command on copies of ``template``: (its dry run,
    one trial per file operation killed after, the next writer's recovery)."""
    result = subprocess.run(
        [sys.executable, str(DRIVER), "kill", str(template), str(tmp_path / "work"), "--", *argv],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[0], lines[1:-1], lines[-1]


CASES = {
    "promote current": (["promote", "1", "--alias", "current"], "current", 2, 1),
    "promote champion": (["promote", "1", "--alias", "champion"], "champion", 2, 1),
    "rollback champion": (["rollback", "--alias", "champion"], "champion", 2, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_kill_after_any_file_operation_of_a_move_leaves_old_or_new_holder(
    template, tmp_path, case
):
    args, alias, old, new = CASES[case]
    dry, trials, recovery = kill_at_each_step(
        template, tmp_path, [*args, "--models-dir", "{models}"]
    )
    assert dry["status"] == 0, dry
    assert dry["aliases"][alias] == new, dry
    before = [m for m in dry["moves"] if m[0] == alias][:-1]
    assert len(trials) == dry["count"] >= 5
    moved = False
    for t in trials:
        where = f"{case}: killed after operation {t['k']} ({t['operation']})"
        assert t["error"] is None, f"{where}: {t['error']}"  # current loads whole
        holder = t["aliases"].get(alias)
        assert holder in (old, new), f"{where}: {alias} names {holder}"
        moved = moved or holder == new
        assert holder == (new if moved else old), f"{where}: went back to {old}"
        logged = [m for m in t["moves"] if m[0] == alias]
        assert logged[-1][2] == holder, f"{where}: the history says {logged[-1]}, not {holder}"
        assert logged[: len(before)] == before, f"{where}: earlier history changed"
        if alias == "current":  # seed paths not yet relinked are the next writer's job
            assert t["current"] == holder, where
    assert trials[0]["aliases"][alias] == old
    assert trials[-1]["aliases"][alias] == new
    assert recovery["leftovers"] == [], "the next writer removes what a killed one left"
    assert recovery["seed_links_ok"], "the next writer relinks the seed paths"
    print(f"\n{case}: killed after each of its {dry['count']} file operations in turn")


def test_a_kill_after_any_file_operation_of_gc_leaves_every_listed_version_whole(
    template, tmp_path
):
    """gc moves a version out of versions/ in one rename, then removes its files: a kill at
    any step leaves it listed and whole, or gone; the next writer empties what was left."""
    argv = ["gc", "--keep", "1", "--models-dir", "{models}"]
    dry, trials, recovery = kill_at_each_step(template, tmp_path, argv)
    assert dry["versions"] == [2], dry
    for t in trials:
        where = f"gc: killed after operation {t['k']} ({t['operation']})"
        assert t["error"] is None, f"{where}: {t['error']}"
        assert t["versions"] in ([1, 2], [2]), f"{where}: {t['versions']}"
        assert t["aliases"] == {"current": 2, "champion": 2}, where
    assert trials[0]["versions"] == [1, 2]
    assert recovery["leftovers"] == []
    print(f"\ngc: killed after each of its {dry['count']} file operations in turn")


def test_a_torn_history_line_is_skipped_and_the_next_move_starts_a_new_line(template, tmp_path):
    models = Path(shutil.copytree(template, tmp_path / "models", symlinks=True))
    history = models / "history.jsonl"
    whole = history.read_bytes()
    history.write_bytes(whole + b'{"action": "promote", "alias": "champ')  # killed mid-write
    assert [m.version for m in lifecycle.history(models, "champion")] == [1, 2]
    lifecycle.promote(models, 1, "champion")
    assert [m.version for m in lifecycle.history(models, "champion")] == [1, 2, 1]
    assert history.read_bytes().count(b"\n") == whole.count(b"\n") + 2  # torn line closed
