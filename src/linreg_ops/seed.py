"""The seed's ``python src/train.py`` (and quantize, predict) behind its shims.

A shim runs outside ``make``: it finds the shared California Housing cache the way the
Makefile does (``../shared/datasets/california_housing/scikit_learn_data`` beside the
checkout, unless ``SCIKIT_LEARN_DATA`` is set), then runs the ``linreg-ops`` command.
"""

from collections.abc import Sequence
from pathlib import Path

from linreg_ops.cli import main
from linreg_ops.training.sources import use_shared_cache

__all__ = [
    "run_script",
]


def run_script(command: str, script: str, argv: Sequence[str]) -> int:
    """``linreg-ops <command> <argv>``, with the shared data cache found from ``script``;
    ``train`` writes the seed's joblib files whatever the engine (the seed's scripts read
    them; ``quantize`` writes its own when the version it quantizes has them)."""
    use_shared_cache(Path(script).resolve().parents[1])
    extra = ["--joblib"] if command in ("train", "run") else []
    return main([command, *extra, *argv])
