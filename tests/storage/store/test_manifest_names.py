"""A manifest names the files of its own version, from a fixed set: an entry that is a path
(``../../../secret.txt``, with the right SHA-256) must not be read from outside the version —
not by reading, loading or serving it — nor copied outside the target by ``copy_current``
(which the Dockerfile runs)."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linreg_ops.errors import ArtifactError
from linreg_ops.inference import loading
from linreg_ops.storage import codecs, store

SECRET = b"top secret\n"
ESCAPES = [
    "../../../secret.txt",
    "../../../../secret.txt",
    "/tmp/secret.txt",
    "sub/model.json",
    "./model.json",
    "model.json/.",
    "..",
    "",
    store.MANIFEST_JSON,
    store.EXPORTS_JSON,
]


def add_entry(models_dir: Path, name: str, data: bytes) -> None:
    """Add ``name`` to the current version's manifest with the SHA-256 and size of ``data``
    (what an attacker who can write the folder does)."""
    manifest_path = Path(models_dir) / os.readlink(Path(models_dir) / "current") / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    manifest["artifacts"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def attacked(models_copy, tmp_path):
    """``models_copy`` (under tmp_path/models) whose manifest lists a secret 4 levels up."""
    secret = tmp_path.parent / "secret.txt"
    secret.write_bytes(SECRET)
    name = os.path.relpath(secret, store.open_version(models_copy).path)
    assert name.startswith("../../../"), name
    add_entry(models_copy, name, SECRET)
    yield models_copy, name
    secret.unlink()


def test_reading_refuses_a_path_in_the_manifest(attacked):
    models_dir, name = attacked
    with pytest.raises(ArtifactError, match="is not a linreg-ops artifact") as refused:
        store.open_version(models_dir)
    assert name in str(refused.value)
    with pytest.raises(ArtifactError, match="is not a linreg-ops artifact"):
        loading.load(models_dir)


def test_predict_and_serve_refuse_it_in_one_line(attacked, run_cli):
    models_dir, name = attacked
    for command in (["predict"], ["serve", "--port", "0"]):
        result = run_cli(*command, "--models-dir", models_dir, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert f"{name!r} is not a linreg-ops artifact" in result.stderr


def test_copy_current_writes_nothing_outside_its_target(attacked, tmp_path):
    models_dir, _ = attacked
    target = tmp_path / "image" / "app" / "models"
    with pytest.raises(ArtifactError, match="is not a linreg-ops artifact"):
        store.copy_current(models_dir, target)
    copied_secrets = [p for p in tmp_path.parent.rglob("secret.txt") if p.read_bytes() == SECRET]
    assert copied_secrets == [tmp_path.parent / "secret.txt"], "the secret was copied"
    assert not target.exists()


def test_copy_current_still_copies_a_sound_version(models_copy, tmp_path):
    copied = store.copy_current(models_copy, tmp_path / "image" / "models")
    assert copied.number == store.open_version(models_copy).number
    source = store.open_version(models_copy).manifest.artifacts
    assert sorted(p.name for p in copied.path.iterdir()) == sorted(
        [store.MANIFEST_JSON, *(name for name in source if not name.endswith(".joblib"))]
    )
    assert loading.load(tmp_path / "image" / "models").version.number == copied.number


def manifest_with(name: str) -> bytes:
    entry = {"sha256": "0" * 64, "bytes": 1}
    return json.dumps(
        {
            "schema_version": codecs.SCHEMA_VERSION,
            "version": 1,
            "created_utc": "2024-01-01T00:00:00+00:00",
            "command": "test",
            "artifacts": {name: entry},
            "training_data": {},
            "split": {},
            "versions": {},
            "known_answers": {},
        }
    ).encode()


@pytest.mark.parametrize("name", ESCAPES)
def test_the_schema_refuses_every_name_outside_the_fixed_set(name):
    with pytest.raises(ArtifactError, match="is not a linreg-ops artifact"):
        codecs.decode(store.Manifest, manifest_with(name), "manifest.json")


@given(
    st.text(min_size=0, max_size=40)
    | st.builds(
        os.path.join, st.sampled_from(["..", "/", "x", "."]), st.sampled_from(store.ARTIFACTS)
    )
)
def test_a_name_is_accepted_exactly_when_it_is_an_artifact(name):
    if name in store.ARTIFACTS:
        assert list(codecs.decode(store.Manifest, manifest_with(name), "m").artifacts) == [name]
    else:
        with pytest.raises(ArtifactError):
            codecs.decode(store.Manifest, manifest_with(name), "m")


def test_the_export_record_names_an_artifact_too(tmp_path):
    entry = {
        "version": 1, "model": "float", "format": "onnx", "path": "/x.onnx",
        "sha256": "0" * 64, "bytes": 1, "artifact": "../model.json",
        "artifact_sha256": "0" * 64, "created_utc": "2024-01-01T00:00:00+00:00",
    }  # fmt: skip
    document = {"schema_version": codecs.SCHEMA_VERSION, "exports": [entry]}
    (tmp_path / store.EXPORTS_JSON).write_text(json.dumps(document))
    with pytest.raises(ArtifactError, match="is not a linreg-ops artifact"):
        store.read_exports(tmp_path)
