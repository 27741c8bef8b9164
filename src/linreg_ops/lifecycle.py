"""What happens to versions after they are published: list, compare, promote, roll back, gc.

Every version is immutable; an alias (``current``, ``champion``, any name) is a link the store
moves atomically and logs. Here is the policy on top: the promotion gate (a version may not
take an alias from a holder it predicts worse than, on the holder's own test rows), rollback
(the holder before the last move that is not yet undone) and what ``gc`` may remove (neither
an alias's holder nor a version a serving process has leased). With an MLflow tracking URI,
``promote`` and ``rollback`` move the registry's alias too: everything that can refuse is
asked before the folder's alias moves, and a registry that fails after it is said so
(``RegistryOutOfStepError``), never reported as success nor as "nothing changed".
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linreg_ops.config import DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_R2_REGRESSION
from linreg_ops.errors import ArtifactError, InputError, QualityGateError, RegistryOutOfStepError
from linreg_ops.inference import loading
from linreg_ops.metrics import r2_score
from linreg_ops.storage import store
from linreg_ops.storage.store import Move

_REGISTRY_MOVE_SECONDS = 30  # seconds the registry may take to move an alias (asked once)

__all__ = [
    "GcResult",
    "PromoteResult",
    "RegistryMove",
    "VersionInfo",
    "describe",
    "gc",
    "history",
    "list_versions",
    "promote",
    "promote_registered",
    "resolve",
    "rollback",
    "rollback_registered",
    "rollback_target",
]


@dataclass(frozen=True)
class VersionInfo:
    """One version as ``versions`` and ``show`` tell it (figures from its verified files)."""

    number: int
    created_utc: str
    command: str
    data_source: str
    data_sha256: str
    engine: str | None
    r2: dict[str, float]  # by model kind: float, quantized, integer
    delta_r2: dict[str, float]  # quantized and integer, against float
    aliases: list[str]
    current: bool
    published: bool  # False: left in versions/ by a writer killed before its switch
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    coefficients: dict[str, float] = field(default_factory=dict)
    intercept: float | None = None

    def summary(self) -> dict[str, Any]:
        """What ``versions --json`` prints for it (``show --json`` prints every field)."""
        keys = (
            "number", "created_utc", "data_source", "data_sha256", "engine", "r2", "delta_r2",
            "aliases", "current", "published",
        )  # fmt: skip
        return {("version" if k == "number" else k): getattr(self, k) for k in keys}


@dataclass(frozen=True)
class PromoteResult:
    move: Move
    rows: int  # the holder's test rows the gate scored (0: no holder, no gate)
    holder_r2: float | None
    candidate_r2: float | None
    forced: bool


@dataclass(frozen=True)
class RegistryMove:
    """The registry's side of a move: ``name@alias`` now names registered ``version``."""

    tracking_uri: str
    name: str
    alias: str
    version: int
    previous: int | None  # the registered version that held it before (None: nothing)


@dataclass(frozen=True)
class GcResult:
    removed: list[int]
    kept: dict[int, str]  # version → why it stays


def resolve(models_dir: Path, version: int | None, alias: str | None) -> int | None:
    """``--version N`` or ``--alias NAME`` as a version number (None: the current one)."""
    if version is not None and alias is not None:
        raise InputError("--version and --alias name the same thing: give one")
    if alias is None:
        return version
    holder = store.alias_holder(Path(models_dir), alias)
    if holder is None:
        raise InputError(f"{models_dir} has no alias {alias!r}")
    return holder


def _published(models_dir: Path, numbers: list[int], named: dict[str, int]) -> set[int]:
    """Versions that were ever published: named by an alias or by a logged move; older than
    the log (a folder from before it existed); else orphans of a killed writer."""
    logged = store.moves(models_dir)
    seen = {m.version for m in logged} | {m.previous for m in logged if m.previous is not None}
    seen |= set(named.values())
    oldest_logged = min(seen) if logged else max(named.values(), default=0) + 1
    return {n for n in numbers if n in seen or n < oldest_logged}


def list_versions(models_dir: Path) -> list[VersionInfo]:
    """Every version in the folder, oldest first."""
    models_dir = Path(models_dir)
    numbers = store.version_numbers(models_dir)
    if not numbers:
        store.open_version(models_dir)  # "no model in …: train one first", or a copy's only one
        numbers = [store.alias_holder(models_dir, store.CURRENT) or 0]
    named = store.aliases(models_dir)
    published = _published(models_dir, numbers, named)
    return [_info(models_dir, n, named, n in published) for n in numbers]


