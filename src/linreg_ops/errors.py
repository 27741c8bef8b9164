"""Exception types that map to the CLI's exit codes and the service's status codes.

Every failure the user can fix (bad data, bad flags, missing, tampered or foreign artifacts,
a busy models folder, a missing optional dependency) is an ``InputError``: the CLI prints
one line and exits 2, the service answers 4xx or refuses to start. A quantized model that
misses its quality limits is a ``QualityGateError`` (exit 3). A move of an alias done in the
models folder but not in the MLflow registry is a ``RegistryOutOfStepError`` (exit 5).
Anything else is a bug.
"""

import difflib
from collections.abc import Iterable

__all__ = [
    "ArtifactError",
    "InputError",
    "MissingExtraError",
    "QualityGateError",
    "RegistryOutOfStepError",
    "StoreBusyError",
    "did_you_mean",
]


class InputError(ValueError):
    """Input the user can correct: bad data, bad options, missing artifacts. Exit code 2."""


class ArtifactError(InputError):
    """An artifact is missing, unreadable, malformed, or does not match its manifest."""


class StoreBusyError(InputError):
    """Another process holds the models folder's writer lock beyond ``--lock-timeout``."""


class MissingExtraError(InputError):
    """An optional dependency is not installed; the message names the command that adds it."""


class QualityGateError(Exception):
    """A quantized model misses ``--max-r2-drop`` or ``--max-abs-diff``. Exit code 3."""


class RegistryOutOfStepError(Exception):
    """The models folder's alias moved, then the registry's could not be: the two disagree
    until the move is repeated. Exit code 5 (neither success nor "nothing changed")."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'price'?"`` for the closest of ``choices`` to a mistyped ``word``
    (a command, a flag, a column), or nothing when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
