"""Schemathesis over the service's own OpenAPI schema: whatever it sends, never a 5xx."""

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import settings

from linreg_ops.inference.serve import ServeSettings, create_app

# The schema is taken from the app without starting it; its lifespan loads the models at the
# first call, by which time the fixture below has put a trained model in this folder.
MODELS = Path(tempfile.mkdtemp(prefix="linreg-ops-fuzz-"))
APP = create_app(ServeSettings(models_dir=MODELS, max_batch=50, max_body_bytes=64_000))
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def published_models(trained_dir):
    shutil.copytree(trained_dir, MODELS, dirs_exist_ok=True)
    yield
    shutil.rmtree(MODELS, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=60, deadline=None)
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text}"
    )
    if response.status_code in (400, 413, 422) and case.path in ("/predict", "/invocations"):
        assert response.json()["message"], "a 4xx must say what was wrong"