def describe(models_dir: Path, number: int) -> VersionInfo:
    """One version in full: parameters, metrics and coefficients, its models verified."""
    models_dir = Path(models_dir)
    named = store.aliases(models_dir)
    numbers = store.version_numbers(models_dir) or [number]
    published = number in _published(models_dir, numbers, named)
    return _info(models_dir, number, named, published, detail=True)


def _info(
    models_dir: Path, number: int, named: dict[str, int], published: bool, detail: bool = False
) -> VersionInfo:
    version = store.open_version(models_dir, number)
    manifest = version.manifest
    metrics = loading.load_metrics(version) or {}
    r2 = {"float": float(metrics["float"]["r2"])} if "float" in metrics else {}
    delta: dict[str, float] = {}
    for kind, section in (("quantized", "quantized"), ("integer", "integer_only")):
        if metrics.get(section):
            r2[kind] = float(metrics[section]["r2"])
            delta[kind] = float(metrics[section]["delta_r2"])
    extra: dict[str, Any] = {}
    if detail:
        models = loading.load_models(version)
        extra["coefficients"] = dict(
            zip(models.float.feature_names, map(float, models.float.coef), strict=True)
        )
        extra["intercept"] = float(models.float.intercept)
        quantization = models.quantization_facts()
        if quantization is not None:
            quantization = {k: v for k, v in quantization.items() if k in _QUANT_PARAMETERS}
        extra["parameters"] = {
            "target": models.float.target_name,
            "split": manifest.split,
            "quantization": quantization,
            "integer_only": (
                {k: metrics["integer_only"].get(k) for k in ("input_dtype", "calibration")}
                if metrics.get("integer_only")
                else None
            ),
            "versions": manifest.versions,
            "parent": manifest.parent,
        }
        extra["metrics"] = {k: v for k, v in metrics.items() if k != "schema_version"}
    return VersionInfo(
        number=number,
        created_utc=manifest.created_utc,
        command=manifest.command,
        data_source=str(manifest.training_data.get("source", "")),
        data_sha256=str(manifest.training_data.get("sha256", "")),
        engine=manifest.split.get("engine"),
        r2=r2,
        delta_r2=delta,
        aliases=sorted(name for name, holder in named.items() if holder == number),
        current=named.get(store.CURRENT) == number,
        published=published,
        **extra,
    )


_QUANT_PARAMETERS = ("dtype", "granularity", "rounding")


def history(models_dir: Path, alias: str) -> list[Move]:
    """The moves of ``alias`` that happened, oldest first."""
    store.check_alias_name(alias)
    found = store.moves(Path(models_dir), alias)
    if not found and store.alias_holder(Path(models_dir), alias) is None:
        raise InputError(f"{models_dir} has no alias {alias!r} and no history of one")
    return found


def rollback_target(models_dir: Path, alias: str) -> int:
    """The version that held ``alias`` before the last move not yet rolled back: replaying
    the log, a publish or promote stacks its version, a rollback takes the top off."""
    stack: list[int] = []
    for move in store.moves(Path(models_dir), alias):
        if move.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != move.version:
                stack.append(move.version)
            continue
        if not stack and move.previous is not None:
            stack.append(move.previous)
        stack.append(move.version)
    holder = store.alias_holder(Path(models_dir), store.check_alias_name(alias))
    if holder is None:
        raise InputError(f"{models_dir} has no alias {alias!r}")
    if not stack or stack[-1] != holder:  # moved by hand (ln -sfn): that is the holder now
        stack.append(holder)
    if len(stack) < 2:
        raise InputError(
            f"alias {alias!r} (version {holder}) has no earlier holder in "
            f"{store.HISTORY_JSONL}: nothing to roll back to"
        )
    return stack[-2]


