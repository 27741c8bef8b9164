"""The CI gate against regressions: the current version's R² beside a committed baseline.

``ci/baseline.json`` holds the figures of the last release (``linreg-ops baseline --write``
records them); CI trains afresh and ``linreg-ops baseline`` fails (exit 3) when any model's
R² is worse than the baseline's by more than the promotion gate allows, on the same data.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linreg_ops.config import DEFAULT_MAX_R2_REGRESSION
from linreg_ops.errors import InputError
from linreg_ops.inference import loading
from linreg_ops.storage import store

__all__ = ["BASELINE_KINDS", "ComparedRow", "Comparison", "compare", "figures", "write"]

# model kind → its section in metrics.json
BASELINE_KINDS = {"float": "float", "quantized": "quantized", "integer": "integer_only"}


@dataclass(frozen=True)
class ComparedRow:
    kind: str
    baseline: float | None
    current: float | None
    passed: bool

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass(frozen=True)
class Comparison:
    version: int
    limit: float
    rows: list[ComparedRow]

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)


def figures(models_dir: Path) -> dict[str, Any]:
    """The current version's data digest and R² / MSE per model kind (from verified files)."""
    version = store.open_version(Path(models_dir))
    metrics = loading.load_metrics(version) or {}
    return {
        "version": version.number,
        "data_source": version.manifest.training_data.get("source"),
        "data_sha256": version.manifest.training_data.get("sha256"),
        "r2": {k: metrics[s]["r2"] for k, s in BASELINE_KINDS.items() if metrics.get(s)},
        "mse": {k: metrics[s]["mse"] for k, s in BASELINE_KINDS.items() if metrics.get(s)},
    }


def write(models_dir: Path, path: Path) -> dict[str, Any]:
    """Record the current version's figures as the baseline (atomically)."""
    document = figures(models_dir)
    store.atomic_write(Path(path), (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return document


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path} is missing: record one with linreg-ops baseline --write"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a baseline (JSON): {exc}") from None
    r2 = document.get("r2") if isinstance(document, dict) else None
    if not isinstance(r2, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in r2.values()
    ):
        raise InputError(f"{path} has no 'r2' object of numbers: not a linreg-ops baseline")
    checked: dict[str, Any] = document
    return checked


def compare(models_dir: Path, path: Path, limit: float = DEFAULT_MAX_R2_REGRESSION) -> Comparison:
    """Each model kind's R² now against the baseline's; a kind the baseline has and the
    version lacks fails, as does training on other data than the baseline's."""
    baseline = _read(path)
    now = figures(models_dir)
    if baseline.get("data_sha256") != now["data_sha256"]:
        raise InputError(
            f"version {now['version']} was trained on data with SHA-256 "
            f"{str(now['data_sha256'])[:12]}…, {path} on {str(baseline.get('data_sha256'))[:12]}…: "
            "R² on other data is no comparison"
        )
    rows = []
    for kind in BASELINE_KINDS:
        before, after = baseline["r2"].get(kind), now["r2"].get(kind)
        if before is None and after is None:
            continue
        passed = before is None or (after is not None and before - after <= limit)
        rows.append(ComparedRow(kind, before, after, passed))
    return Comparison(now["version"], limit, rows)
