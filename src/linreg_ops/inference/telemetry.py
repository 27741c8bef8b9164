"""The service's Prometheus metrics (``GET /metrics``), one object per worker.

Every request is recorded once, after its answer is sent, by ``Telemetry.record``: a
request counter (success and failure apart, with the status code), a latency histogram whose
buckets start at 0.1 ms (the service answers in 0.1–2 ms; prometheus-client's default
buckets would put every request in the first one), rows per request, the predicted values
(observed in bulk: one ``numpy`` bincount per request, not one call per row) and the rows an
integer model clipped. An info gauge names the version, model kinds, dtypes and SHA-256
prefixes; process metrics come from prometheus-client's own collectors.

With several workers, prometheus-client's multiprocess mode keeps each worker's values in
memory-mapped files of a folder the parent creates fresh (``PROMETHEUS_MULTIPROC_DIR``) and
removes at exit; a scrape, answered by any worker, merges them. A worker that dies leaves its
files behind, and a long-running service whose workers restart would read ever more files
per scrape (prometheus/client_python #275, #367): so each worker, when it starts, folds the
files of dead workers into one archive file per metric type and deletes them (under a file
lock). The files stay bounded by the number of live workers.

prometheus-client is imported when a ``Telemetry`` is built, never at import time.
"""

import bisect
import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import MODEL_NAMES, ModelKind

__all__ = [
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "ROWS_BUCKETS",
    "Telemetry",
    "compact_dead_workers",
    "gauge_exposition",
    "prediction_buckets",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 1.0)  # fmt: skip
ROWS_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000)
_LOCK_FILE = ".compact.lock"
_ARCHIVED_TYPES = ("counter", "histogram")


def prediction_buckets(predictions: np.ndarray) -> tuple[float, ...]:
    """Bucket bounds for the predicted values: the deciles of the float model's predictions on
    the version's held-out rows (3 significant digits), so the histogram shows a shift in what
    the service predicts whatever the target's unit."""
    finite = predictions[np.isfinite(predictions)]
    if len(finite) == 0:
        return (0.0,)
    deciles = np.quantile(finite, np.linspace(0.1, 0.9, 9))
    return tuple(sorted({float(f"{value:.3g}") for value in deciles}))


@dataclass(frozen=True)
class _Children:
    """The labelled metric children of one (route, model, version, status code): looked up
    once, then reused, so recording a request costs a dict lookup and a few additions."""

    requests: Any
    latency: Any
    rows: Any
    predictions: Any
    clipped: Any