def promote(
    models_dir: Path,
    number: int,
    alias: str,
    max_r2_regression: float = DEFAULT_MAX_R2_REGRESSION,
    *,
    force: bool = False,
    command: str = "linreg-ops promote",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    then: Callable[[Move], None] | None = None,
) -> PromoteResult:
    """Point ``alias`` at version ``number``, gated: refused (QualityGateError, nothing
    changed) if its float R² on the holder's test rows is worse than the holder's by more
    than ``max_r2_regression``, unless ``force``. Both versions are loaded and verified.
    ``then`` is called with the move while the writer lock is still held (the registry's
    alias moves in the same order as the folder's)."""
    models_dir = Path(models_dir)
    store.check_alias_name(alias)
    store.open_version(models_dir, number)  # "no version N" before a lock file is made
    with store.writer(models_dir, command, lock_timeout) as writer:
        holder = store.alias_holder(models_dir, alias)
        if holder == number:
            raise InputError(f"alias {alias!r} already names version {number}")
        candidate = loading.load(models_dir, number)
        rows, held_r2, new_r2 = 0, None, None
        if holder is not None:
            held = loading.load(models_dir, holder)
            if candidate.float.feature_names != held.float.feature_names and not force:
                raise InputError(
                    f"version {number} predicts from {list(candidate.float.feature_names)}, "
                    f"version {holder} (holding {alias!r}) from "
                    f"{list(held.float.feature_names)}: they cannot be compared "
                    "(--force promotes it anyway)"
                )
            if candidate.float.feature_names == held.float.feature_names:
                test = loading.stored_test_rows(held).values
                X, y = test[:, :-1], test[:, -1]
                rows = len(y)
                held_r2 = r2_score(y, held.float.predict(X))
                new_r2 = r2_score(y, candidate.float.predict(X))
                if held_r2 - new_r2 > max_r2_regression and not force:
                    raise QualityGateError(
                        f"version {number} scores R² {new_r2:.6f} on the {rows:,} test rows of "
                        f"version {holder} (holding {alias!r}), which scores {held_r2:.6f}: "
                        f"worse by {held_r2 - new_r2:.6f}, more than --max-r2-regression "
                        f"{max_r2_regression:g}; nothing changed (--force promotes it anyway)"
                    )
        move = writer.move_alias(alias, number, "promote")
        if then is not None:
            then(move)
    return PromoteResult(move, rows, held_r2, new_r2, force)


def rollback(
    models_dir: Path,
    alias: str,
    *,
    command: str = "linreg-ops rollback",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    then: Callable[[Move], None] | None = None,
) -> Move:
    """Give ``alias`` back to the version that held it before (verified first, no gate);
    ``then`` as in ``promote``."""
    models_dir = Path(models_dir)
    rollback_target(models_dir, alias)  # exit 2 before a lock file is made
    with store.writer(models_dir, command, lock_timeout) as writer:
        target = rollback_target(models_dir, alias)
        try:
            loading.load(models_dir, target)
        except ArtifactError as exc:
            raise InputError(f"cannot roll {alias!r} back to version {target}: {exc}") from None
        move = writer.move_alias(alias, target, "rollback")
        if then is not None:
            then(move)
        return move


