"""Loading a version's models and verifying them: numpy and JSON only.

Nothing here imports scikit-learn or unpickles anything: this is the path the container and
the HTTP service run. A model is trusted after three checks: the store's SHA-256, the
codec's schema, and its *known answers* — the predictions recorded in the manifest when the
version was published, which the loaded model must reproduce, so an artifact that is valid
but not the one published, or a runtime that computes differently, is refused instead of
served. The integer model must reproduce its output codes and clipped flags bit for bit on
every stored test row (a SHA-256 of them) and on the probe rows; the float kinds their
answers on the probe rows, each within the rounding bound of that row's arithmetic.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import MODEL_KINDS, ModelKind
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.model import (
    IntegerLinearModel,
    LinearModel,
    Predictor,
    QuantizedLinearModel,
    outside_domain,
)
from linreg_ops.storage import codecs, store, tables
from linreg_ops.storage.store import Version

__all__ = [
    "ARTIFACT_OF",
    "KNOWN_ANSWER_ROWS",
    "AnyModel",
    "Models",
    "answers_digest",
    "check_known_answers",
    "known_answers",
    "load",
    "load_metrics",
    "load_models",
    "probe_rows",
    "stored_test_rows",
]

AnyModel = LinearModel | QuantizedLinearModel | IntegerLinearModel  # each one a Predictor
ARTIFACT_OF: dict[ModelKind, str] = {
    "float": store.MODEL_JSON,
    "quantized": store.QUANTIZED_MODEL_JSON,
    "integer": store.INTEGER_MODEL_JSON,
}
KNOWN_ANSWER_ROWS = 16


@dataclass(frozen=True)
class Models:
    """Every model of one version, checked: what ``predict``, ``evaluate`` and ``serve`` use."""

    version: Version
    float: LinearModel
    quantized: QuantizedLinearModel | None
    integer: IntegerLinearModel | None

    def get(self, kind: ModelKind) -> AnyModel:
        model: AnyModel | None = {
            "float": self.float,
            "quantized": self.quantized,
            "integer": self.integer,
        }[kind]
        if model is None:
            raise InputError(f"{self.version} has no {kind} model: run linreg-ops quantize")
        return model

    def kinds(self) -> list[ModelKind]:
        return [kind for kind in MODEL_KINDS if self.version.has(ARTIFACT_OF[kind])]

    def quantization_facts(self) -> dict[str, Any] | None:
        """How the quantized model codes its weights (None without one): what ``/metadata``,
        an MLflow export's metadata and the report's header say about it."""
        if self.quantized is None:
            return None
        quantized = self.quantized
        return {
            "dtype": quantized.dtype,
            "granularity": quantized.granularity,
            "rounding": quantized.rounding,
            "scale": quantized.scale.tolist(),
            "zero_point": quantized.zero_point.tolist(),
        }


def load_models(version: Version) -> Models:
    """Decode every model of ``version`` and check each against its known answers."""
    source = f"{version.path}/"

    def read(name: str) -> bytes:
        return store.read_artifact(version, name)

    float_model = codecs.decode_float(read(store.MODEL_JSON), source + store.MODEL_JSON)
    quantized = integer = None
    if version.has(store.QUANTIZED_MODEL_JSON):
        name = store.QUANTIZED_MODEL_JSON
        quantized = codecs.decode_quantized(read(name), source + name)
    if version.has(store.INTEGER_MODEL_JSON):
        name = store.INTEGER_MODEL_JSON
        integer = codecs.decode_integer(read(name), source + name)
    models = Models(version, float_model, quantized, integer)
    for other in (quantized, integer):
        if other is not None and other.feature_names != float_model.feature_names:
            raise ArtifactError(f"{version}: the models do not name the same features")
    check_known_answers(models)
    return models


def known_answers(models: Mapping[ModelKind, Predictor], test_rows: np.ndarray) -> dict[str, Any]:
    """The manifest section a loader checks: probe rows, the features they are (by name:
    the rows are positional, so a model whose names were swapped would answer them the
    same), what each model answers on them, and for the models whose answers are exact
    (integer codes) a digest of their answers on every stored test row (``test_rows``, in
    the order of ``test_split.csv``)."""
    names = {model.feature_names for model in models.values()}
    if len(names) != 1:
        raise ArtifactError("the models do not name the same features")
    test_rows = test_rows[:, : len(next(iter(names)))]
    rows = probe_rows(models, test_rows)
    answers: dict[str, Any] = {
        "features": list(names.pop()),
        "rows": rows.tolist(),
        "test_rows": len(test_rows),
        "test_digests": {},
    }
    for kind, model in models.items():
        answers[kind] = model.answers(rows).tolist()
        if model.exact_answers:
            answers["test_digests"][kind] = answers_digest(model, test_rows)
    return answers


def probe_rows(models: Mapping[ModelKind, Predictor], test_rows: np.ndarray) -> np.ndarray:
    """The first stored test rows, two rows beyond the training range on every side (so an
    integer model's clipping is part of what is checked), and the test rows where an edit of
    any one number of a float model shows most against its rounding (``sensitive_rows``).
    Rows outside some model's domain are left out: no runtime answers them."""
    float_model = models["float"]
    assert isinstance(float_model, LinearModel)
    stats = float_model.stats
    width = stats.maximum - stats.minimum
    with np.errstate(over="ignore"):  # beyond float64 for huge columns: infinite, left out
        edges = np.vstack([stats.minimum - width - 1.0, stats.maximum + width + 1.0])
    sensitive = np.unique(
        np.concatenate([model.sensitive_rows(test_rows) for model in models.values()])
    )
    rows = np.vstack([test_rows[:KNOWN_ANSWER_ROWS], edges, test_rows[sensitive]])
    outside = np.any([outside_domain(model, rows) for model in models.values()], axis=0)
    return np.ascontiguousarray(rows[~outside])


def answers_digest(model: Predictor, rows: np.ndarray) -> str:
    """SHA-256 of a model's answers and clipped flags on ``rows`` (little-endian int64
    answers, then one byte per flag): exact answers only, the same bits in every runtime."""
    answers = model.answers(rows)
    clipped = model.predict_clipped(rows)[1]
    data = answers.astype("<i8").tobytes() + clipped.astype(np.uint8).tobytes()
    return hashlib.sha256(data).hexdigest()


def check_known_answers(models: Models) -> None:
    """Every model must answer as it did when the version was published: on the probe rows,
    and, for exact answers, on every stored test row."""
    answers = models.version.manifest.known_answers
    kinds = models.kinds()
    try:
        rows = np.asarray(answers["rows"], dtype=np.float64)
        expected = {kind: np.asarray(answers[kind], dtype=np.float64) for kind in kinds}
        usable = rows.ndim == 2 and rows.shape[1] == models.float.n_features
        usable = usable and np.isfinite(rows).all()
        usable = usable and all(e.shape == (len(rows),) for e in expected.values())
        features = answers["features"]
        test_rows, digests = answers["test_rows"], answers["test_digests"]
        exact = [kind for kind in kinds if models.get(kind).exact_answers]
        usable = usable and isinstance(test_rows, int) and isinstance(digests, dict)
        usable = usable and all(isinstance(digests.get(kind), str) for kind in exact)
    except (KeyError, TypeError, ValueError):
        usable = False
    if not usable:
        raise ArtifactError(
            f"{models.version}: {store.MANIFEST_JSON} has no usable known_answers "
            "(published by an older linreg-ops: retrain with linreg-ops train)"
        )
    if features != list(models.float.feature_names):
        raise ArtifactError(
            f"{models.version}: the models name the features {list(models.float.feature_names)}, "
            f"but {store.MANIFEST_JSON} recorded {features} when the version was published"
        )
    for kind, answer in expected.items():
        if not models.get(kind).reproduces(rows, answer):
            raise _not_reproduced(models, kind)
    if exact:
        X = stored_test_rows(models).values[:, :-1]
        if len(X) != test_rows:
            raise ArtifactError(
                f"{models.version}: {store.TEST_SPLIT_CSV} holds {len(X)} rows, but "
                f"{store.MANIFEST_JSON} recorded answers on {test_rows}"
            )
        for kind in exact:
            if answers_digest(models.get(kind), X) != digests[kind]:
                raise _not_reproduced(models, kind)


def _not_reproduced(models: Models, kind: ModelKind) -> ArtifactError:
    return ArtifactError(
        f"{models.version}: the {kind} model does not reproduce the predictions "
        f"recorded when it was published ({store.MANIFEST_JSON} known_answers); "
        "it was changed, or this runtime computes differently"
    )


def load(models_dir: Path, version: int | None = None) -> Models:
    """The current version's models (or version ``version``'s), resolved once."""
    return load_models(store.open_version(models_dir, version))


def stored_test_rows(models: Models) -> tables.Table:
    """The version's held-out rows (features, then the target)."""
    columns = [*models.float.feature_names, models.float.target_name]
    data = store.read_artifact(models.version, store.TEST_SPLIT_CSV)
    return tables.parse_csv(data, columns, label=str(models.version.path / store.TEST_SPLIT_CSV))


def load_metrics(version: Version) -> dict[str, Any] | None:
    """The version's ``metrics.json``, checked against its schema."""
    if not version.has(store.METRICS_JSON):
        return None
    data = store.read_artifact(version, store.METRICS_JSON)
    return codecs.decode_metrics(data, str(version.path / store.METRICS_JSON))
