"""Human-readable results: the original-vs-quantized table and two diagnostic plots.

The table is built once as a string; the CLI prints it and ``report.md`` embeds the very
same string, so the report can never disagree with what the command printed.
"""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from linreg_ops import artifacts

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ModelRow:
    """One line of the comparison table."""

    label: str
    r2: float
    mse: float
    max_abs_diff: float
    mean_abs_diff: float
    artifact_name: str
    artifact_bytes: int
    parameter_bytes: int


def float_parameter_bytes(n_features: int) -> int:
    """float64 coefficients plus a float64 intercept."""
    return 8 * (n_features + 1)


def quantized_parameter_bytes(n_features: int, bits: int, n_scales: int = 1) -> int:
    """Bit-packed codes, an int32 bias, and one float32 scale (and zero point) per tensor."""
    return -(-n_features * bits // 8) + 4 + 4 * n_scales + -(-n_scales * bits // 8)


def comparison_table(rows: list[ModelRow]) -> str:
    """A Markdown table that reads well in a terminal too."""
    header = (
        "| model | R² | MSE | max abs Δŷ | mean abs Δŷ | artifact | bytes | weights+bias bytes |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    )
    lines = [
        f"| {row.label} | {row.r2:.4f} | {row.mse:.4f} | {row.max_abs_diff:.6f} | "
        f"{row.mean_abs_diff:.6f} | {row.artifact_name} | {row.artifact_bytes:,} | "
        f"{row.parameter_bytes:,} |"
        for row in rows
    ]
    return "\n".join([*header, *lines])


def _figure_png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def predicted_vs_actual_png(
    y_true: np.ndarray, float_pred: np.ndarray, quantized_pred: np.ndarray, quantized_label: str
) -> bytes:
    """Both models' predictions against the truth; points on the diagonal are perfect."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.subplots()
    axes.scatter(y_true, float_pred, s=4, alpha=0.35, label="float64")
    axes.scatter(y_true, quantized_pred, s=4, alpha=0.35, marker="x", label=quantized_label)
    low = float(min(y_true.min(), float_pred.min(), quantized_pred.min()))
    high = float(max(y_true.max(), float_pred.max(), quantized_pred.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="ideal")
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test split)")
    axes.legend(loc="upper left")
    return _figure_png(figure)


def residuals_png(y_true: np.ndarray, float_pred: np.ndarray) -> bytes:
    """Residuals against prediction (structure means the linear model misses something)."""
    from matplotlib.figure import Figure

    residuals = y_true - float_pred
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    scatter_axes, hist_axes = figure.subplots(1, 2)
    scatter_axes.scatter(float_pred, residuals, s=4, alpha=0.35)
    scatter_axes.axhline(0.0, color="black", linewidth=1)
    scatter_axes.set(xlabel="predicted", ylabel="actual − predicted", title="Residuals")
    hist_axes.hist(residuals, bins="auto")  # a fixed count fails on a (near-)constant residual
    hist_axes.set(xlabel="actual − predicted", ylabel="rows", title="Residual distribution")
    return _figure_png(figure)


def write_report(
    reports_dir: Path,
    table: str,
    context: list[str],
    y_true: np.ndarray,
    float_pred: np.ndarray,
    quantized_pred: np.ndarray,
    quantized_label: str,
) -> list[Path]:
    """``report.md`` (context lines, then the table as printed) and its two pictures."""
    reports_dir = Path(reports_dir)
    markdown = "\n".join(
        [
            "# linreg-ops report",
            "",
            *[f"- {line}" for line in context],
            "",
            "## Original vs quantized (test split)",
            "",
            table,
            "",
            "## Predicted vs actual",
            "",
            "![predicted vs actual](predicted_vs_actual.png)",
            "",
            "## Residuals",
            "",
            "![residuals](residuals.png)",
            "",
        ]
    )
    files = {
        "report.md": markdown.encode("utf-8"),
        "predicted_vs_actual.png": predicted_vs_actual_png(
            y_true, float_pred, quantized_pred, quantized_label
        ),
        "residuals.png": residuals_png(y_true, float_pred),
    }
    return [artifacts.atomic_write_bytes(reports_dir / name, data) for name, data in files.items()]
