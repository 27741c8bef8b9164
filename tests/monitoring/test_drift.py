"""Drift metrics and their verdicts on California Housing, and the exact attribution."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import fit_model
from linreg_ops.config import DRIFT_DEFAULTS
from linreg_ops.moments import MomentStats
from linreg_ops.monitoring.drift import drift_report, ks_p_value, wasserstein
from linreg_ops.monitoring.profile import build_profile, load_profile
from linreg_ops.monitoring.stats import Accumulator, DriftStats, record


@pytest.fixture(scope="module")
def california_profile(models):
    return load_profile(models.version, models.float)


def report_of(profile, model, X, y=None, training=None):
    stats = DriftStats.empty(Accumulator.of(profile, model))
    record(stats, X, y)
    return drift_report(
        profile, stats, model.coef, source="rows", version=1, training=training,
        target=None if y is None else "y",
    )  # fmt: skip


@pytest.mark.parametrize("feature", range(8))
def test_a_one_sigma_shift_of_one_feature_is_flagged_and_no_other(
    feature, models, test_rows, california_profile
):
    X = test_rows[1][:, :-1].copy()
    X[:, feature] += california_profile.std[feature]
    report = report_of(california_profile, models.float, X)
    assert report["drifted"] == [models.float.feature_names[feature]]
    shifted = report["features"][feature]
    assert shifted["wasserstein_norm"] == pytest.approx(1.0, abs=0.05)
    assert shifted["mean_shift_sigma"] == pytest.approx(1.0, abs=0.05)
    assert shifted["psi_level"] != "stable"


def test_the_test_split_itself_shows_no_drift(models, test_rows, california_profile):
    report = report_of(california_profile, models.float, test_rows[1][:, :-1])
    assert report["drifted"] == []
    assert report["drift"] is False
    assert max(f["psi"] for f in report["features"]) < 0.01


def test_false_alarm_rate_over_100_bootstrap_resamples_is_at_most_5_percent(
    models, test_rows, california_profile
):
    X = test_rows[1][:, :-1]
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(100):
        sample = X[rng.integers(0, len(X), len(X))]
        alarms += report_of(california_profile, models.float, sample)["drift"]
    assert alarms <= 5


def test_realised_r2_and_mse_on_the_test_split_are_the_training_figures(
    models, test_rows, california_profile
):
    from linreg_ops.inference.loading import load_metrics

    metrics = load_metrics(models.version)["float"]
    values = test_rows[1]
    report = report_of(california_profile, models.float, values[:, :-1], values[:, -1], metrics)
    assert report["target"]["r2"] == pytest.approx(metrics["r2"], rel=1e-9)
    assert report["target"]["mse"] == pytest.approx(metrics["mse"], rel=1e-9)
    assert report["target"]["training_r2"] == metrics["r2"]


def test_binned_wasserstein_is_close_to_scipys_on_the_rows(
    california, models, test_rows, california_profile
):
    """The grid estimate against SciPy's exact distance between the training and new rows."""
    from scipy.stats import wasserstein_distance
    from sklearn.model_selection import train_test_split

    X_train = train_test_split(california.X, california.y, test_size=0.2, random_state=42)[0]
    assert california_profile.sample_rows == california_profile.n == len(X_train)
    X = test_rows[1][:, :-1].copy()
    X[:, 0] *= 1.3  # a stretch
    X[:, 1] += 0.5 * X_train[:, 1].std()  # a shift
    report = report_of(california_profile, models.float, X)
    for j, feature in enumerate(report["features"]):
        exact = wasserstein_distance(X_train[:, j], X[:, j]) / X_train[:, j].std()
        binned = feature["wasserstein_norm"]
        assert binned <= exact * (1 + 1e-9), j  # never more: a lower bound
        if j < 2:  # the drifted ones: within 2 %
            assert binned == pytest.approx(exact, rel=0.02), j
        else:  # the others: as far below the threshold as the exact distance
            assert binned < 0.05, j
            assert exact < 0.05, j


