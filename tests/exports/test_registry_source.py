"""A registry-following worker's start, in process and with no tracking server: the
registry does not answer (a port nothing listens on), so a worker starts on what it has —
the version it last went live on, else the newest other fetched one that verifies — with the
refusal logged, counted and shown, or does not start when it has nothing."""

import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import write_csv
from linreg_ops import pipeline
from linreg_ops.errors import InputError
from linreg_ops.exports.registry import LAST_GOOD, RegistrySource
from linreg_ops.inference import live
from linreg_ops.inference.serve import Call, Service, handle_metadata, serve_settings
from linreg_ops.training import sources


def unreachable() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> Path:
    """Two fetched registered versions, 3 and 5, each a models folder of its own (as
    ``RegistrySource`` keeps them), of different coefficients."""
    root = tmp_path_factory.mktemp("registry")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 2))
    for key, coef in ((3, [1.0, -2.0]), (5, [-3.0, 1.0])):
        y = X @ np.array(coef) + rng.normal(scale=0.1, size=200)
        data = write_csv(root / f"d{key}.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
        pipeline.train(sources.file_source(data, "y"), root / str(key))
    return root


@pytest.fixture
def root(fetched, tmp_path) -> Path:
    folder = tmp_path / "registry"
    folder.mkdir()
    for key in ("3", "5"):
        shutil.copytree(fetched / key, folder / key, symlinks=True)
    return folder


def source(root: Path) -> RegistrySource:
    return RegistrySource(unreachable(), "models:/m@champion", root, 2.0)


def coefficient(models) -> float:
    return float(models.float.coef[0])


def test_a_worker_starts_on_the_last_version_that_went_live(root):
    registry = source(root)
    registry.served(3)
    assert (root / LAST_GOOD).read_text() == "3\n"
    assert registry.fallbacks(None) == [3, 5]
    start = live.first_version(registry)
    assert start.key == 3
    assert coefficient(start.models) == pytest.approx(1.0, abs=0.1)
    assert start.refused is not None
    assert start.refused["version"] is None  # the registry did not answer
    assert start.refused["error"].startswith(f"MLflow at {registry.tracking_uri}: ")
    assert not start.final  # unreachable is tried again at the next poll


def test_a_fallback_that_fails_its_verification_is_passed_over(root):
    registry = source(root)
    registry.served(5)
    model_json = root / "5" / "versions" / "1" / "model.json"
    model_json.chmod(0o644)
    model_json.write_text(model_json.read_text().replace('"intercept"', '"intercept" ', 1))
    start = live.first_version(registry)
    assert start.key == 3  # 5 (last good) fails its SHA-256 now: the newest other


def test_with_nothing_fetched_a_worker_does_not_start(tmp_path):
    with pytest.raises(InputError, match=r"MLflow at http://127\.0\.0\.1:"):
        live.first_version(source(tmp_path))


def test_the_refusal_at_start_is_logged_counted_and_shown(root, tmp_path, caplog):
    """The service side (checked failing with the refusal dropped at start: refused None)."""
    registry = source(root)
    registry.served(5)
    settings = serve_settings(models_dir=root / "5", metrics=True, monitor_dir=tmp_path / "mon")
    service = Service(settings, registry)
    service.start()
    try:
        assert service.live is not None
        assert service.follower is not None
        answer = handle_metadata(service, Call(b"", [], b""), service.live)
        state = orjson.loads(answer.body)["live"]
        assert state["alias"] == "models:/m@champion"
        assert state["model_uri"] == "models:/m/5"
        assert state["poll_seconds"] == 2.0
        assert state["refused"]["version"] is None
        assert state["refused"]["error"].startswith("MLflow at ")
        assert service.telemetry is not None
        text = service.telemetry.render()[0].decode()
        assert 'linreg_ops_reloads_refused_total{alias="models:/m@champion"} 1.0' in text
        assert "starting on version 5 instead, and following models:/m@champion" in caplog.text
    finally:
        service.stop()


@given(
    present=st.sets(st.integers(1, 40), max_size=6),
    last=st.none() | st.integers(1, 40),
    failed=st.none() | st.integers(1, 40),
)
def test_fallbacks_are_the_last_good_then_newest_first(present, last, failed):
    """Every fetched version but the failed one, once: the last good first (if fetched),
    then the others newest first; names that are not versions are ignored."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for key in present:
            (root / str(key)).mkdir()
        (root / ".fetching-7-123").mkdir()
        (root / ".fetch-9.lock").write_text("")
        registry = RegistrySource("http://127.0.0.1:9", "models:/m@a", root)
        if last is not None:
            registry.served(last)
        order = registry.fallbacks(failed)
    expected = sorted(present - {failed}, reverse=True)
    if last in expected:
        expected = [last] + [key for key in expected if key != last]
    assert order == expected
