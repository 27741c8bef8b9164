"""Seed-compatible `python src/train.py`: a shim over `linreg-ops train`."""

import sys

try:
    from linreg_ops.seed import run_script
except ImportError as missing:  # run outside the virtualenv that `make run` set up
    sys.exit(
        f"python src/train.py: {missing.name} is not installed for {sys.executable}. "
        "Run `make run` once, then `source .venv/bin/activate` (or use .venv/bin/python)."
    )

sys.exit(run_script("train", __file__, sys.argv[1:]))
