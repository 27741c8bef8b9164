"""Human-readable results: the model comparison table, diagnostic plots and the sweep report.

The table is built once as a string; the CLI prints it and ``report.md`` embeds the very
same string, so the report can never disagree with what the command printed.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops.inference.evaluate import Evaluation
from linreg_ops.inference.loading import ARTIFACT_OF, Models
from linreg_ops.quantization.quantize import float_parameter_bytes, quantized_parameter_bytes
from linreg_ops.storage import store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from linreg_ops.model import LinearModel

__all__ = [
    "COLORS",
    "SWEEP_FLOOR",
    "ModelRow",
    "comparison_rows",
    "comparison_table",
    "context_lines",
    "drift_markdown",
    "drift_png",
    "drift_table",
    "model_card",
    "predicted_vs_actual_figure",
    "predicted_vs_actual_png",
    "quantization_png",
    "residuals_figure",
    "residuals_png",
    "run_report_files",
    "sweep_table",
    "write_sweep_report",
]

COLORS = {"float": "tab:blue", "quantized": "tab:orange", "integer": "tab:green"}


@dataclass(frozen=True)
class ModelRow:
    """One line of the comparison table: a label, its fidelity figures and its sizes."""

    label: str
    figures: dict[str, Any]  # r2, mse, and for quantized models the drift figures
    artifact_name: str
    artifact_bytes: int
    parameter_bytes: int


def comparison_rows(models: Models, evaluation: Evaluation) -> list[ModelRow]:
    """The table's rows for every model of the version that was evaluated."""
    rows = []
    for kind, figures in evaluation.figures.items():
        model = models.get(kind)
        name = ARTIFACT_OF[kind]
        if kind == "float":
            parameters = float_parameter_bytes(model.n_features)
        elif kind == "quantized":
            assert models.quantized is not None
            q = models.quantized
            parameters = quantized_parameter_bytes(q.n_features, q.bits, q.scale.size)
        else:
            assert models.integer is not None
            bits = int(models.integer.weight_dtype.removeprefix("int"))
            parameters = quantized_parameter_bytes(model.n_features, bits)
        rows.append(ModelRow(model.label, figures, name, models.version.size(name), parameters))
    return rows


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
        clipped = int(f.get("clipped_rows", 0))
        lines.append(
            f"| {row.label} | {f['r2']:.4f} | {f.get('delta_r2', 0.0):+.6f} | {f['mse']:.4f} | "
            f"{f['max_abs_diff']:.6f} | {f['mean_abs_diff']:.6f} | {clipped} | "
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


# Up to this many characters in an axis label, fixed margins hold it (the tests draw the
# longest); beyond, matplotlib's constrained layout places it, at its cost: its solver was
# 45 % of a 400-row `run`, so the usual short names do without it.
_LONGEST_FIXED_LABEL = 56


def _figure(
    size: tuple[float, float], target: str, units: str | None, **margins: float
) -> "Figure":
    """A figure with fixed ``margins``, or laid out by matplotlib when a label is too long."""
    from matplotlib.figure import Figure

    longest = max(
        len(_label(f"predicted {target}", units)), len(_label("actual − predicted", units))
    )
    if longest > _LONGEST_FIXED_LABEL:
        return Figure(figsize=size, layout="constrained")
    figure = Figure(figsize=size)
    figure.subplots_adjust(**margins)
    return figure


def _label(name: str, units: str | None) -> str:
    return f"{name} ({units})" if units else name


def predicted_vs_actual_png(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], target: str, units: str | None
) -> bytes:
    return _figure_png(predicted_vs_actual_figure(y_true, predictions, target, units))


def predicted_vs_actual_figure(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], target: str, units: str | None
) -> "Figure":
    """One panel per model, same axes: points on the diagonal are exact predictions."""

    figure = _figure((5 * len(predictions), 5), target, units,
                     left=0.16 / len(predictions), right=0.97, bottom=0.1, top=0.87,
                     wspace=0.3)  # fmt: skip
    axes_row: Sequence[Axes] = figure.subplots(
        1, len(predictions), sharex=True, sharey=True, squeeze=False
    )[0]
    low = float(min(y_true.min(), *(p.min() for p in predictions.values())))
    high = float(max(y_true.max(), *(p.max() for p in predictions.values())))
    for axes, (label, predicted), color in zip(
        axes_row, predictions.items(), COLORS.values(), strict=False
    ):
        axes.scatter(y_true, predicted, s=4, alpha=0.35, color=color)
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="exact")
        axes.set(
            xlabel=_label(f"actual {target}", units),
            ylabel=_label(f"predicted {target}", units),
            title=f"{label}: predicted vs actual",
        )
        axes.legend(loc="lower right")
    figure.suptitle("Test split")
    return figure


