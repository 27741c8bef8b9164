"""Human-readable results: the original-vs-quantized table and two diagnostic plots.

The table is built once as a string; the CLI prints it and ``report.md`` embeds the very
same string, so the report can never disagree with what the command printed.
"""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops import artifacts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from linreg_ops.model import LinearModel


@dataclass(frozen=True)
class ModelRow:
    """One line of the comparison table: a label, its fidelity figures and its sizes."""

    label: str
    figures: dict[str, Any]  # r2, mse, and for quantized models the drift figures
    artifact_name: str
    artifact_bytes: int
    parameter_bytes: int


def comparison_table(rows: list[ModelRow]) -> str:
    """A Markdown table that reads well in a terminal too."""
    header = (
        "| model | R² | ΔR² | MSE | max abs Δŷ | mean abs Δŷ | clipped rows "
        "| artifact | bytes | weights+bias bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    )
    lines = []
    for row in rows:
        f = row.figures
        lines.append(
            f"| {row.label} | {f['r2']:.4f} | {f.get('delta_r2', 0.0):+.6f} | {f['mse']:.4f} | "
            f"{f['max_abs_diff']:.6f} | {f['mean_abs_diff']:.6f} | {f.get('clipped_rows', 0)} | "
            f"{row.artifact_name} | {row.artifact_bytes:,} | {row.parameter_bytes:,} |"
        )
    return "\n".join([*header, *lines])


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """The quantization sweep, one line per bit width × granularity × rounding."""
    header = (
        "| bits | granularity | rounding | R² | ΔR² | max abs Δŷ | mean abs Δŷ "
        "| weights+bias bytes |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    )
    lines = []
    for row in rows:
        rounding = row["rounding"]
        if row["applied_rounding"] != rounding:
            rounding = f"{rounding}→{row['applied_rounding']}"
        lines.append(
            f"| {row['bits']} | {row['granularity']} | {rounding} | {row['r2']:.6f} | "
            f"{row['delta_r2']:+.2e} | {row['max_abs_diff']:.2e} | {row['mean_abs_diff']:.2e} | "
            f"{row['parameter_bytes']} |"
        )
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


SWEEP_FLOOR = 1e-12  # zeros drawn on a log axis sit at this value


def quantization_png(rows: list[dict[str, Any]], scatter: dict[str, tuple]) -> bytes:
    """|ΔR²| and max |Δŷ| against bits, one line per rounding (solid per-tensor, dashed
    per-channel), and quantized-vs-float scatters for the schemes in ``scatter``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 9), layout="constrained")
    grid = figure.subplots(2, 2)
    for axes, key, title in (
        (grid[0, 0], "delta_r2", "|ΔR²| vs float (test split)"),
        (grid[0, 1], "max_abs_diff", "max |ŷ_q − ŷ_float| (test split)"),
    ):
        for granularity, style in (("per-tensor", "-"), ("per-channel", "--")):
            for rounding, marker in (("nearest", "o"), ("hessian", "s"), ("optimal", "^")):
                chosen = [
                    r for r in rows if r["granularity"] == granularity and r["rounding"] == rounding
                ]
                if not chosen:
                    continue
                axes.plot(
                    [r["bits"] for r in chosen],
                    [max(abs(r[key]), SWEEP_FLOOR) for r in chosen],
                    style,
                    marker=marker,
                    markersize=4,
                    label=f"{rounding} ({granularity})",
                )
        axes.set_yscale("log")
        axes.set(xlabel="weight bits", title=title)
        axes.grid(True, which="major", alpha=0.3)
    grid[0, 0].legend(fontsize=8)
    for axes, (label, (float_pred, quantized_pred)) in zip(grid[1], scatter.items(), strict=True):
        axes.scatter(float_pred, quantized_pred, s=4, alpha=0.4)
        low = float(min(float_pred.min(), quantized_pred.min()))
        high = float(max(float_pred.max(), quantized_pred.max()))
        axes.plot([low, high], [low, high], color="black", linewidth=1)
        axes.set(xlabel="float64 prediction", ylabel=f"{label} prediction", title=label)
    return _figure_png(figure)


def write_sweep_report(
    reports_dir: Path,
    table: str,
    source: str,
    model: "LinearModel",
    X: np.ndarray,
    y: np.ndarray,
    rows: list[dict[str, Any]],
) -> list[Path]:
    """``quantization.md`` (the table as printed) and ``quantization.png``."""
    from linreg_ops.quantize import QuantConfig, quantize_model

    scatter = {}
    for dtype in ("int8", "int4"):
        quantized = quantize_model(model, QuantConfig(dtype))
        scatter[f"{dtype} per-tensor {quantized.rounding}"] = (
            model.predict(X),
            quantized.predict(X),
        )
    markdown = "\n".join(
        [
            "# Quantization sweep",
            "",
            f"Measured on {y.size} rows from {source}. ΔR² is quantized minus float R²; "
            "Δŷ is the quantized prediction minus the float one.",
            "",
            table,
            "",
            "![quantization](quantization.png)",
            "",
        ]
    )
    files = {
        "quantization.md": markdown.encode("utf-8"),
        "quantization.png": quantization_png(rows, scatter),
    }
    return [artifacts.atomic_write_bytes(Path(reports_dir) / n, d) for n, d in files.items()]
