"""Exception types that map to the CLI's exit codes.

Every failure the user can fix (bad data, bad flags, missing or tampered artifacts) is an
``InputError`` so the CLI can print one clear line and exit 2 instead of a traceback.
"""


class InputError(ValueError):
    """Input the user can correct: bad data, bad options, missing artifacts. Exit code 2."""


class ArtifactError(InputError):
    """An artifact is missing, unreadable, or does not match the SHA-256 in the manifest."""
