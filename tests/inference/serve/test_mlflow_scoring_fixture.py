"""The recorded answers of MLflow's scoring server (``tests/fixtures/mlflow_scoring_answers.json``,
issue 16's parity fixture) are well-formed and cover every payload that
``scripts/record_mlflow_answers.py`` sends: a payload added to the script without recording
again, or a hand-edited fixture, fails here rather than in the parity test."""

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "record_mlflow_answers.py"
FIXTURE = REPO / "tests" / "fixtures" / "mlflow_scoring_answers.json"
SCALARS = {"float", "int", "str", "bool", "null"}
COUNT = r"(0|[1-9][0-9]*)"
LIST_OF_ONE_SHAPE = re.compile(rf"list\[(.+)\] of {COUNT}")
LIST_OF_MANY_SHAPES = re.compile(rf"list of {COUNT}")
ANSWER_KEYS = {"status", "content_type", "body", "error_code", "text"}


@pytest.fixture(scope="module")
def recorder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record_mlflow_answers", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(FIXTURE.read_text())
    return fixture


def is_shape(shape: Any) -> bool:
    """Whether ``shape`` follows the grammar of ``record_mlflow_answers.shape``."""
    if isinstance(shape, str):
        one_shape = LIST_OF_ONE_SHAPE.fullmatch(shape)
        if one_shape:
            return one_shape[2] != "0" and isinstance(one_shape[1], str) and is_shape(one_shape[1])
        return shape in SCALARS or shape == "list of 0"
    if isinstance(shape, dict):
        if len(shape) == 1 and LIST_OF_MANY_SHAPES.fullmatch(key := next(iter(shape))):
            items = shape[key]
            return isinstance(items, list) and bool(items) and all(map(is_shape, items))
        return all(isinstance(key, str) and is_shape(value) for key, value in shape.items())
    return False


def test_the_fixture_answers_every_payload_of_the_script(recorder, recorded):
    assert list(recorded["answers"]) == list(recorder.PAYLOADS)


def test_the_fixture_names_its_mlflow_version_and_recorder(recorded):
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", recorded["mlflow_version"])
    assert (REPO / recorded["recorded_with"]).resolve() == SCRIPT


def test_every_answer_is_a_status_a_media_type_and_a_body_shape(recorded):
    for name, answer in recorded["answers"].items():
        assert set(answer) <= ANSWER_KEYS, name
        assert isinstance(answer["status"], int), name
        assert 100 <= answer["status"] <= 599, name
        assert isinstance(answer["content_type"], str), name
        assert ";" not in answer["content_type"], name
        body = answer["body"]
        assert body in ("empty", "text") or is_shape(body), name
        assert ("text" in answer) <= (body == "text"), name
        if "error_code" in answer:
            assert isinstance(answer["error_code"], str), name
            assert body["error_code"] == "str", name


def test_every_accepted_request_got_predictions_only(recorder, recorded):
    """A 200 from /invocations is ``{"predictions": [...]}``: what a parity test compares."""
    for name, payload in recorder.PAYLOADS.items():
        answer = recorded["answers"][name]
        if payload.path == "/invocations" and answer["status"] == 200:
            assert list(answer["body"]) == ["predictions"], name


def test_every_payload_builds_its_body(recorder):
    """The parity test sends linreg-ops these bodies, built from the California test rows."""
    columns = [f"feature_{j}" for j in range(8)]
    rows = [[float(i * 8 + j) + 0.5 for j in range(8)] for i in range(recorder.ROWS)]
    for name, payload in recorder.PAYLOADS.items():
        assert payload.method in ("GET", "POST"), name
        if payload.body is not None:
            assert isinstance(payload.body(columns, rows), bytes), name


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@settings(max_examples=60)
@given(value=JSON_VALUES, other_float=st.floats(allow_nan=False))
def test_a_shape_is_well_formed_and_holds_no_number(recorder, value, other_float):
    """Shapes follow the grammar, and every float of the answer can change without changing
    its shape: the fixture records keys and types, never predictions."""

    def replace_floats(item: Any) -> Any:
        if isinstance(item, float):
            return other_float
        if isinstance(item, list):
            return [replace_floats(member) for member in item]
        if isinstance(item, dict):
            return {key: replace_floats(member) for key, member in item.items()}
        return item

    shape = recorder.shape(value)
    assert is_shape(shape)
    assert recorder.shape(replace_floats(value)) == shape
    assert json.loads(json.dumps(shape)) == shape