def residuals_png(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], target: str, units: str | None
) -> bytes:
    return _figure_png(residuals_figure(y_true, predictions, target, units))


def residuals_figure(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], target: str, units: str | None
) -> "Figure":
    """The float model's residuals against its prediction (structure means the linear model
    misses something), and every model's residual distribution on one axis."""

    figure = _figure((11, 4.5), target, units,
                     left=0.07, right=0.98, bottom=0.12, top=0.91, wspace=0.22)  # fmt: skip
    scatter_axes, hist_axes = figure.subplots(1, 2)
    (first_label, first), *_ = predictions.items()
    residuals = y_true - first
    scatter_axes.scatter(first, residuals, s=4, alpha=0.35, color=COLORS["float"])
    scatter_axes.axhline(0.0, color="black", linewidth=1)
    scatter_axes.set(
        xlabel=_label(f"predicted {target}", units),
        ylabel=_label("actual − predicted", units),
        title=f"Residuals of the {first_label} model",
    )
    for (label, predicted), color in zip(predictions.items(), COLORS.values(), strict=False):
        # "auto" bins: a fixed count fails on a (near-)constant residual
        hist_axes.hist(y_true - predicted, bins="auto", histtype="step", color=color, label=label)
    hist_axes.set(
        xlabel=_label("actual − predicted", units),
        ylabel="test rows",
        title="Residual distribution per model",
    )
    hist_axes.legend()
    return figure


def context_lines(models: Models) -> list[str]:
    """Where the version came from, for the report's header."""
    manifest = models.version.manifest
    data, split = manifest.training_data, manifest.split
    lines = [
        f"version: {models.version.number} of {models.version.models_dir}",
        f"training data: {data.get('source')} (sha256 {str(data.get('sha256'))[:16]}…)",
        f"split: {split.get('method')}, test_size={split.get('test_size')}, "
        f"random_state={split.get('random_state')}, {split.get('n_train')} train / "
        f"{split.get('n_test')} test rows",
        f"features: {', '.join(models.float.feature_names)}; target: {models.float.target_name}",
    ]
    facts = models.quantization_facts()
    if facts is not None:
        scales = ", ".join(f"{v:.8g}" for v in facts["scale"])
        lines.append(
            f"quantization: {facts['dtype']}, {facts['granularity']}, {facts['rounding']} "
            f"rounding, scale {scales}, zero point {', '.join(map(str, facts['zero_point']))}"
        )
    return lines