@pytest.mark.parametrize(
    ("statistic", "n", "m"),
    [(0.05, 2000, 500), (0.2, 100, 80), (0.01, 10**6, 10**5), (0.5, 30, 20)],
)
def test_ks_p_value_is_the_kolmogorov_distribution(statistic, n, m):
    from scipy.special import kolmogorov

    root = math.sqrt(n * m / (n + m))
    expected = float(kolmogorov((root + 0.12 + 0.11 / root) * statistic))
    assert ks_p_value(statistic, n, m) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_wasserstein_from_bin_shares_and_means_is_exact_without_crossings():
    """Two samples whose CDFs never cross: the binned distance is SciPy's exact one, however
    coarse the bins, also for rows beyond the outer edges."""
    from scipy.stats import wasserstein_distance

    from linreg_ops.monitoring.profile import bin_shares

    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 10, 500)
    new = np.concatenate([ref + 0.7, [15.0, 30.0]])  # stochastically larger, some above
    edges = np.array([-0.1, 2.5, 5.0, 7.5, 10.0])
    p, p_means = bin_shares(ref, edges)
    q, q_means = bin_shares(new, edges)
    assert wasserstein(edges, p, p_means, q, q_means) == pytest.approx(
        wasserstein_distance(ref, new), rel=1e-12
    )


# --------------------------------------------------------------------------- attribution


@st.composite
def drifted_problem(draw):
    d = draw(st.integers(1, 6))
    n = draw(st.integers(d + 5, 300))
    m = draw(st.integers(2, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-3, 3, d)  # features of every scale, ...
    offsets = rng.normal(0, 10, d) * scales  # ... off-centre, ...
    weights = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)  # ... each of weight
    X = rng.normal(size=(n, d)) * scales + offsets
    y = ((X - offsets) / scales) @ weights + rng.normal(size=n)
    shift = np.zeros(d)
    moved = draw(st.integers(0, d - 1))
    shift[moved] = draw(st.floats(0.2, 3.0)) * draw(st.sampled_from([-1.0, 1.0])) * scales[moved]
    stretch = draw(st.floats(0.5, 2.0))
    new = (rng.normal(size=(m, d)) * scales * stretch) + offsets + shift
    return X, y, new


@given(drifted_problem())
def test_attributed_prediction_change_equals_the_measured_one(problem):
    X, y, new = problem
    model = fit_model(X, y)
    profile_doc = build_profile(MomentStats.of(X, y), X, model)
    from linreg_ops.monitoring.profile import Profile

    profile = Profile.of(profile_doc)
    report = report_of(profile, model, new)
    prediction = report["prediction"]
    measured_mean = model.predict(new).mean() - model.predict(X).mean()
    assert prediction["mean_change_attributed"] == pytest.approx(measured_mean, rel=1e-9)
    assert prediction["mean_change"] == pytest.approx(measured_mean, rel=1e-9)
    measured_variance = model.predict(new).var() - model.predict(X).var()
    scale = model.predict(new).var() + model.predict(X).var()
    assert abs(prediction["variance_change_attributed"] - measured_variance) <= 1e-9 * scale
    assert abs(prediction["variance_change"] - measured_variance) <= 1e-9 * scale
    shares = [row["mean_share"] for row in report["attribution"]]
    assert math.fsum(shares) == pytest.approx(1.0)


def test_thresholds_are_the_documented_defaults():
    assert (DRIFT_DEFAULTS.psi_moderate, DRIFT_DEFAULTS.psi_significant) == (0.1, 0.25)
    assert DRIFT_DEFAULTS.wasserstein_threshold == 0.1
    assert DRIFT_DEFAULTS.ks_p_value == 0.05
    assert DRIFT_DEFAULTS.small_reference_rows == 1000


def test_gauge_samples_render_as_prometheus_text(models, test_rows, california_profile):
    """The samples a /metrics collector would expose: every column's figures, its verdict,
    and the attribution's terms, which add up to the measured change."""
    from linreg_ops.monitoring.drift import GAUGES, gauge_samples

    X = test_rows[1][:, :-1].copy()
    X[:, 0] += california_profile.std[0]
    report = report_of(california_profile, models.float, X)
    samples = gauge_samples(report)
    by_name = {}
    for name, _, labels, value in samples:
        by_name.setdefault(name, {})[tuple(sorted(labels.items()))] = value
    assert by_name["linreg_ops_drift_rows"][()] == len(X)
    assert by_name["linreg_ops_drift_detected"][(("column", "MedInc"),)] == 1.0
    assert by_name["linreg_ops_drift_detected"][(("column", "HouseAge"),)] == 0.0
    assert len(by_name["linreg_ops_drift_psi"]) == 9  # 8 features and the prediction
    terms = by_name["linreg_ops_drift_mean_contribution"]
    assert math.fsum(terms.values()) == pytest.approx(
        by_name["linreg_ops_drift_prediction_mean_change"][()], rel=1e-9
    )
    assert set(GAUGES) <= set(by_name)
    empty = gauge_samples({**report, "rows": 0})
    assert [(name, value) for name, _, _, value in empty] == [("linreg_ops_drift_rows", 0.0)]
