"""Seed-compatible `python src/predict.py`: a shim over `linreg-ops predict`."""

import sys

try:
    from linreg_ops.seed import run_script
except ImportError as missing:  # run outside the virtualenv that `make run` set up
    sys.exit(
        f"python src/predict.py: {missing.name} is not installed for {sys.executable}. "
        "Run `make run` once, then `source .venv/bin/activate` (or use .venv/bin/python)."
    )

sys.exit(run_script("predict", __file__, sys.argv[1:]))