def run_report_files(
    models: Models,
    evaluation: Evaluation,
    X: np.ndarray,
    y: np.ndarray,
    units: str | None,
) -> dict[str, bytes]:
    """``report.md`` (context lines, then the table as printed), the model card and the two
    pictures, by file name: ``run`` writes them before it publishes the version they describe."""
    table = comparison_table(comparison_rows(models, evaluation))
    predictions = {models.get(kind).label: models.get(kind).predict(X) for kind in models.kinds()}
    target = models.float.target_name
    markdown = "\n".join(
        [
            "# linreg-ops report",
            "",
            *[f"- {line}" for line in context_lines(models)],
            "",
            f"## Float vs quantized ({evaluation.source}, {evaluation.n_rows} rows)",
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
    return {
        "report.md": markdown.encode("utf-8"),
        "model_card.md": model_card(models, evaluation, units).encode("utf-8"),
        "predicted_vs_actual.png": predicted_vs_actual_png(y, predictions, target, units),
        "residuals.png": residuals_png(y, predictions, target, units),
    }


SWEEP_FLOOR = 1e-12  # zeros drawn on a log axis sit at this value


def quantization_png(
    rows: list[dict[str, Any]], scatter: dict[str, tuple[np.ndarray, np.ndarray]]
) -> bytes:
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
    from linreg_ops.config import QuantConfig
    from linreg_ops.quantization.quantize import quantize_model

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
    return [store.atomic_write(Path(reports_dir) / n, d) for n, d in files.items()]


# --------------------------------------------------------------------------- drift


def drift_table(drift: dict[str, Any]) -> str:
    """Per feature (and the prediction) the drift figures and verdict; then the prediction's
    change attributed to each feature; with a target, realised R² and MSE beside training's.
    Printed by ``monitor`` and embedded in drift.md as the same string."""
    if not drift["rows"]:
        return f"No rows from {drift['source']}: nothing to compare."
    limits = drift["thresholds"]
    test = (
        f"normed Wasserstein ≥ {limits['wasserstein_norm']:g}"
        if limits["test"] == "wasserstein"
        else f"KS p < {limits['ks_p_value']:g}"
    )
    lines = [
        f"Drift of {drift['rows']:,} rows from {drift['source']} against the "
        f"{drift['reference_rows']:,} training rows of version {drift['version']} "
        f"(drift: {test}, or PSI ≥ {limits['psi_significant']:g})",
        "| column | PSI | KS | KS p | Wasserstein/σ | mean shift (σ) | outside range | drift |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for column in [*drift["features"], drift["prediction"]]:
        shift = column["mean_shift_sigma"]
        lines.append(
            f"| {column['name']} | {column['psi']:.4f} ({column['psi_level']}) | "
            f"{column['ks']:.4f} | {column['ks_p_value']:.3g} | {column['wasserstein_norm']:.4f} | "
            f"{'n/a' if shift is None else f'{shift:+.3f}'} | {column['outside_share']:.2%} | "
            f"{'DRIFT' if column['drift'] else 'no'} |"
        )
    prediction = drift["prediction"]
    lines += [
        "",
        f"Prediction mean changed by {prediction['mean_change']:+.6g} "
        f"(Σ w·Δμ = {prediction['mean_change_attributed']:+.6g}); variance by "
        f"{prediction['variance_change']:+.6g} "
        f"(wᵀ(Σ_new − Σ_train)w = {prediction['variance_change_attributed']:+.6g})",
        "| feature | weight | Δ mean | Δ mean pred | share | Δ var pred | share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in drift["attribution"]:
        lines.append(
            f"| {row['name']} | {row['weight']:+.4g} | {row['mean_shift']:+.4g} | "
            f"{row['mean_contribution']:+.4g} | {_share(row['mean_share'])} | "
            f"{row['variance_contribution']:+.4g} | {_share(row['variance_share'])} |"
        )
    target = drift["target"]
    if target is not None:
        r2 = target["r2"]
        lines += [
            "",
            f"With {target['column']}: R² {'n/a' if r2 is None else f'{r2:.4f}'} "
            f"(training {_number(target['training_r2'])}), MSE {target['mse']:.4f} "
            f"(training {_number(target['training_mse'])})",
        ]
    verdict = ", ".join(drift["drifted"]) or "none"
    lines += ["", f"Drifted features: {verdict}; prediction drift: "
              f"{'yes' if prediction['drift'] else 'no'}"]  # fmt: skip
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def drift_markdown(drift: dict[str, Any], table: str) -> str:
    """drift.md: the table as printed, and the figure."""
    return "\n".join(["# Drift", "", table, "", "![drift](drift.png)", ""])


def drift_png(drift: dict[str, Any]) -> bytes:
    """Per column the normed Wasserstein distance and PSI against their thresholds, and each
    feature's share of the prediction's mean and variance change."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), layout="constrained")
    grid = figure.subplots(2, 2)
    columns = [*drift["features"], drift["prediction"]] if drift["rows"] else []
    names = [c["name"] for c in columns]
    limits = drift["thresholds"]
    for axes, key, lines, title in (
        (grid[0, 0], "wasserstein_norm", [limits["wasserstein_norm"]], "Wasserstein / training σ"),
        (grid[0, 1], "psi", [limits["psi_moderate"], limits["psi_significant"]], "PSI"),
    ):
        colors = ["tab:red" if c["drift"] else "tab:blue" for c in columns]
        axes.barh(names, [c[key] for c in columns], color=colors)
        for value in lines:
            axes.axvline(value, color="black", linestyle="--", linewidth=1)
        axes.invert_yaxis()
        axes.set(title=title)
    attribution = drift["attribution"]
    features = [row["name"] for row in attribution]
    for axes, key, title in (
        (grid[1, 0], "mean_contribution", "Δ mean prediction: w_j·Δμ_j"),
        (grid[1, 1], "variance_contribution", "Δ prediction variance: w_j·(ΔΣ w)_j"),
    ):
        axes.barh(features, [row[key] for row in attribution], color="tab:orange")
        axes.axvline(0.0, color="black", linewidth=1)
        axes.invert_yaxis()
        axes.set(title=title)
    figure.suptitle(f"Drift of {drift['rows']:,} rows from {drift['source']}")
    return _figure_png(figure)


# --------------------------------------------------------------------------- model card


def model_card(models: Models, evaluation: Evaluation, units: str | None) -> str:
    """``model_card.md``: what the model is for, what it is not for, and what it measured.

    Built only from the version's artifacts (no time stamp, no version number, no folder), so
    two runs on the same data give the same bytes.
    """
    model, version = models.float, models.version
    manifest = version.manifest
    data, split = manifest.training_data, manifest.split
    target = model.target_name + (f" ({units})" if units else "")
    lines = [
        f"# Model card: linear regression of {model.target_name}",
        "",
        "## Model",
        "",
        f"- A linear least-squares model (scikit-learn `LinearRegression`, fitted on "
        f"standardized features) predicting {target} from {model.n_features} features: "
        f"{', '.join(model.feature_names)}.",
        "- Three published forms of the same model, each checked against the predictions "
        "recorded when it was published:",
    ]
    for kind in models.kinds():
        name = ARTIFACT_OF[kind]
        lines.append(f"  - `{name}` ({models.get(kind).label}), SHA-256 `{version.sha256(name)}`")
    lines += [
        "",
        "## Intended use and limits",
        "",
        f"- Intended: estimating {model.target_name} for rows like the training rows, where a "
        "linear relation is good enough and an exact, inspectable formula is worth more than "
        "the last points of accuracy; batch or HTTP scoring; integer-only hardware (the "
        "integer-only form).",
        "- A linear model: interactions and non-linear effects are not captured; the residual "
        "plot in the report shows what is left.",
        "- Extrapolation: rows outside the training ranges below get predictions the data never "
        "supported. The integer-only form clips such inputs to its calibrated range, so its "
        "predictions there differ more from the float model; `predict --integer-only` counts "
        "and lists clipped rows.",
        "- Not for decisions about individuals: the data describes groups, and nothing here was "
        "checked for fairness.",
        "",
        "## Data",
        "",
        f"- Source: {data.get('source')}",
        f"- SHA-256: `{data.get('sha256')}`",
        f"- Split: {split.get('method')}; test_size {split.get('test_size')}, "
        f"random_state {split.get('random_state')}; {split.get('n_train')} training and "
        f"{split.get('n_test')} test rows (engine: {split.get('engine')})",
        "",
        f"## Metrics ({evaluation.source}, {evaluation.n_rows} rows)",
        "",
        "| model | R² | MSE | ΔR² vs float | max abs Δŷ | mean abs Δŷ | clipped rows |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, figures in evaluation.figures.items():
        lines.append(
            f"| {models.get(kind).label} | {figures['r2']:.6f} | {figures['mse']:.6f} | "
            f"{figures.get('delta_r2', 0.0):+.2e} | {figures['max_abs_diff']:.6f} | "
            f"{figures['mean_abs_diff']:.6f} | {int(figures.get('clipped_rows', 0))} |"
        )
    lines += ["", "## Quantization", ""]
    if models.quantized is not None:
        q = models.quantized
        lines.append(
            f"- Weights: {q.dtype} ({'symmetric' if q.symmetric else 'asymmetric'}), "
            f"{q.granularity}, {q.rounding} rounding, in standardized feature space; scale "
            f"{', '.join(f'{s:.8g}' for s in q.scale.tolist())}, zero point "
            f"{', '.join(str(z) for z in q.zero_point.tolist())}; int32 bias {q.bias} at "
            f"{q.bias_scale:.8g}."
        )
    if models.integer is not None:
        i = models.integer
        lines.append(
            f"- Integer-only: {i.weight_dtype} weights × int{i.input_bits} inputs "
            f"({i.calibration} calibration), int64 accumulation, requantization by "
            f"{i.multiplier}·2^-{i.shift}, int{i.output_bits} output at scale {i.output_scale:.8g}."
        )
    lines += [
        "",
        "## Training ranges (what the integer-only form is calibrated on)",
        "",
        "| feature | min | max | mean | σ |",
        "|---|---:|---:|---:|---:|",
    ]
    stats = model.stats
    for j, name in enumerate(model.feature_names):
        lines.append(
            f"| {name} | {stats.minimum[j]:.6g} | {stats.maximum[j]:.6g} | "
            f"{stats.mean[j]:.6g} | {stats.std[j]:.6g} |"
        )
    lines += ["", "## Versions", ""]
    lines += [f"- {name}: {value}" for name, value in sorted(manifest.versions.items())]
    return "\n".join(lines) + "\n"