def gc(
    models_dir: Path,
    keep: int,
    *,
    command: str = "linreg-ops gc",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> GcResult:
    """Remove all but the newest ``keep`` published versions, and every orphan; never a
    version an alias names or a serving process has leased."""
    if keep < 1:
        raise InputError(f"--keep must be at least 1, got {keep}")
    models_dir = Path(models_dir)
    store.open_version(models_dir)
    with store.writer(models_dir, command, lock_timeout) as writer:
        numbers = store.version_numbers(models_dir)
        named = store.aliases(models_dir)
        published = _published(models_dir, numbers, named)
        newest = set(sorted(published)[-keep:])
        leased = store.leased_versions(models_dir)
        kept: dict[int, str] = {}
        removed: list[int] = []
        for number in numbers:
            names = [name for name, holder in named.items() if holder == number]
            if names:
                kept[number] = "alias " + ", ".join(names)
            elif number in leased:
                kept[number] = "leased by a serving process"
            elif number in newest:
                kept[number] = f"one of the newest {keep}"
            elif writer.remove_version(number):
                removed.append(number)
            else:
                kept[number] = "leased by a serving process"
    return GcResult(removed, kept)


def _registered(tracking_uri: str, name: str, models_dir: Path, number: int) -> int:
    """The registered version of ``name`` that holds version ``number`` of ``models_dir``."""
    from linreg_ops.exports import tracking

    return tracking.registered_version_of(
        tracking_uri, name, store.open_version(models_dir, number)
    )


def _check_registry(tracking_uri: str, name: str, alias: str) -> None:
    """Before anything moves: the server answers, the model's name and the alias are ones
    the registry takes."""
    from linreg_ops.exports import tracking

    store.check_alias_name(alias)
    tracking.check_tracking_server(tracking_uri, name)
    tracking.check_registry_alias(tracking_uri, alias)


def _move_registry(
    tracking_uri: str, name: str, alias: str, models_dir: Path, number: int, undone: str
) -> RegistryMove:
    """Point ``name@alias`` at version ``number``'s registered version, after the folder's
    alias has moved (its writer lock still held): asked once, no back-off — a failure now is
    a ``RegistryOutOfStepError`` saying what did move."""
    from linreg_ops.exports import tracking
    from linreg_ops.exports.mlflow import quiet_mlflow

    try:
        with quiet_mlflow(
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT=str(_REGISTRY_MOVE_SECONDS),
        ):
            registered = _registered(tracking_uri, name, models_dir, number)
            previous = tracking.set_registry_alias(tracking_uri, name, alias, registered)
    except InputError as exc:
        raise RegistryOutOfStepError(
            f"{alias!r} names version {number} in {models_dir}, but the registry alias "
            f"{name}@{alias} was not moved ({exc}); {undone}"
        ) from None
    except KeyboardInterrupt:  # Ctrl-C after the folder moved: out of step all the same
        raise RegistryOutOfStepError(
            f"{alias!r} names version {number} in {models_dir}, but the registry alias "
            f"{name}@{alias} may not have moved (interrupted); {undone}"
        ) from None
    return RegistryMove(tracking_uri, name, alias, registered, previous)


def promote_registered(
    models_dir: Path,
    number: int,
    alias: str,
    tracking_uri: str,
    registered_model: str,
    max_r2_regression: float = DEFAULT_MAX_R2_REGRESSION,
    *,
    force: bool = False,
    command: str = "linreg-ops promote",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> tuple[PromoteResult | None, RegistryMove]:
    """``promote``, then the registry alias ``registered_model@alias`` to the registered
    version of version ``number``, under the folder's writer lock (two promotes land in the
    same order in both). The server, the names and that registered version are checked
    first (InputError, nothing changed); the gate then applies as in ``promote``. When the
    folder's alias names ``number`` already (a registry that failed last time), only the
    registry's moves (the result's first member is None)."""
    models_dir = Path(models_dir)
    store.open_version(models_dir, number)  # "no version N" before the server is asked
    _check_registry(tracking_uri, registered_model, alias)
    _registered(tracking_uri, registered_model, models_dir, number)
    again = f"run the same promote again to move it (the folder's alias stays on {number})"
    moved: list[RegistryMove] = []

    def move_registry(move: Move | None = None) -> None:
        moved.append(
            _move_registry(tracking_uri, registered_model, alias, models_dir, number, again)
        )

    with store.writer(models_dir, command, lock_timeout):
        if store.alias_holder(models_dir, alias) == number:
            move_registry()
            return None, moved[0]
    result = promote(
        models_dir, number, alias, max_r2_regression, force=force, command=command,
        lock_timeout=lock_timeout, then=move_registry,
    )  # fmt: skip
    return result, moved[0]


def rollback_registered(
    models_dir: Path,
    alias: str,
    tracking_uri: str,
    registered_model: str,
    *,
    command: str = "linreg-ops rollback",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> tuple[Move, RegistryMove]:
    """``rollback``, then the registry alias to the registered version of the version
    rolled back to, under the folder's writer lock; the server and that registered version
    are checked first."""
    models_dir = Path(models_dir)
    target = rollback_target(models_dir, alias)  # exit 2 before the server is asked
    _check_registry(tracking_uri, registered_model, alias)
    _registered(tracking_uri, registered_model, models_dir, target)
    moved: list[RegistryMove] = []

    def move_registry(move: Move) -> None:
        again = (
            f"linreg-ops promote {move.version} --alias {alias} with the same --tracking-uri "
            "moves it (a second rollback would go further back)"
        )
        moved.append(
            _move_registry(tracking_uri, registered_model, alias, models_dir, move.version, again)
        )

    move = rollback(models_dir, alias, command=command, lock_timeout=lock_timeout,
                    then=move_registry)  # fmt: skip
    return move, moved[0]
