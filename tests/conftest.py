"""Shared fixtures: the California data, one published models folder, and a CLI runner."""

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import helpers
from helpers import write_csv

# Property tests are deterministic wherever the suite runs (`make test`, CI): the same
# examples every run, no example database replaying an old draw. `make fuzz` explores with
# fresh random draws (--hypothesis-profile=fuzz), so a finding there becomes a test here.
settings.register_profile(
    "default", derandomize=True, database=None, deadline=None, print_blob=True
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")

REPO = Path(__file__).resolve().parents[1]
SHARED_SKLEARN_DATA = (
    REPO.parent / "shared" / "datasets" / "california_housing" / "scikit_learn_data"
)
if "SCIKIT_LEARN_DATA" not in os.environ and SHARED_SKLEARN_DATA.is_dir():
    os.environ["SCIKIT_LEARN_DATA"] = str(SHARED_SKLEARN_DATA)


@pytest.fixture(scope="session")
def california():
    from linreg_ops.training.sources import california_source

    return california_source()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A folder every process of this test run shares: the base temp folder's parent under
    pytest-xdist (each worker's own base temp lies in it), else this session's base temp."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def build_once(run_dir) -> Callable[[str, Callable[[Path], object]], Path]:
    """``build_once(name, build)``: the folder ``run_dir/name``, made by ``build(folder)``
    once per test run and shared by every xdist worker (``helpers.build_once``). Read-only."""
    return functools.partial(helpers.build_once, run_dir)


@pytest.fixture(scope="session")
def trained_dir(build_once, california) -> Path:
    """A models folder after train + quantize on California Housing (versions 1 and 2), built
    once per test run. Read-only: copy it (``models_copy``) to change anything."""
    from linreg_ops import pipeline

    def build(models_dir: Path) -> None:
        pipeline.train(california, models_dir)
        pipeline.quantize(models_dir)

    return build_once("california-models", build)


@pytest.fixture(scope="session")
def models(trained_dir):
    """The loaded, verified models of ``trained_dir``'s current version."""
    from linreg_ops.inference import loading

    return loading.load(trained_dir)


@pytest.fixture(scope="session")
def test_rows(models):
    """The stored test split of ``trained_dir``: (columns, values)."""
    from linreg_ops.inference import loading

    table = loading.stored_test_rows(models)
    return table.columns, table.values


@pytest.fixture
def models_copy(trained_dir, tmp_path) -> Path:
    """A private, writable copy of ``trained_dir`` (links and file modes kept)."""
    return Path(shutil.copytree(trained_dir, tmp_path / "models", symlinks=True))


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed ``linreg-ops`` console script as a real process."""
    executable = Path(sys.executable).with_name("linreg-ops")
    if not executable.exists():
        pytest.fail(f"the linreg-ops console script is not installed next to {sys.executable}")

    def run(*args: str, cwd: Path | None = None, check: bool = False, timeout: float = 300):
        result = subprocess.run(
            [str(executable), *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture
def regression_csv(tmp_path) -> Path:
    """A small, well-posed regression problem: y = 2a − 3b + 0.5c + 1 + noise."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([2.0, -3.0, 0.5]) + 1.0 + rng.normal(scale=0.1, size=200)
    rows = np.column_stack([X, y]).tolist()
    return write_csv(tmp_path / "train.csv", ["a", "b", "c", "y"], rows)


@pytest.fixture(scope="session")
def scheduler() -> Iterator[str]:
    """One Dask cluster for every scaling test (a LocalCluster costs seconds to start): the
    address of a 2-worker LocalCluster on 127.0.0.1, reached through the engine's
    ``--scheduler`` path like any remote cluster."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # not 8787: the engine's own clusters need no port
        scheduler_kwargs={"dashboard": False},
    ) as cluster:
        yield cluster.scheduler_address


# Fixtures that start something costly for the whole session, and the xdist group their
# tests share: under `make test` (pytest-xdist, --dist loadgroup) those tests run on one
# worker, so the resource is started once per run instead of once per worker (an MLflow
# server takes from 8 CPU-seconds to minutes of wall time to answer on a loaded machine).
SHARED_RESOURCES = {"scheduler": "dask-cluster", "mlflow_server": "mlflow-server"}
# Module fixtures that run a whole pipeline or start a process (a full `linreg-ops run`, the
# seed's shims, a server, MLflow): a module's tests that use one share a group, so it runs
# once, not once on each worker that draws one of them.
COSTLY_MODULE_FIXTURES = ("run_result", "seed_run", "server", "runtimes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        groups = [group for fixture, group in SHARED_RESOURCES.items() if fixture in names]
        groups += [f"{item.path.name}:{f}" for f in COSTLY_MODULE_FIXTURES if f in names]
        if groups:  # xdist takes the first
            item.add_marker(pytest.mark.xdist_group(groups[0]))


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ: an in-process
    tracking test would leave it behind for every later test on the same xdist worker (a
    fault-injection `run` then logged to MLflow and met its own injected ENOSPC)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
