"""One Dask cluster for every scaling test (a LocalCluster costs seconds to start)."""

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def scheduler() -> Iterator[str]:
    """The address of a 2-worker LocalCluster on 127.0.0.1, reached through the engine's
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
