"""Edit an artifact (or the manifest) of a published version, rewrite its SHA-256 so the
checksum no longer helps, and load it: the answer must be a clean refusal, or predictions
identical to the unedited model's on every stored test row (the integer model's codes and
clipped flags bit for bit, the float kinds' answers within the rounding of each row's
arithmetic). Never a NaN, a traceback or a quietly different number."""

import contextlib
import json
import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from helpers import tamper
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.inference import loading
from linreg_ops.storage import store
from linreg_ops.storage.digests import sha256_bytes

ARTIFACTS = [
    "model.json",
    "quantized_model.json",
    "integer_model.json",
    "metrics.json",
    "manifest.json",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def template(trained_dir, models, test_rows):
    X = test_rows[1][:, :-1]
    return trained_dir, X, models


def assert_same_predictions(before, after, X):
    """Every stored test row answered as before: integer codes and clipped flags bit for bit;
    float answers within the rounding bounds of both models' arithmetic on that row."""
    for kind in before.kinds():
        old, new = before.get(kind), after.get(kind)
        if old.exact_answers:
            np.testing.assert_array_equal(new.answers(X), old.answers(X))
            np.testing.assert_array_equal(new.predict_clipped(X)[1], old.predict_clipped(X)[1])
        else:
            tolerance = old.rounding_bound(X) + new.rounding_bound(X)
            moved = np.abs(new.predict(X) - old.predict(X)) > tolerance
            assert not moved.any(), f"{kind}: {moved.sum()} test predictions changed"


def load_or_refusal(models_dir):
    """The loaded models, or the one-line refusal."""
    try:
        return loading.load(models_dir), None
    except InputError as refusal:
        message = str(refusal)
    assert "\n" not in message
    return None, message


def paths(value, prefix=()):
    """Every location in a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


@st.composite
def edits(draw, document):
    locations = [p for p in paths(document) if p]
    where = draw(st.sampled_from(locations))
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    key, old = where[-1], parent[where[-1]]
    kind = draw(st.sampled_from(["replace", "delete", "scale", "add"]))
    if kind == "delete":
        return where, "delete", None
    if kind == "add":
        return where[:-1], "add", draw(JSON_VALUES)
    if kind == "scale" and isinstance(old, int | float) and not isinstance(old, bool):
        factor = draw(st.sampled_from([-1, 0, 2, 0.5, 1e-9, 1e9, 1 + 1e-3, 10**12]))
        new = old * factor
        return where, "replace", int(new) if isinstance(old, int) and math.isfinite(new) else new
    return where, "replace", draw(JSON_VALUES)


def apply(document, where, action, value):
    target = document
    for key in where[:-1] if action != "add" else where:
        target = target[key]
    if action == "delete":
        if isinstance(target, list):
            target.pop(where[-1])
        else:
            target.pop(where[-1])
    elif action == "add":
        if isinstance(target, list):
            target.append(value)
        elif isinstance(target, dict):
            target["zz_added"] = value
    else:
        target[where[-1]] = value


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), name=st.sampled_from(ARTIFACTS))
def test_an_edited_artifact_is_refused_or_predicts_the_same(template, data, name):
    source, X, expected = template
    folder = Path(tempfile.mkdtemp(prefix="linreg-ops-edit-"))
    try:
        models_dir = Path(shutil.copytree(source, folder / "models", symlinks=True))
        version = store.open_version(models_dir)
        path = version.path / name
        document = json.loads(path.read_bytes())
        where, action, value = data.draw(edits(document))
        apply(document, where, action, value)
        edited = json.dumps(document, allow_nan=True).encode()
        note(f"{name}: {action} {where!r} -> {value!r}")
        path.chmod(0o644)
        path.write_bytes(edited)
        if name != "manifest.json":  # the attacker also makes the checksum agree
            manifest_path = version.path / "manifest.json"
            manifest = json.loads(manifest_path.read_bytes())
            manifest["artifacts"][name] = {
                "sha256": sha256_bytes(edited),
                "bytes": len(edited),
            }
            manifest_path.chmod(0o644)
            manifest_path.write_text(json.dumps(manifest))
        loaded, refused = load_or_refusal(models_dir)
        if loaded is not None and name == "metrics.json":
            try:
                loading.load_metrics(loaded.version)
            except InputError as refusal:
                refused = str(refusal)
        if refused is not None:
            assert "\n" not in refused
            return
        assert_same_predictions(expected, loaded, X)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- numeric edits

MODEL_ARTIFACTS = ["model.json", "quantized_model.json", "integer_model.json", "manifest.json"]


def numbers(value, prefix=()):
    """Every location of a number (not a boolean) in a JSON document."""
    return [
        where
        for where in paths(value, prefix)
        if where
        and isinstance(_at(value, where), int | float)
        and not isinstance(_at(value, where), bool)
    ]


def _at(document, where):
    for key in where:
        document = document[key]
    return document


def numeric_fields(trained_dir):
    """(artifact, top-level field) for every field of every model artifact holding numbers."""
    version = store.open_version(trained_dir)
    found = []
    for name in MODEL_ARTIFACTS:
        document = json.loads((version.path / name).read_bytes())
        found += sorted({(name, where[0]) for where in numbers(document)})
    return found


@pytest.fixture(scope="module")
def editable(trained_dir, tmp_path_factory):
    """One private copy of the models folder; each example edits it and puts it back."""
    folder = tmp_path_factory.mktemp("nudged")
    models_dir = Path(shutil.copytree(trained_dir, folder / "models", symlinks=True))
    version = store.open_version(models_dir)
    originals = {p: p.read_bytes() for p in version.path.iterdir() if p.suffix == ".json"}
    yield models_dir
    for path, data in originals.items():
        path.write_bytes(data)


@contextlib.contextmanager
def edited(models_dir, name, data):
    """``name`` replaced by ``data`` in the current version (SHA-256 rewritten unless it is
    the manifest), for the length of the block."""
    version = store.open_version(models_dir)
    saved = {n: (version.path / n).read_bytes() for n in (name, "manifest.json")}
    try:
        tamper(models_dir, name, lambda _: data, rewrite_sha=name != "manifest.json")
        yield
    finally:
        for n, content in saved.items():
            (version.path / n).write_bytes(content)


@st.composite
def nudged(draw, old):
    """A nearby number: an integer moved by 1 to 1000 (or a power of two), a float moved by
    a few ulps, by a relative 1e-15 … 1e-3, or by a power of two."""
    sign = draw(st.sampled_from([1, -1]))
    if isinstance(old, int):
        step = draw(st.integers(1, 1000) | st.sampled_from([2**k for k in (10, 16, 20, 31)]))
        return old + sign * step
    how = draw(st.sampled_from(["ulps", "relative", "twice"]))
    if how == "ulps":
        value = float(old)
        for _ in range(draw(st.integers(1, 64))):
            value = float(np.nextafter(value, sign * np.inf))
        return value
    if how == "relative":
        return old * (1 + sign * draw(st.sampled_from([1e-15, 1e-12, 1e-9, 1e-6, 1e-3])))
    return old * 2.0**sign


MODEL_FIELDS = {
    "model.json": "coef intercept schema_version training_statistics",
    "quantized_model.json": "bias bias_scale bits feature_mean feature_std scale schema_version "
    "weights zero_point",
    "integer_model.json": "accumulator_scale bias input_bits input_scale input_zero_point "
    "multiplier output_bits output_scale schema_version shift weights",
    "manifest.json": "artifacts known_answers parent schema_version split version",
}
NUMERIC_FIELDS = [
    (name, field) for name, fields in MODEL_FIELDS.items() for field in fields.split()
]


def test_the_nudged_fields_are_every_numeric_field(trained_dir):
    """So that a field added to an artifact is nudged too."""
    assert sorted(NUMERIC_FIELDS) == sorted(numeric_fields(trained_dir))


@pytest.mark.parametrize(("name", "field"), NUMERIC_FIELDS)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_nudged_number_is_refused_or_keeps_every_test_prediction(
    template, editable, name, field, data
):
    """Issue 13, item 5: raising the integer model's multiplier by 1 … 1000 (SHA rewritten)
    loaded and changed up to 4 of the 4,128 test predictions, because the known answers were
    18 rows and a relative 1e-9. Every numeric field of every model artifact, moved a little
    (ulps, a relative 1e-15 … 1e-3, ±1 … 1000): refused, or every test prediction the same."""
    _, X, expected = template
    version = store.open_version(editable)
    document = json.loads((version.path / name).read_bytes())
    where = data.draw(st.sampled_from([w for w in numbers(document) if w[0] == field]))
    value = data.draw(nudged(_at(document, where)))
    note(f"{name}: {where!r} {_at(document, where)!r} -> {value!r}")
    apply(document, where, "replace", value)
    with edited(editable, name, json.dumps(document).encode()):
        loaded, _ = load_or_refusal(editable)
    if loaded is not None:
        assert_same_predictions(expected, loaded, X)


def test_every_multiplier_edit_that_changes_a_test_prediction_is_refused(template, models_copy):
    """The issue's reproduction, every step of it: the integer multiplier raised by 1 … 1000.
    Each edited model that gives any stored test row another code or clipped flag must miss
    the digest its known answers recorded (the full check, which also parses the stored
    split, runs on a sample of steps); the first such edit is also made on disk, SHA-256
    rewritten, and must not load."""
    _, X, models = template
    integer = models.integer
    recorded = models.version.manifest.known_answers["test_digests"]["integer"]
    codes, clipped = integer.predict_codes(X)
    changing = []
    for step in range(1, 1001):
        edited = replace(integer, multiplier=integer.multiplier + step)
        edited_codes, edited_clipped = edited.predict_codes(X)
        if np.array_equal(edited_codes, codes) and np.array_equal(edited_clipped, clipped):
            assert loading.answers_digest(edited, X) == recorded
            continue
        changing.append(step)
        assert loading.answers_digest(edited, X) != recorded, step
        if step in (1, 2, 10, 100, 1000):
            with pytest.raises(ArtifactError, match="integer model does not reproduce"):
                loading.check_known_answers(replace(models, integer=edited))
    assert changing, "no edit changed a test prediction: this test proves nothing"

    def raise_multiplier(data: bytes) -> bytes:
        document = json.loads(data)
        document["multiplier"] += changing[0]
        return json.dumps(document).encode()

    tamper(models_copy, "integer_model.json", raise_multiplier, rewrite_sha=True)
    with pytest.raises(ArtifactError, match="integer model does not reproduce"):
        loading.load(models_copy)
