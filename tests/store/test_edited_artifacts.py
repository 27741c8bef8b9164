"""Edit an artifact (or the manifest) of a published version, rewrite its SHA-256 so the
checksum no longer helps, and load it: the answer must be a clean refusal, or predictions
identical to the unedited model's. Never a NaN, a traceback or a quietly different number."""

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from linreg_ops import predict, store
from linreg_ops.errors import InputError
from linreg_ops.model import KNOWN_ANSWER_TOLERANCE

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
    expected = {kind: models.get(kind).predict(X) for kind in models.kinds()}
    return trained_dir, X, expected


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
                "sha256": store.sha256_bytes(edited),
                "bytes": len(edited),
            }
            manifest_path.chmod(0o644)
            manifest_path.write_text(json.dumps(manifest))
        try:
            loaded = predict.load(models_dir)
            if name == "metrics.json":
                predict.load_metrics(loaded.version)
        except InputError as refusal:
            refused = str(refusal)
        else:
            refused = None
        if refused is not None:
            assert "\n" not in refused
            return
        for kind, before in expected.items():
            after = loaded.get(kind).predict(X)
            if kind == "integer":
                np.testing.assert_array_equal(after, before)
            else:
                tolerance = KNOWN_ANSWER_TOLERANCE * (1.0 + np.abs(before))
                assert np.all(np.abs(after - before) <= tolerance), f"{kind} predictions changed"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
