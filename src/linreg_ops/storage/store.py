"""The models folder: one writer at a time, immutable versions, one atomic publication.

Layout (``models/`` by default)::

    .lock                  flock()ed by the one writer; holds its PID and command
    .staging/              versions being written (removed by the next writer)
    versions/1/ …          published versions: complete, verified, never written again
    current -> versions/N  the published version, switched by one atomic rename
    aliases/NAME -> ../versions/N
                           other aliases (``current`` is one too, kept where it always was)
    history.jsonl          every alias move (publication moves ``current``): time, user,
                           previous holder; appended before the switch, so a kill leaves an
                           entry the link does not confirm, which readers leave out
    leases/*.lease         one per serving process, flock()ed while it has a version open
    model.json -> current/model.json, manifest.json -> current/manifest.json, …
                           the seed's paths, each resolving through ``current``

A writer holds the lock, writes a whole run into a staging folder, has it verified (every
file re-read against its SHA-256, every model decoded and checked by the caller), renames
it to ``versions/N`` and only then points ``current`` at it — so a crash or a SIGKILL at
any instant leaves the previous version current and loadable, and a reader that resolved
``current`` once reads every file from one version. Readers take no lock.

This is the only module that touches the models folder. Every read opens a regular file
inside it (no symlink, FIFO or device), of the size the manifest records, under a cap.
"""

import contextlib
import errno
import fcntl
import getpass
import json
import os
import platform
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from linreg_ops.config import DEFAULT_LOCK_TIMEOUT
from linreg_ops.errors import ArtifactError, InputError, StoreBusyError
from linreg_ops.storage.codecs import SCHEMA_VERSION, Versioned, decode
from linreg_ops.storage.digests import sha256_bytes

__all__ = [
    "ALIASES",
    "ARTIFACTS",
    "ARTIFACT_MAX_BYTES",
    "CURRENT",
    "DRIFT_PROFILE_JSON",
    "ESTIMATOR_JOBLIB",
    "EXPORTS_JSON",
    "HISTORY_JSONL",
    "INTEGER_MODEL_JSON",
    "LEASES",
    "LOCK",
    "MANIFEST_JSON",
    "MANIFEST_MAX_BYTES",
    "MAX_VERSION",
    "METRICS_JSON",
    "MODEL_JSON",
    "QUANTIZED_MODEL_JSON",
    "QUANT_PARAMS_JOBLIB",
    "SEED_PATHS",
    "STAGING",
    "STREAMS",
    "TEST_SPLIT_CSV",
    "UNQUANT_PARAMS_JOBLIB",
    "VERSIONS",
    "ArtifactEntry",
    "ArtifactName",
    "ExportEntry",
    "Exports",
    "Holder",
    "Lease",
    "Manifest",
    "Move",
    "StagedFile",
    "Version",
    "Writer",
    "alias_holder",
    "aliases",
    "atomic_write",
    "check_alias_name",
    "check_outside",
    "check_writable",
    "copy_current",
    "discard_files",
    "import_version",
    "leased_versions",
    "moves",
    "open_version",
    "output_target",
    "package_versions",
    "place_file",
    "read_artifact",
    "read_exports",
    "read_regular_file",
    "record_export",
    "remove_tree",
    "rename_into_place",
    "stage_file",
    "staging_sibling",
    "take_lease",
    "version_numbers",
    "writer",
]

ESTIMATOR_JOBLIB = "linear_regression_model.joblib"
UNQUANT_PARAMS_JOBLIB = "unquant_params.joblib"
QUANT_PARAMS_JOBLIB = "quant_params.joblib"
MODEL_JSON = "model.json"
QUANTIZED_MODEL_JSON = "quantized_model.json"
INTEGER_MODEL_JSON = "integer_model.json"
TEST_SPLIT_CSV = "test_split.csv"
METRICS_JSON = "metrics.json"
DRIFT_PROFILE_JSON = "drift_profile.json"  # the training rows' profile, for drift monitoring
MANIFEST_JSON = "manifest.json"
EXPORTS_JSON = "exports.json"  # the store's record of exports: outside the immutable versions
ARTIFACTS = (
    ESTIMATOR_JOBLIB,
    UNQUANT_PARAMS_JOBLIB,
    QUANT_PARAMS_JOBLIB,
    MODEL_JSON,
    QUANTIZED_MODEL_JSON,
    INTEGER_MODEL_JSON,
    TEST_SPLIT_CSV,
    METRICS_JSON,
    DRIFT_PROFILE_JSON,
)
SEED_PATHS = (*ARTIFACTS, MANIFEST_JSON)  # models/<name> → current/<name>

