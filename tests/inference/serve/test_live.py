"""The alias watch inside one worker (``inference.live.Follower`` on ``serve.Service``), in
process and fast: a move is swapped in, a broken version is refused once and counted, the
watch's state is in ``/metadata`` and ``/metrics``, the served version is leased (so ``gc``
keeps it) and the lease follows the swap, and ``--version N`` pins."""

import asyncio
import os
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from helpers import write_csv
from linreg_ops import lifecycle, pipeline
from linreg_ops.inference.serve import Call, Service, handle_metadata, serve_settings
from linreg_ops.storage import store
from linreg_ops.training import sources


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> Path:
    """Versions 1 and 2 of different coefficients; ``current`` names 2, ``champion`` 1."""
    root = tmp_path_factory.mktemp("live")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 2))
    for number, coef in ((1, [1.0, -2.0]), (2, [-3.0, 1.0])):
        y = X @ np.array(coef) + rng.normal(scale=0.1, size=200)
        data = write_csv(root / f"d{number}.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
        pipeline.train(sources.file_source(data, "y"), root / "models")
    lifecycle.promote(root / "models", 1, "champion")
    return root / "models"


@pytest.fixture
def models(two_versions, tmp_path) -> Path:
    return Path(shutil.copytree(two_versions, tmp_path / "models", symlinks=True))


def started(models: Path, **settings: object) -> Service:
    service = Service(serve_settings(models_dir=models, metrics=True, **settings))
    service.start()
    return service


def metadata(service: Service) -> dict:
    assert service.live is not None
    return orjson.loads(handle_metadata(service, Call(b"", [], b""), service.live).body)


def metrics(service: Service) -> str:
    assert service.telemetry is not None
    return service.telemetry.render()[0].decode()


def poll(service: Service) -> bool:
    assert service.follower is not None
    return asyncio.run(service.follower.poll())


def test_default_follows_current_and_swaps_when_it_moves(models):
    service = started(models)
    try:
        assert service.live is not None
        assert service.live.number == 2
        assert metadata(service)["live"] == {
            "alias": "current", "version": 2, "swaps": 0, "poll_seconds": 0.5, "refused": None,
        }  # fmt: skip
        assert not poll(service)  # nothing moved
        lifecycle.promote(models, 1, "current", force=True)
        assert poll(service)
        assert service.live.number == 1
        assert service.live.header == (b"x-model-version", b"1")
        meta = metadata(service)
        assert meta["version"] == 1
        assert meta["live"]["swaps"] == 1
        text = metrics(service)
        assert 'linreg_ops_live_version{alias="current"} 1.0' in text
        # the swapped-out version's info series drops to 0, the new one's is 1
        assert 'model_version="2"' in text
        info = [line for line in text.splitlines() if line.startswith("linreg_ops_model_info{")]
        assert {line.split('model_version="')[1][0]: line[-3:] for line in info} == {
            "1": "1.0",
            "2": "0.0",
        }
    finally:
        service.stop()


def test_the_served_version_is_leased_and_the_lease_follows_the_swap(models):
    service = started(models, alias="champion")
    try:
        assert store.leased_versions(models) == {1}
        lifecycle.promote(models, 2, "champion", force=True)
        assert poll(service)
        assert store.leased_versions(models) == {2}
    finally:
        service.stop()
    assert store.leased_versions(models) == set()


def test_a_broken_version_is_refused_once_counted_and_the_old_one_keeps_serving(models):
    service = started(models, alias="champion")
    try:
        target = models / "versions" / "2" / "model.json"
        os.chmod(target, 0o644)
        target.write_text(target.read_text().replace("0", "1", 1))  # its SHA-256 no longer matches
        link = models / "aliases" / "champion"
        link.unlink()
        link.symlink_to("../versions/2")
        for _ in range(3):  # refused once, not once per poll
            assert not poll(service)
        assert service.live is not None
        assert service.live.number == 1
        refused = metadata(service)["live"]["refused"]
        assert refused["version"] == 2
        assert "SHA-256" in refused["error"]
        assert 'linreg_ops_reloads_refused_total{alias="champion"} 1.0' in metrics(service)
        assert store.leased_versions(models) == {1}  # the refused version's lease was released
    finally:
        service.stop()


@pytest.mark.parametrize(
    "garbage", ["../../outside", "../versions/x", "nowhere"], ids=["outside", "text", "bare"]
)
def test_an_alias_that_names_no_version_is_refused_and_nothing_changes(models, garbage):
    service = started(models, alias="champion")
    try:
        link = models / "aliases" / "champion"
        link.unlink()
        link.symlink_to(garbage)
        for _ in range(3):  # logged and counted once, not once per poll
            assert not poll(service)
        assert service.live is not None
        assert service.live.number == 1
        assert metadata(service)["live"]["refused"]["version"] is None
        assert 'linreg_ops_reloads_refused_total{alias="champion"} 1.0' in metrics(service)
    finally:
        service.stop()


def test_a_removed_alias_keeps_the_version_served(models):
    service = started(models, alias="champion")
    try:
        (models / "aliases" / "champion").unlink()
        assert not poll(service)
        assert service.live is not None
        assert service.live.number == 1
        assert metadata(service)["live"]["refused"] is None
    finally:
        service.stop()


def test_version_n_pins_and_watches_nothing(models):
    service = started(models, model_version=1)
    try:
        lifecycle.promote(models, 2, "champion", force=True)
        assert not poll(service)
        assert service.live is not None
        assert service.live.number == 1
        live = metadata(service)["live"]
        assert live["alias"] is None
        assert live["poll_seconds"] is None
        assert store.leased_versions(models) == {1}
        assert 'linreg_ops_live_version{alias=""} 1.0' in metrics(service)
    finally:
        service.stop()


def test_a_copied_current_folder_is_served_without_a_watch(models, tmp_path):
    """The Docker image holds ``current`` as a folder (a copy that followed the link): it
    cannot move, so no worker reads it every poll."""
    image = tmp_path / "image"
    image.mkdir()
    shutil.copytree(models / "current", image / "current")  # follows the link, as the image does
    service = started(image)
    try:
        assert service.live is not None
        assert service.live.number == 2
        assert metadata(service)["live"]["alias"] is None
        assert not poll(service)
    finally:
        service.stop()