class Telemetry:
    """One worker's metrics. ``multiproc_dir`` set: multiprocess mode (every worker's figures
    in every scrape); None: this process only."""

    def __init__(self, prediction_bounds: Sequence[float], multiproc_dir: Path | None) -> None:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        prometheus_client.disable_created_metrics()  # no *_created series: noise for a scrape
        self.multiproc_dir = multiproc_dir
        self._children: dict[tuple[str, ModelKind | None, int, int], _Children] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "model_name", "model_version")
        registry = self.registry
        self._requests = Counter(
            "linreg_ops_requests", "Requests answered, by route, model, version, status and code",
            (*labels, "status", "code"), registry=registry,
        )  # fmt: skip
        self._latency = Histogram(
            "linreg_ops_request_duration_seconds",
            "Time from a request's arrival to its answer, ready to send, in seconds",
            labels, registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self._rows = Histogram(
            "linreg_ops_request_rows", "Rows per prediction request", labels,
            registry=registry, buckets=ROWS_BUCKETS,
        )  # fmt: skip
        self._predictions = Histogram(
            "linreg_ops_predicted_values", "The values the service predicted, one per row",
            labels, registry=registry, buckets=prediction_bounds,
        )  # fmt: skip
        self._clipped = Counter(
            "linreg_ops_clipped_rows",
            "Rows the integer-only model clipped (an input outside its calibrated range)",
            labels, registry=registry,
        )  # fmt: skip
        self._info = Gauge(
            "linreg_ops_model_info",
            "The served models: version, kind, dtype and SHA-256 prefix (value 1)",
            ("model_version", "model_name", "model_kind", "dtype", "sha256"),
            registry=registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self._described: list[tuple[str, ...]] = []  # the info gauge's labels set to 1
        self._live_version = Gauge(
            "linreg_ops_live_version",
            "The version this worker answers with, and the alias it follows ('' if pinned)",
            ("alias",), registry=registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self._refused = Counter(
            "linreg_ops_reloads_refused",
            "Versions an alias moved to that failed to load or verify (the old one kept serving)",
            ("alias",), registry=registry,
        )  # fmt: skip
        self._bound_list = tuple(self._predictions._upper_bounds[:-1])
        self._bounds = np.asarray(self._bound_list, dtype=np.float64)
        self._prometheus = prometheus_client
        if multiproc_dir is None:
            prometheus_client.ProcessCollector(registry=registry)
            prometheus_client.PlatformCollector(registry=registry)

    def describe_models(self, version: int, models: dict[ModelKind, tuple[str, str]]) -> None:
        """Set the info gauge: ``models`` maps each served kind to (dtype, SHA-256); the
        models served before (a hot reload) go to 0."""
        for labels in self._described:
            self._info.labels(*labels).set(0)
        self._described = [
            (str(version), MODEL_NAMES[kind], kind, dtype, sha256[:12])
            for kind, (dtype, sha256) in models.items()
        ]
        for labels in self._described:
            self._info.labels(*labels).set(1)

    def serving(self, version: int, alias: str) -> None:
        """The live-version gauge: one series per worker (``pid``) in multiprocess mode."""
        self._live_version.labels(alias).set(version)

    def refused_reload(self, alias: str) -> None:
        """Count one version that failed to load or verify when ``alias`` moved to it."""
        self._refused.labels(alias).inc()

    def record(
        self,
        route: str,
        kind: ModelKind | None,
        version: int,
        code: int,
        seconds: float,
        rows: int = 0,
        clipped: int = 0,
        predictions: np.ndarray | None = None,
    ) -> None:
        """Count one answered request (``rows``, ``clipped`` and ``predictions`` only for
        prediction routes that answered 200)."""
        key = (route, kind, version, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._labelled(route, kind, version, code)
        children.requests.inc()
        _observe(children.latency, LATENCY_BUCKETS, seconds)
        if predictions is not None and children.rows is not None:
            _observe(children.rows, ROWS_BUCKETS, rows)
            if clipped:
                children.clipped.inc(clipped)
            self._observe_many(children.predictions, predictions)

    def _labelled(self, route: str, kind: ModelKind | None, version: int, code: int) -> _Children:
        labels = (route, MODEL_NAMES[kind] if kind else "", str(version))
        status = "success" if code < 400 else "failure"
        predicted = kind is not None and code < 400  # rows, values, clipped rows: only then
        return _Children(
            self._requests.labels(*labels, status, str(code)),
            self._latency.labels(*labels),
            self._rows.labels(*labels) if predicted else None,
            self._predictions.labels(*labels) if predicted else None,
            self._clipped.labels(*labels) if predicted else None,
        )

    def _observe_many(self, histogram: Any, values: np.ndarray) -> None:
        """Observe every value at once: a bincount over the buckets, then one addition per
        bucket that received values. prometheus-client observes one value per call, which on a
        1,000-row batch costs more than the prediction; its histogram child keeps a value per
        bucket (``_buckets``, non-cumulative) and the sum (``_sum``), which is what this adds to."""
        if len(values) == 1:
            _observe(histogram, self._bound_list, float(values[0]))
            return
        counts = np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds) + 1
        )
        for index in np.flatnonzero(counts).tolist():
            histogram._buckets[index].inc(int(counts[index]))
        histogram._sum.inc(float(values.sum()))

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every worker's figures (multiprocess) or this one's."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self.registry
        if self.multiproc_dir is not None:  # every worker's files, and this worker's process
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(self.multiproc_dir))
            self._prometheus.ProcessCollector(registry=registry)
            self._prometheus.PlatformCollector(registry=registry)
        return generate_latest(registry), self._prometheus.CONTENT_TYPE_LATEST

    def close(self) -> None:
        """A worker's exit: its live gauges go (prometheus-client's ``mark_process_dead``)."""
        if self.multiproc_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), str(self.multiproc_dir))


def _observe(histogram: Any, bounds: Sequence[float], value: float) -> None:
    """prometheus-client's ``Histogram.observe`` for one value, with a binary search instead
    of its loop over the buckets (``bounds``: the finite upper bounds, in order)."""
    histogram._buckets[bisect.bisect_left(bounds, value)].inc(1)
    histogram._sum.inc(value)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is dead: it writes nothing more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != b"Z"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / _LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def compact_dead_workers(folder: Path) -> int:
    """Fold the counter and histogram files of dead workers into ``<type>_archive.db`` and
    delete them, and drop dead workers' live gauges; returns how many files went."""
    from prometheus_client import multiprocess
    from prometheus_client.mmap_dict import MmapedDict

    removed = 0
    with _locked(folder):
        for path in sorted(folder.glob("*.db")):
            parts = path.stem.split("_")
            pid_text = parts[-1]
            if not pid_text.isdigit() or _alive(int(pid_text)):
                continue
            if parts[0] in _ARCHIVED_TYPES:
                archive = MmapedDict(str(folder / f"{parts[0]}_archive.db"))
                try:
                    for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
                        archived, _ = archive.read_value(key)
                        archive.write_value(key, archived + value, timestamp)
                finally:
                    archive.close()
                path.unlink()
                removed += 1
            elif parts[0] == "gauge":
                multiprocess.mark_process_dead(int(pid_text), str(folder))
                removed += 1
    return removed


def gauge_exposition(samples: Sequence[tuple[str, str, dict[str, str], float]]) -> bytes:
    """Gauge samples (name, help, labels, value) in the text exposition format, by
    prometheus-client: the drift figures ``/metrics`` adds to the counters (computed from
    every worker's statistics at scrape time, so they need no multiprocess files)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    families: dict[str, GaugeMetricFamily] = {}
    for name, text, labels, value in samples:
        family = families.get(name)
        if family is None:
            family = families[name] = GaugeMetricFamily(name, text, labels=sorted(labels))
        family.add_metric([labels[key] for key in sorted(labels)], value)

    class _Drift(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            yield from families.values()

    registry = CollectorRegistry()
    registry.register(_Drift())
    data: bytes = generate_latest(registry)
    return data