LOCK = ".lock"
STAGING = ".staging"
VERSIONS = "versions"
CURRENT = "current"
ALIASES = "aliases"
HISTORY_JSONL = "history.jsonl"
LEASES = "leases"
_ALIAS_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MANIFEST_MAX_BYTES = 4 << 20
ARTIFACT_MAX_BYTES = 1 << 30  # the stored test split of a wide file is the largest artifact
_VERSION_LINK = re.compile(r"versions/([1-9][0-9]{0,8})")
MAX_VERSION = 999_999_999  # what _VERSION_LINK accepts


# --------------------------------------------------------------------------- manifest


def _artifact_name(name: str) -> str:
    """A manifest names files of its own version, from a fixed set: a path
    (``../../secret.txt``) would be read from, and copied to, outside the version."""
    if name not in ARTIFACTS:
        raise ValueError(
            f"{name!r} is not a linreg-ops artifact (expected one of {', '.join(ARTIFACTS)})"
        )
    return name


ArtifactName = Annotated[str, AfterValidator(_artifact_name)]


class ArtifactEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0, le=ARTIFACT_MAX_BYTES)


class Manifest(Versioned):
    """What one version holds and where it came from. Extra sections (training data,
    split, versions, known answers) are the pipeline's; the store checks the artifacts."""

    version: int = Field(ge=1)
    parent: int | None = Field(default=None, ge=1)
    created_utc: str
    command: str
    artifacts: dict[ArtifactName, ArtifactEntry]
    training_data: dict[str, Any]
    split: dict[str, Any]
    versions: dict[str, str | None]
    known_answers: dict[str, Any]


@dataclass(frozen=True)
class Version:
    """One published (or staged) version: read every artifact of a run from here."""

    models_dir: Path
    number: int
    path: Path
    manifest: Manifest

    def has(self, name: str) -> bool:
        return name in self.manifest.artifacts

    def sha256(self, name: str) -> str:
        return self.manifest.artifacts[name].sha256

    def size(self, name: str) -> int:
        return self.manifest.artifacts[name].bytes

    def __str__(self) -> str:
        return f"version {self.number} of {self.models_dir}"


# --------------------------------------------------------------------------- reading


def open_version(models_dir: Path, number: int | None = None) -> Version:
    """The current version (resolved once), or version ``number``."""
    models_dir = Path(models_dir)
    if number is None:
        path = _resolve_current(models_dir)
        expected = int(path.name) if path.parent.name == VERSIONS else None
    else:
        path = _version_dir(models_dir, number)
        expected = number
    manifest = _read_manifest(path)
    if expected is not None and manifest.version != expected:
        raise ArtifactError(
            f"{path / MANIFEST_JSON} says version {manifest.version}, not {expected}"
        )
    return Version(models_dir, manifest.version, path, manifest)


def _version_dir(models_dir: Path, number: int) -> Path:
    """``versions/<number>``; or ``current`` when it is a copied folder holding that version
    (a CI artifact or an image copies the link's target, not always ``versions/``)."""
    _check_versions_folder(models_dir)
    path = models_dir / VERSIONS / str(number)
    if _is_real_dir(path):
        return path
    current = models_dir / CURRENT
    if _is_real_dir(current):
        with contextlib.suppress(ArtifactError):
            if _read_manifest(current).version == number:
                return current
    raise ArtifactError(f"{models_dir} has no version {number}")


def _check_versions_folder(models_dir: Path) -> None:
    """``versions/`` must be a real folder: through a symlink, a version could be replaced
    (or published) somewhere outside the models folder."""
    folder = models_dir / VERSIONS
    if folder.is_symlink() or (folder.exists() and not _is_real_dir(folder)):
        raise ArtifactError(f"{folder} is not a folder (a symbolic link?): refusing to use it")


