"""The report embeds the printed table verbatim and draws two real PNG pictures."""

import numpy as np
import pytest

from linreg_ops import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows():
    quantized = {"r2": 0.57627, "mse": 0.55526, "max_abs_diff": 0.1444, "mean_abs_diff": 0.0041}
    return [
        report.ModelRow(
            "float64",
            {"r2": 0.57578, "mse": 0.55589, "max_abs_diff": 0.0, "mean_abs_diff": 0.0},
            "model.json",
            985,
            72,
        ),
        report.ModelRow(
            "int8 per-tensor",
            {**quantized, "delta_r2": 0.00049, "clipped_rows": 2},
            "quantized_model.json",
            1221,
            21,
        ),
    ]


def test_table_formats_four_decimals_and_thousands():
    table = report.comparison_table(rows())
    lines = table.splitlines()
    assert lines[0].startswith("| model | R² | ΔR² | MSE |")
    float_line = "| float64 | 0.5758 | +0.000000 | 0.5559 | 0.000000 | 0.000000 | 0 | model.json |"
    assert lines[2] == float_line + " 985 | 72 |"
    assert "| int8 per-tensor | 0.5763 | +0.000490 | 0.5553 | 0.144400 | 0.004100 | 2 |" in lines[3]


def test_parameter_bytes():
    from linreg_ops.quantization.quantize import float_parameter_bytes, quantized_parameter_bytes

    assert float_parameter_bytes(8) == 72
    # 8 int8 codes + int32 bias + float32 scale + one int8 zero point
    assert quantized_parameter_bytes(8, 8) == 8 + 4 + 4 + 1
    assert quantized_parameter_bytes(8, 4) == 4 + 4 + 4 + 1
    assert quantized_parameter_bytes(8, 4, n_scales=8) == 4 + 4 + 32 + 4


@pytest.mark.parametrize("noise", [0.3, 0.0], ids=["noisy", "constant-residual"])
def test_plots_are_real_pictures(noise):
    rng = np.random.default_rng(0)
    y = rng.normal(size=100)
    predictions = {"float64": y + 0.1 + noise * rng.normal(size=100)}
    predictions["int8 per-tensor hessian"] = predictions["float64"] + 0.01
    for draw in (report.predicted_vs_actual_png, report.residuals_png):
        data = draw(y, predictions, "MedHouseVal", "$100,000s")
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000


def test_run_report_embeds_the_table_as_printed(models, test_rows):
    from linreg_ops.inference import evaluate

    X, y = test_rows[1][:, :-1], test_rows[1][:, -1]
    evaluation = evaluate.evaluate(models, X, y, "stored test split")
    files = report.run_report_files(models, evaluation, X, y, "$100,000s")
    assert sorted(files) == [
        "model_card.md",
        "predicted_vs_actual.png",
        "report.md",
        "residuals.png",
    ]
    markdown = files["report.md"].decode("utf-8")
    assert report.comparison_table(report.comparison_rows(models, evaluation)) in markdown
    assert "- version: 2 of" in markdown


def test_the_plots_name_each_model_and_the_units():
    """Issue 8: float points hidden under int8 ones, an unnamed residual plot, no units."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    predictions = {"float64": y + 0.1, "int8 per-tensor hessian": y + 0.2, "integer-only": y}
    figure = report.predicted_vs_actual_figure(y, predictions, "MedHouseVal", "$100,000s")
    panels = figure.axes
    assert [axes.get_title() for axes in panels] == [
        f"{label}: predicted vs actual" for label in predictions
    ]
    for axes in panels:  # each model in its own panel: none hides another
        assert len(axes.collections) == 1
        assert axes.get_xlabel() == "actual MedHouseVal ($100,000s)"
        assert axes.get_ylabel() == "predicted MedHouseVal ($100,000s)"
    figure = report.residuals_figure(y, predictions, "MedHouseVal", "$100,000s")
    scatter, histogram = figure.axes
    assert scatter.get_title() == "Residuals of the float64 model"
    assert scatter.get_ylabel() == "actual − predicted ($100,000s)"
    assert [t.get_text() for t in histogram.get_legend().get_texts()] == list(predictions)
    no_units = report.residuals_figure(y, predictions, "y", None)
    assert no_units.axes[0].get_xlabel() == "predicted y"


def test_the_model_card_is_the_same_bytes_for_two_runs(california, tmp_path):
    from linreg_ops import pipeline

    cards = []
    for run in ("first", "second"):
        pipeline.run(california, tmp_path / "models", tmp_path / run)
        cards.append((tmp_path / run / "model_card.md").read_bytes())
    assert cards[0] == cards[1]
    text = cards[0].decode()
    for words in ("Intended use and limits", "Extrapolation", "clips", "SHA-256",
                  "train_test_split", "| integer-only int8×int16 minmax |", "| MedInc |",
                  "numpy"):  # fmt: skip
        assert words in text


def _overlapping_texts(figure) -> list[str]:
    """Titles and axis labels that overlap one another or leave the picture, once drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [figure._suptitle] if figure._suptitle is not None else []
    for axes in figure.axes:
        texts += [axes.title, axes.xaxis.label, axes.yaxis.label]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    whole = figure.bbox
    found = [
        f"{name!r} leaves the picture"
        for name, box in boxes
        if box.x0 < whole.x0 - 1 or box.y0 < whole.y0 - 1
        or box.x1 > whole.x1 + 1 or box.y1 > whole.y1 + 1
    ]  # fmt: skip
    for i, (first, a) in enumerate(boxes):
        for second, b in boxes[i + 1 :]:
            if a.overlaps(b):
                found.append(f"{first!r} overlaps {second!r}")
    return found


@pytest.mark.parametrize(
    "target",
    [
        "MedHouseVal",
        "median_house_value_in_us_dollars_2026",
        "target_with_a_really_long_name_in_units_of_currency",
    ],
)
def test_the_plots_titles_and_labels_neither_overlap_nor_leave_the_picture(target):
    """Attack on the fixed margins (the constrained layout was dropped for speed): the real
    panel titles and a longer target name, as a user's CSV names it. Checked failing: the
    third panel's title ran into the second panel's y label, labels left the picture."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=50) * 1000
    predictions = {
        "float64": y + 0.1,
        "int8 per-tensor hessian": y + 0.2,
        "integer-only int8×int16 minmax": y,
    }
    for figure in (
        report.predicted_vs_actual_figure(y, predictions, target, "$"),
        report.residuals_figure(y, predictions, target, "$"),
    ):
        assert _overlapping_texts(figure) == []
