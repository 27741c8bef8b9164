"""Every training engine stores the same drift profile; a streaming sample bounds its memory
and keeps its shares within their sampling error; quantize carries it to the next version."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linreg_ops import pipeline
from linreg_ops.config import TrainConfig
from linreg_ops.inference import loading
from linreg_ops.monitoring.profile import bin_shares, load_profile
from linreg_ops.storage import store
from linreg_ops.training import sources, summary
from linreg_ops.training.split import held_out_rows

pytestmark = pytest.mark.slow
NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 3)) * [1.0, 10.0, 0.1] + [0.0, 100.0, -5.0]
    X[:, 2] = np.round(X[:, 2], 1)  # few distinct values: repeated quantiles
    y = X @ [1.0, -0.5, 2.0] + rng.normal(size=6000)
    path = tmp_path_factory.mktemp("data") / "rows.parquet"
    pq.write_table(pa.table({**{n: X[:, j] for j, n in enumerate(NAMES)}, "y": y}), path,
                   row_group_size=1000)  # fmt: skip
    return path, X, y


def profile_of(path, models_dir, **config):
    result = pipeline.train(sources.file_source(path, "y"), models_dir, TrainConfig(**config))
    return load_profile(result.version, result.model), result


@pytest.mark.parametrize("engine", ["auto", "streaming", "dask", "sklearn"])
def test_every_engine_stores_the_profile_of_the_training_rows(
    engine, parquet_file, scheduler, tmp_path
):
    path, X, y = parquet_file
    profile, result = profile_of(path, tmp_path / "m", engine=engine, chunk_rows=700,
                                 scheduler=scheduler)  # fmt: skip
    train = X[~held_out_rows(np.arange(len(y)), 42, 0.2)]
    assert profile.n == profile.sample_rows == len(train)
    for j in range(3):
        edges = profile.edges[j]
        assert edges[0] < train[:, j].min() == profile.minimum[j]
        assert edges[-1] == train[:, j].max()
        np.testing.assert_allclose(edges[1:-1], np.quantile(train[:, j], np.arange(1, 100) / 100))
        shares, means = bin_shares(train[:, j], edges)
        np.testing.assert_allclose(profile.shares[j], shares)
        np.testing.assert_allclose(profile.bin_means[j], means)
        assert profile.shares[j][0] == profile.shares[j][-1] == 0.0
    np.testing.assert_allclose(profile.covariance, np.cov(train.T, bias=True), rtol=1e-9)
    predictions = result.model.predict(train)
    assert profile.mean[-1] == pytest.approx(predictions.mean(), rel=1e-12)
    assert profile.prediction_variance == pytest.approx(predictions.var(), rel=1e-9)


def test_a_streaming_sample_keeps_the_shares_within_their_sampling_error(
    parquet_file, tmp_path, monkeypatch
):
    """Beyond SAMPLE_ROWS training rows the quantiles come from a bounded row-hash sample."""
    path, X, y = parquet_file
    monkeypatch.setattr(summary, "SAMPLE_ROWS", 1500)
    profile, _ = profile_of(path, tmp_path / "m", engine="streaming", chunk_rows=500)
    train = X[~held_out_rows(np.arange(len(y)), 42, 0.2)]
    assert 750 <= profile.sample_rows <= 1500 < profile.n == len(train)
    for j in range(3):
        exact = bin_shares(train[:, j], profile.edges[j])[0]
        starts = np.concatenate([[0], profile.psi_cuts + 1])
        coarse = np.add.reduceat(exact, starts)
        sampled = np.add.reduceat(profile.shares[j], starts)
        # 4σ of a binomial share of ~0.1 from ≥ 750 rows
        assert np.max(np.abs(coarse - sampled)) < 4 * np.sqrt(0.1 * 0.9 / 750), j
        assert profile.minimum[j] == train[:, j].min()  # exact, from the moments


def test_quantize_carries_the_profile_into_its_version(trained_dir):
    first = store.open_version(trained_dir, 1)
    second = store.open_version(trained_dir, 2)
    assert second.has(store.DRIFT_PROFILE_JSON)
    assert first.sha256(store.DRIFT_PROFILE_JSON) == second.sha256(store.DRIFT_PROFILE_JSON)
    models = loading.load(trained_dir)
    assert load_profile(models.version, models.float).features == models.float.feature_names
