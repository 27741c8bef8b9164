"""The dask engine's own cluster (no --scheduler): two workers as threads of this process,
so a run pays no worker start-up and imports (2-3 s of a 2M-row fit with worker processes)."""

import os

import pytest

from linreg_ops.storage.cluster import DaskSession

pytestmark = pytest.mark.slow


def test_without_a_scheduler_two_worker_threads_run_in_this_process():
    with DaskSession() as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(address.startswith("inproc://") for address in workers)
        pids = set(client.run(os.getpid).values())
    assert pids == {os.getpid()}, "worker processes: every run pays their start-up"