def _resolve_current(models_dir: Path) -> Path:
    current = models_dir / CURRENT
    try:
        target = os.readlink(current)
    except FileNotFoundError:
        if (models_dir / MANIFEST_JSON).is_file() and not (models_dir / MANIFEST_JSON).is_symlink():
            raise ArtifactError(
                f"{models_dir} holds models in the flat layout of linreg-ops 0.1: "
                "retrain (linreg-ops train) to write a version in the new layout"
            ) from None
        raise ArtifactError(
            f"no model in {models_dir}: train one first (linreg-ops train)"
        ) from None
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a symlink
            raise ArtifactError(f"cannot read {current}: {exc.strerror or exc}") from None
        if _is_real_dir(current):
            return current  # a copy that followed the symlink (an uploaded CI artifact)
        raise ArtifactError(f"{current} is neither a link to a version nor a folder") from None
    if not _VERSION_LINK.fullmatch(target):
        raise ArtifactError(f"{current} points to {target!r}, not to a version in {VERSIONS}/")
    _check_versions_folder(models_dir)
    path = models_dir / target
    if not _is_real_dir(path):
        raise ArtifactError(f"{current} points to {target}, which is missing")
    return path


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_manifest(version_dir: Path) -> Manifest:
    data = read_regular_file(version_dir / MANIFEST_JSON, MANIFEST_MAX_BYTES)
    return decode(Manifest, data, str(version_dir / MANIFEST_JSON))


