"""Every runtime agrees with ``predict`` on every input, or refuses it as ``predict`` does.

The domain is stated once (``linreg_ops.model.outside_domain``): finite values, and for the
float kinds no value so large that a sum could overflow float64 in some order. Rows drawn
from tiny to ±float64's maximum, with NaN and ±inf, go to each runtime of each model kind of
the published California version:

* ``predict_rows`` (CLI, files): the answer, or an InputError naming the row and column;
* ONNX (onnxruntime, float64 input): the same answer (integer: codes, clipped flags and y bit
  for bit; float kinds: within twice the rounding bound), NaN where predict refuses;
* C (the compiled header, integer model): the same bits and clipped flag, −1 and NaN where
  predict refuses;
* MLflow (the pyfunc, in process): predict's answers, predict's refusal message;
* HTTP (``/predict``, and ``/invocations`` for the float model, through the app): predict's
  answers; a 4xx naming the row where predict refuses (NaN and ±inf are refused by the
  request parser already, as JSON does not carry them).
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from c_driver import SHA, Driver
from linreg_ops.errors import InputError
from linreg_ops.inference import loading, predict
from linreg_ops.model import domain_error, outside_domain

FLOAT64_MAX = float(np.finfo(np.float64).max)
SPECIAL = [
    0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, -1e300, 1e306, -1e306, 1.7e307, -1.7e307,
    FLOAT64_MAX, -FLOAT64_MAX, np.nan, np.inf, -np.inf,
]  # fmt: skip


@pytest.fixture(scope="module")
def runtimes(trained_dir, models, test_rows, tmp_path_factory):
    """Each kind's ONNX session, the integer header's driver, the MLflow pyfunc of each kind
    and the HTTP app, all built from the one published version."""
    import mlflow.pyfunc
    import onnxruntime
    from fastapi.testclient import TestClient

    from linreg_ops.exports.mlflow import write_mlflow_model
    from linreg_ops.exports.onnx import onnx_model_bytes
    from linreg_ops.inference.serve import ServeSettings, create_app

    folder = tmp_path_factory.mktemp("runtimes")
    sessions, pyfuncs = {}, {}
    example = test_rows[1][:5, :-1]
    for kind in models.kinds():
        model = models.get(kind)
        sessions[kind] = onnxruntime.InferenceSession(
            onnx_model_bytes(model, artifact_sha256=SHA), providers=["CPUExecutionProvider"]
        )
        artifact = loading.ARTIFACT_OF[kind]
        data = (models.version.path / artifact).read_bytes()
        with warnings.catch_warnings():  # MLflow's input example trips a pandas deprecation
            warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
            write_mlflow_model(folder / kind, models, kind, example, {"kind": kind}, data)
        pyfuncs[kind] = mlflow.pyfunc.load_model(str(folder / kind))
    driver = Driver(models.integer, folder / "c", ["-O2"])
    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as client:
        yield sessions, driver, pyfuncs, client


@st.composite
def rows(draw, test_rows):
    """Test rows with some values replaced: by specials (float64's extremes, NaN, ±inf), by
    any float64 at all, or by values a few orders of magnitude beyond the data."""
    X = test_rows[draw(st.lists(st.integers(0, len(test_rows) - 1), min_size=4, max_size=12))]
    X = X.copy()
    values = st.sampled_from(SPECIAL) | st.floats(allow_nan=True, allow_infinity=True)
    values |= st.floats(-1e12, 1e12)
    for i in range(len(X)):
        for j in draw(st.lists(st.integers(0, X.shape[1] - 1), max_size=3, unique=True)):
            X[i, j] = draw(values)
    return X


def assert_answers(model, kind, answers, X):
    """Integer answers bit for bit; float answers within twice the rounding bound."""
    if kind == "integer":
        np.testing.assert_array_equal(answers, model.predict(X))
    else:
        assert np.all(np.abs(answers - model.predict(X)) <= 2.0 * model.rounding_bound(X))


def post(client, path, payload):
    body = json.dumps(payload, allow_nan=True)
    return client.post(path, content=body, headers={"content-type": "application/json"})


def check_every_runtime(models, runtimes, X):
    """Each runtime of each kind on the rows ``X``: predict's answers, or its refusal."""
    sessions, driver, pyfuncs, client = runtimes
    names = list(models.float.feature_names)
    for kind in models.kinds():
        model = models.get(kind)
        refused = outside_domain(model, X)
        inside = X[~refused]
        expected, expected_clipped = model.predict_clipped(inside)

        # predict_rows: each refused row is refused with the domain's message, by number.
        for i in np.flatnonzero(refused):
            with pytest.raises(InputError) as refusal:
                predict.predict_rows(model, X[i : i + 1], first_row=i)
            assert str(refusal.value) == f"input row {i + 1}: {domain_error(model, X[i])}"
        answers, clipped = predict.predict_rows(model, inside)
        np.testing.assert_array_equal(answers, expected)
        np.testing.assert_array_equal(clipped, expected_clipped)

        # ONNX: NaN where predict refuses, predict's answer elsewhere.
        outputs = sessions[kind].run(None, {"X": X})
        y = outputs[-1]
        assert np.isnan(y[refused]).all()
        assert_answers(model, kind, y[~refused], inside)
        if kind == "integer":
            np.testing.assert_array_equal(outputs[0][~refused], model.predict_codes(inside)[0])
            np.testing.assert_array_equal(outputs[1][~refused], expected_clipped)

        # C: the integer header.
        if kind == "integer":
            _, _, c_y, flags = driver.run_rows(X)
            assert (flags[refused] == -1).all()
            assert np.isnan(c_y[refused]).all()
            np.testing.assert_array_equal(c_y[~refused].view(np.int64), expected.view(np.int64))
            np.testing.assert_array_equal(flags[~refused], expected_clipped.astype(np.int64))

        # MLflow: predict's answers, and predict's refusal.
        pyfunc = pyfuncs[kind]
        if len(inside):
            mlflow_answers = pyfunc.predict(pd.DataFrame(inside, columns=names))
            np.testing.assert_array_equal(np.asarray(mlflow_answers, dtype=np.float64), expected)
        for i in np.flatnonzero(refused)[:2]:
            with pytest.raises(InputError) as refusal:
                pyfunc.predict(pd.DataFrame(X[i : i + 1], columns=names))
            assert str(refusal.value) == f"input row 1: {domain_error(model, X[i])}"

        # HTTP: /predict (and /invocations, which serves the float model).
        routes = [("/predict", {"model": kind})]
        if kind == "float":
            routes.append(("/invocations", {}))
        for path, extra in routes:
            if len(inside):
                response = post(client, path, {"instances": inside.tolist(), **extra})
                assert response.status_code == 200, response.text
                np.testing.assert_array_equal(response.json()["predictions"], expected)
            for i in np.flatnonzero(refused)[:2]:
                response = post(client, path, {"instances": [X[i].tolist()], **extra})
                assert 400 <= response.status_code < 500
                message = response.json()["message"]
                if np.isfinite(X[i]).all():
                    assert message == f"request row 1: {domain_error(model, X[i])}"
                else:  # JSON has no NaN or infinity: the request parser refuses the value
                    assert message.startswith("instances[0][")
                    assert "finite number" in message


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_runtime_answers_or_refuses_as_predict_does(models, test_rows, runtimes, data):
    X = data.draw(rows(test_rows[1][:, :-1]))
    refused = outside_domain(models.float, X)
    event(f"float rows refused: {'none' if not refused.any() else 'some'}")
    event(f"finite rows refused: {'yes' if np.isfinite(X[refused]).all(axis=1).any() else 'no'}")
    event(f"a value beyond 1e100 answered: {(np.abs(X[~refused]) > 1e100).any()}")
    check_every_runtime(models, runtimes, X)


def test_every_runtime_at_every_special_value_and_at_the_bounds(models, test_rows, runtimes):
    """Each special value (float64's extremes, subnormals, NaN, ±inf) in each column, and each
    float kind's bound itself and the next float beyond it (decided alike everywhere: the
    graphs compare with the same constant)."""
    base = test_rows[1][0, :-1]
    d = len(base)
    rows_at = []
    for j in range(d):
        for value in SPECIAL:
            rows_at.append(base.copy())
            rows_at[-1][j] = value
        for kind in ("float", "quantized"):
            bound = models.get(kind).input_bounds[j]
            with np.errstate(over="ignore"):  # beyond float64's maximum: infinity
                beyond = np.nextafter(bound, np.inf)
            for value in (bound, beyond, -bound, -beyond):
                rows_at.append(base.copy())
                rows_at[-1][j] = value
    X = np.array(rows_at)
    refused = outside_domain(models.float, X)
    assert refused.any()
    assert not refused.all()
    assert np.isfinite(X[refused]).all(axis=1).any()
    check_every_runtime(models, runtimes, X)