def read_regular_file(path: Path, max_bytes: int, expected_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (not a symlink, FIFO or device), at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"{path} is a symbolic link; only regular files are read") from None
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{path} is not a regular file")
        limit = max_bytes if expected_bytes is None else min(max_bytes, expected_bytes)
        if info.st_size > limit:
            raise ArtifactError(
                f"{path} has {info.st_size:,} bytes, more than expected ({limit:,})"
            )
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ArtifactError(f"{path} grew beyond {limit:,} bytes while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_artifact(version: Version, name: str) -> bytes:
    """An artifact's bytes, refused unless they match the manifest's size and SHA-256."""
    entry = version.manifest.artifacts.get(name)
    if entry is None:
        hint = "linreg-ops quantize" if "quant" in name or "integer" in name else "linreg-ops train"
        raise ArtifactError(f"{name} is not part of {version}: run {hint}")
    path = version.path / name
    data = read_regular_file(path, ARTIFACT_MAX_BYTES, entry.bytes)
    if len(data) != entry.bytes:
        raise ArtifactError(f"{path} has {len(data):,} bytes, the manifest says {entry.bytes:,}")
    actual = sha256_bytes(data)
    if actual != entry.sha256:
        raise ArtifactError(
            f"{path} does not match its SHA-256 in {MANIFEST_JSON} "
            f"(expected {entry.sha256[:12]}…, found {actual[:12]}…): "
            "it was modified after it was written; retrain or restore it"
        )
    return data


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Holder:
    """Who holds the writer lock (written into the lock file for the next writer to read)."""

    pid: int
    command: str
    since: str


@contextlib.contextmanager
def writer(
    models_dir: Path, command: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Iterator["Writer"]:
    """Hold the models folder's writer lock (waiting up to ``lock_timeout`` seconds)."""
    models_dir = Path(models_dir)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(models_dir / LOCK, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link would lock (and truncate) some other file
            raise ArtifactError(f"{models_dir / LOCK} is a symbolic link: remove it") from None
        raise InputError(f"cannot write to {models_dir}: {exc.strerror or exc}") from None
    locked = False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            # a hard link would have the holder's name written into (and erased from) a
            # file outside the folder
            raise ArtifactError(
                f"{models_dir / LOCK} is not a regular file of its own (a link?): remove it"
            )
        _acquire(fd, models_dir, lock_timeout)
        locked = True
        _check_versions_folder(models_dir)
        if _is_real_dir(models_dir / CURRENT):
            raise ArtifactError(
                f"{models_dir / CURRENT} is a copied folder, not a link to a version: this "
                "models folder can be read but not written; train into a new one"
            )
        holder = Holder(os.getpid(), command, _now_utc())
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)
            _remove_stale(models_dir)
        except OSError as exc:  # a full disk, a quota: nothing was published yet
            raise InputError(f"cannot write to {models_dir}: {exc.strerror or exc}") from None
        _repair_seed_paths(models_dir)
        yield Writer(models_dir, command)
    finally:
        if locked:  # a writer that timed out must not erase the holder's name
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the lock, also when the process is killed


def _acquire(fd: int, models_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreBusyError(_busy_message(fd, models_dir, timeout)) from None
            time.sleep(0.05)


def _busy_message(fd: int, models_dir: Path, timeout: float) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        who = f"PID {int(info['pid'])} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another process"
    return (
        f"{models_dir} is being written by {who}; waited {timeout:g} s: "
        "try again when it is done, or raise --lock-timeout"
    )


def _remove_stale(models_dir: Path) -> None:
    """What a killed writer left: staging folders and half-made links. Safe: we hold the lock."""
    staging = models_dir / STAGING
    if _is_real_dir(staging):
        for entry in staging.iterdir():
            _remove_tree(entry)
    elif staging.exists() or staging.is_symlink():
        _remove_tree(staging)  # a link is removed, never followed: its target is not ours
    for entry in [*models_dir.glob(".link-*"), *models_dir.glob(f"{ALIASES}/.link-*")]:
        if entry.is_symlink():  # ours are links; anything else so named is left alone
            entry.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    def writable(function: Callable[..., Any], name: str, _: Any) -> None:
        os.chmod(os.path.dirname(name), 0o755)
        function(name)

    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, onerror=writable)


@dataclass(frozen=True)
class Writer:
    """What the lock holder may do: read the current version and publish a new one."""

    models_dir: Path
    command: str

    def current(self) -> Version:
        """The current version as this writer sees it (under the lock: it cannot change)."""
        return open_version(self.models_dir)

    def publish(
        self,
        files: Mapping[str, bytes],
        sections: Mapping[str, Any],
        *,
        parent: Version | None = None,
        carry: tuple[str, ...] = (),
        verify: Callable[[Version], None] | None = None,
    ) -> Version:
        """Write a new version whole, verify it, then make it current in one rename.

        ``carry`` names artifacts of ``parent`` that the new version shares (hard links: the
        bytes are the same, so is the SHA). ``sections`` are the manifest's other fields.
        """
        number = self._next_number()
        staging = self.models_dir / STAGING / f"{number}-{os.getpid()}"
        final = self.models_dir / VERSIONS / str(number)
        current = self.models_dir / CURRENT
        undo: Callable[[], None] | None = None
        try:
            staged = self._stage(staging, number, files, sections, parent, carry)
            if verify is not None:
                verify(staged)
            _fsync_dir(staging)
            _mkdir(final.parent)
            _rename(staging, final)
            _fsync_dir(final.parent)
            undo = _log_move(self, CURRENT, number, "publish")
            _point(current, f"{VERSIONS}/{number}")  # the one switch: raises only if not made
        except BaseException:
            # Nothing is published until ``current`` names the new version: whatever failed
            # (a full disk, a quota, a refusal), leave no trace of it.
            if not _names(current, number):
                if undo is not None:
                    undo()
                _discard(staging)
                _discard(final)
            raise
        # Published. What follows only mirrors it, so no failure here may say otherwise:
        # a seed path that cannot be updated now is repaired by the next writer.
        _seed_paths(self.models_dir, staged.manifest)
        return Version(self.models_dir, number, final, staged.manifest)

    def move_alias(self, name: str, number: int, action: str) -> "Move":
        """Point alias ``name`` at version ``number`` in one rename, logged first: a kill at
        any instant leaves the old holder or the new one (and the log says which)."""
        name = check_alias_name(name)
        previous = alias_holder(self.models_dir, name)
        if previous == number:
            raise InputError(f"alias {name!r} already names version {number}")
        open_version(self.models_dir, number)  # it exists and its manifest reads
        link = _alias_link(self.models_dir, name)
        folder = self.models_dir / ALIASES
        if name != CURRENT and (
            folder.is_symlink() or (folder.exists() and not _is_real_dir(folder))
        ):
            # through a link, the alias would be written (and later read) outside the folder
            raise ArtifactError(f"{folder} is not a folder (a symbolic link?): refusing to use it")
        _mkdir(link.parent)
        undo = _log_move(self, name, number, action)
        try:
            _point(link, _alias_target(name, number))
        except BaseException:
            if not _names_target(link, _alias_target(name, number)):
                undo()
            raise
        if name == CURRENT:  # the seed's paths follow, as after a publication
            _seed_paths(self.models_dir, open_version(self.models_dir).manifest)
        return moves(self.models_dir, name)[-1]

    def remove_version(self, number: int) -> bool:
        """Remove ``versions/<number>`` unless an alias names it or a serving process leases
        it (checked again after it was renamed away, so a lease taken meanwhile wins).
        The folder leaves ``versions/`` in one rename; a kill while its files are removed
        leaves it in ``.staging/``, which the next writer empties."""
        if number in aliases(self.models_dir).values() or number in leased_versions(
            self.models_dir
        ):
            return False
        source = self.models_dir / VERSIONS / str(number)
        if not _is_real_dir(source):
            return False
        trash = self.models_dir / STAGING / f"gc-{number}-{os.getpid()}"
        _mkdir(trash.parent)
        _rename(source, trash)
        if number in leased_versions(self.models_dir):
            _rename(trash, source)  # a server opened it while it was being removed
            return False
        _discard(trash)
        return True

    def _stage(
        self,
        staging: Path,
        number: int,
        files: Mapping[str, bytes],
        sections: Mapping[str, Any],
        parent: Version | None,
        carry: tuple[str, ...],
    ) -> Version:
        """The new version written whole into ``staging`` and read back against its manifest."""
        _mkdir(staging)
        entries: dict[str, dict[str, Any]] = {}
        for name in carry:
            if parent is None or not parent.has(name):
                continue
            _link_or_copy(parent.path / name, staging / name)
            entries[name] = parent.manifest.artifacts[name].model_dump()
        for name, data in files.items():
            _write_file(staging / name, data)
            entries[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "version": number,
            "parent": parent.number if parent else None,
            "created_utc": _now_utc(),
            "command": self.command,
            "artifacts": dict(sorted(entries.items())),
            **sections,
        }
        _write_file(
            staging / MANIFEST_JSON,
            (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
        )
        staged = Version(self.models_dir, number, staging, _read_manifest(staging))
        for name in staged.manifest.artifacts:
            read_artifact(staged, name)  # what was written is what the manifest says
        return staged

    def _next_number(self) -> int:
        folder = self.models_dir / VERSIONS
        numbers = [0]
        if folder.is_dir():
            numbers += [
                int(entry.name)
                for entry in folder.iterdir()
                if _VERSION_LINK.fullmatch(f"{VERSIONS}/{entry.name}")
            ]
        if max(numbers) >= MAX_VERSION:
            raise ArtifactError(f"{folder} already holds version {max(numbers)}, the last one")
        return max(numbers) + 1


# --------------------------------------------------------------------------- aliases


@dataclass(frozen=True)
class Move:
    """One line of ``history.jsonl``: alias ``alias`` moved from ``previous`` to ``version``."""

    time_utc: str
    user: str
    pid: int
    alias: str
    action: str  # publish, promote or rollback
    version: int
    previous: int | None
    command: str


def check_alias_name(name: str) -> str:
    """An alias is a plain name (``champion``, ``current``): it becomes a file name."""
    if not _ALIAS_NAME.fullmatch(name):
        raise InputError(
            f"alias {name!r} is not a name: use lower-case letters, digits, - and _ "
            "(starting with a letter, at most 63)"
        )
    return name


def _alias_link(models_dir: Path, name: str) -> Path:
    return models_dir / (CURRENT if name == CURRENT else f"{ALIASES}/{name}")


def _alias_target(name: str, number: int) -> str:
    return f"{VERSIONS}/{number}" if name == CURRENT else f"../{VERSIONS}/{number}"


def alias_holder(models_dir: Path, name: str) -> int | None:
    """The version alias ``name`` names (None if it names none)."""
    models_dir = Path(models_dir)
    link = _alias_link(models_dir, check_alias_name(name))
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError:
        if name == CURRENT and _is_real_dir(link):  # a copied folder (an image, a CI artifact)
            return open_version(models_dir).number
        raise ArtifactError(f"{link} is not a link to a version") from None
    prefix = "" if name == CURRENT else "../"
    if not target.startswith(prefix) or not _VERSION_LINK.fullmatch(target[len(prefix) :]):
        raise ArtifactError(f"{link} points to {target!r}, not to a version in {VERSIONS}/")
    return int(target.rsplit("/", 1)[1])


def aliases(models_dir: Path) -> dict[str, int]:
    """Every alias and the version it names, ``current`` first."""
    models_dir = Path(models_dir)
    found: dict[str, int] = {}
    folder = models_dir / ALIASES
    names = sorted(p.name for p in folder.iterdir()) if _is_real_dir(folder) else []
    for name in [CURRENT, *names]:
        if name != CURRENT and not _ALIAS_NAME.fullmatch(name):
            continue  # a temporary link of a move in progress
        holder = alias_holder(models_dir, name)
        if holder is not None:
            found[name] = holder
    return found


def version_numbers(models_dir: Path) -> list[int]:
    """Every folder in ``versions/``, oldest first."""
    folder = Path(models_dir) / VERSIONS
    _check_versions_folder(Path(models_dir))
    if not _is_real_dir(folder):
        return []
    return sorted(
        int(entry.name)
        for entry in folder.iterdir()
        if _VERSION_LINK.fullmatch(f"{VERSIONS}/{entry.name}") and _is_real_dir(entry)
    )


def _log_move(held: "Writer", name: str, number: int, action: str) -> Callable[[], None]:
    """Append the move to ``history.jsonl`` and flush it; returns what takes it back."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    entry = Move(
        _now_utc(), user, os.getpid(), name, action, number,
        alias_holder(held.models_dir, name), held.command,
    )  # fmt: skip
    path = held.models_dir / HISTORY_JSONL
    existed = os.path.lexists(path)
    try:
        fd = os.open(
            path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise ArtifactError(f"{path} is not a regular file of its own (a link?): remove it")
        size = info.st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a writer killed mid-line
        line = ("\n" if torn else "") + json.dumps(entry.__dict__, sort_keys=True) + "\n"
        view = memoryview(line.encode())
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        os.close(fd)
        if not existed:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)

    def undo() -> None:
        with contextlib.suppress(OSError):
            if existed:
                os.truncate(path, size)
            else:
                os.unlink(path)

    return undo


def moves(models_dir: Path, name: str | None = None) -> list[Move]:
    """The logged moves that happened (of alias ``name``, or of every alias), oldest first.
    A move is logged before its switch: an entry whose switch never came (a kill, a full
    disk) is left out — the next move of that alias records the holder it really found."""
    models_dir = Path(models_dir)
    path = models_dir / HISTORY_JSONL
    if not os.path.lexists(path):
        return []
    text = read_regular_file(path, ARTIFACT_MAX_BYTES).decode("utf-8", errors="replace")
    logged: list[Move] = []
    for line in text.splitlines():
        try:
            logged.append(Move(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line torn by a kill
    by_alias: dict[str, list[int]] = {}
    for index, move in enumerate(logged):
        by_alias.setdefault(move.alias, []).append(index)
    happened: set[int] = set()
    for alias, indices in by_alias.items():
        holder = alias_holder(models_dir, alias) if _ALIAS_NAME.fullmatch(alias) else None
        for here, after in zip(indices, [*indices[1:], None], strict=True):
            seen = holder if after is None else logged[after].previous
            if seen == logged[here].version:
                happened.add(here)
    return [m for i, m in enumerate(logged) if i in happened and name in (None, m.alias)]


# --------------------------------------------------------------------------- leases


@dataclass
class Lease:
    """A serving process's claim on a version: a file it holds flock()ed while it serves
    from that version. The kernel drops the lock when the process dies, however it dies,
    so a crashed server leaves a file ``gc`` recognises as stale and removes."""

    models_dir: Path
    number: int
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = -1


def take_lease(models_dir: Path, number: int) -> Lease:
    """Claim version ``number`` for this process (raises InputError where the folder cannot
    be written: a read-only image — there, nothing runs ``gc`` either). Take the lease,
    then open the version: ``gc`` re-checks leases after moving a version away. The file is
    locked and written under a temporary name first, so every ``*.lease`` is whole."""
    models_dir = Path(models_dir)
    folder = models_dir / LEASES
    path = folder / f"{os.getpid()}-{time.monotonic_ns()}.lease"
    temporary = path.with_name(path.name + ".tmp")
    fd = -1
    try:
        folder.mkdir(exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        claim = {"version": number, "pid": os.getpid(), "since": _now_utc()}
        os.write(fd, json.dumps(claim).encode())
        os.rename(temporary, path)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise InputError(
            f"cannot lease version {number} in {folder}: {exc.strerror or exc}"
        ) from None
    return Lease(models_dir, number, path, fd)


def leased_versions(models_dir: Path) -> set[int]:
    """Versions some live process has leased; a lease whose holder died (its lock free) is
    stale and removed (the caller holds the writer lock)."""
    folder = Path(models_dir) / LEASES
    if not _is_real_dir(folder):
        return set()
    leased: set[int] = set()
    for path in [*folder.glob("*.lease"), *folder.glob("*.lease.tmp")]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # released meanwhile, or not ours to read
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a live server (a .tmp one is not yet whole)
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    leased.add(int(json.loads(os.pread(fd, 4096, 0))["version"]))
                continue
            with contextlib.suppress(OSError):
                path.unlink()  # stale: its holder is gone
        finally:
            os.close(fd)
    return leased


# --------------------------------------------------------------------------- file operations


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write to {path}: {exc.strerror or exc}") from None


def _write_file(path: Path, data: bytes) -> None:
    """A new read-only file, flushed to disk before anything refers to it."""
    try:
        _create(path, data, os.O_EXCL, 0o444)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _create(path: Path, data: bytes, flags: int, mode: int) -> None:
    """Create ``path`` with ``data`` and flush it to disk (raises OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        _write_file(target, read_regular_file(source, ARTIFACT_MAX_BYTES))


def _rename(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        raise InputError(f"cannot publish {target}: {exc.strerror or exc}") from None


def _point(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target`` atomically (a new link renamed over the old).
    Raises only when ``link`` was left as it was: once renamed, the link is in place."""
    if _names_target(link, target):
        return
    temporary = link.parent / f".link-{link.name}-{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise InputError(f"cannot update {link}: {exc.strerror or exc}") from None
    with contextlib.suppress(InputError):  # durability only: the link is already in place
        _fsync_dir(link.parent)


def _names_target(link: Path, target: str) -> bool:
    try:
        return os.readlink(link) == target
    except OSError:
        return False


def _names(current: Path, number: int) -> bool:
    """Whether ``current`` names version ``number`` (i.e. it is published)."""
    return _names_target(current, f"{VERSIONS}/{number}")


def _discard(path: Path) -> None:
    """Remove what an unpublished version left, as far as possible (the next writer removes
    a staging folder this could not)."""
    with contextlib.suppress(OSError):
        remove_tree(path)


def _seed_paths(models_dir: Path, manifest: Manifest) -> None:
    """``models/<name>`` → ``current/<name>`` for what the current version holds, and no link
    for what it does not (so nothing dangles; a reader of a removed name gets "missing").
    Each is tried, none may fail the caller: the version is already published, and a path
    left behind is repaired by the next writer."""
    for name in SEED_PATHS:
        link = models_dir / name
        with contextlib.suppress(InputError, OSError):
            if name == MANIFEST_JSON or name in manifest.artifacts:
                _point(link, f"{CURRENT}/{name}")
            elif _names_target(link, f"{CURRENT}/{name}"):
                link.unlink()


def _repair_seed_paths(models_dir: Path) -> None:
    """What a writer that published and then met a full disk could not link."""
    with contextlib.suppress(ArtifactError):
        _seed_paths(models_dir, open_version(models_dir).manifest)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write to {path}: {exc.strerror or exc}") from None


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check files can be created in it."""
    folder = Path(folder)
    target, kind = output_target(folder)
    if kind is not None and kind != "a folder":
        raise InputError(f"cannot write to {folder}: it is {kind}, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {folder}: Permission denied")


# What a path can be besides a regular file; only a FIFO and a character device take writes.
_NOT_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
STREAMS = ("a FIFO", "a character device")


def output_target(path: Path) -> tuple[Path, str | None]:
    """Where a write to a user-named ``path`` lands — links followed, so a link is written
    through, never replaced by a file — and what is there: None for a regular file or nothing
    yet, else "a FIFO", "a character device", "a folder", … A file where a folder of the path
    should be is refused here, not met as a traceback halfway through writing."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # the kernel follows links, /proc's magic ones too
    except FileNotFoundError:
        return path.resolve(), None
    except NotADirectoryError:
        target = path.resolve()
        blocker = next(
            (p for p in reversed(target.parents) if os.path.exists(p) and not p.is_dir()),
            target.parent,
        )
        raise InputError(f"cannot write {path}: {blocker} is not a folder") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    kind = next((kind for test, kind in _NOT_FILES if test(mode)), None)
    return (path.resolve() if kind is None else path), kind


@dataclass(frozen=True)
class StagedFile:
    """A whole file under a temporary name beside ``path``, waiting to be renamed over it."""

    temporary: Path
    path: Path


def stage_file(path: Path, data: bytes) -> StagedFile:
    """Write ``data`` beside ``path`` and flush it, taking the space it needs now; ``place_file``
    renames it over ``path``. Only a regular file (or nothing) is ever replaced: a FIFO, a
    device or a folder at ``path`` is refused, never renamed over."""
    target, kind = output_target(path)
    if kind is not None:
        raise InputError(f"cannot write {path}: it is {kind}, not a file")
    temporary = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _create(temporary, data, os.O_TRUNC, 0o644)
    except OSError as exc:
        _discard(temporary)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return StagedFile(temporary, target)


def place_file(staged: StagedFile) -> None:
    """Rename a staged file over its target: readers see the old file or the new one."""
    try:
        os.replace(staged.temporary, staged.path)
    except OSError as exc:
        _discard(staged.temporary)
        raise InputError(f"cannot write {staged.path}: {exc.strerror or exc}") from None


def discard_files(staged: list[StagedFile]) -> None:
    """Remove staged files that will not be placed (what they would have replaced stays)."""
    for item in staged:
        _discard(item.temporary)


def atomic_write(path: Path, data: bytes) -> Path:
    """Write a file outside the models folder (a report, an export) so that readers see the
    old file or the new one, never half: a temporary file in the same folder, renamed."""
    place_file(stage_file(path, data))
    return Path(path)


def check_outside(models_dir: Path, output: Path, flag: str) -> None:
    """Refuse an output path inside the models folder (links followed, as a write would)."""
    root = Path(models_dir).resolve()
    target = Path(output).resolve()
    if target == root or root in target.parents:
        raise InputError(
            f"{flag} {output} is inside the models folder {models_dir}, whose versions are "
            "never written again: write it elsewhere"
        )


def staging_sibling(path: Path) -> Path:
    """A new, unused name beside ``path``, for building a folder that is renamed into place."""
    path = Path(path)
    _mkdir(path.parent)
    return path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.partial"


def rename_into_place(staging: Path, target: Path) -> None:
    """Rename a finished folder to ``target``: rename(2) fails on a file or a non-empty
    folder there, so a folder another writer made meanwhile is refused, never merged."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    with contextlib.suppress(InputError):  # durability only: the folder is in place
        _fsync_dir(target.parent)


def remove_tree(path: Path) -> None:
    """Remove a file or folder that may or may not exist (links removed, never followed)."""
    if path.exists() or path.is_symlink():
        _remove_tree(path)


def copy_current(
    source: Path, target: Path, skip_suffixes: tuple[str, ...] = (".joblib",)
) -> Version:
    """A new models folder at ``target`` holding only ``source``'s current version (each file
    verified on the way), e.g. for a container image: no other version, no pickles."""
    return _copy_version(open_version(Path(source)), Path(target), skip_suffixes)


def import_version(
    folder: Path, target: Path, skip_suffixes: tuple[str, ...] = (".joblib",)
) -> Version:
    """A new models folder at ``target`` holding the loose version in ``folder`` (its
    ``manifest.json`` and the artifacts it names, e.g. downloaded from a model registry):
    each file verified against the manifest on the way, no pickles, then ``current``."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    return _copy_version(
        Version(folder, manifest.version, folder, manifest), Path(target), skip_suffixes
    )


def _copy_version(version: Version, target: Path, skip_suffixes: tuple[str, ...]) -> Version:
    staging = target / STAGING / f"{version.number}-{os.getpid()}"
    _mkdir(staging)
    for name in version.manifest.artifacts:
        if not name.endswith(skip_suffixes):
            _write_file(staging / name, read_artifact(version, name))
    _write_file(
        staging / MANIFEST_JSON, read_regular_file(version.path / MANIFEST_JSON, MANIFEST_MAX_BYTES)
    )
    final = target / VERSIONS / str(version.number)
    _mkdir(final.parent)
    _rename(staging, final)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()
    _point(target / CURRENT, f"{VERSIONS}/{version.number}")
    for name in SEED_PATHS:
        if (final / name).exists():
            _point(target / name, f"{CURRENT}/{name}")
    return open_version(target)


# --------------------------------------------------------------------------- exports


class ExportEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    version: int = Field(ge=1)
    model: str
    format: str
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    artifact: ArtifactName
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_utc: str


class Exports(Versioned):
    """``exports.json``: every export of every version, and the SHA-256 of what it wrote.

    Versions are immutable, so their manifests cannot list what is exported from them later;
    this record, rewritten whole under the writer lock, does.
    """

    exports: list[ExportEntry]


def read_exports(models_dir: Path) -> list[ExportEntry]:
    path = Path(models_dir) / EXPORTS_JSON
    if not path.exists() and not path.is_symlink():
        return []
    return decode(Exports, read_regular_file(path, MANIFEST_MAX_BYTES), str(path)).exports


def record_export(held: "Writer", entry: dict[str, Any]) -> None:
    """Append one export to ``exports.json``, atomically; ``held`` proves the caller holds
    the writer lock (taken before the export was written, so a folder that cannot be
    written to is refused before any output exists)."""
    entries = [e.model_dump() for e in read_exports(held.models_dir)]
    entries.append(ExportEntry(**{**entry, "created_utc": _now_utc()}).model_dump())
    document = {"schema_version": SCHEMA_VERSION, "exports": entries}
    atomic_write(held.models_dir / EXPORTS_JSON, (json.dumps(document, indent=2) + "\n").encode())


# --------------------------------------------------------------------------- provenance


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions(
    names: tuple[str, ...] = ("linreg-ops", "numpy", "scikit-learn", "pyarrow"),
) -> dict[str, str | None]:
    """Python's version and the installed versions of ``names`` (None if not installed)."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), **{name: version(name) for name in names}}
