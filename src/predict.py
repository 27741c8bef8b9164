"""Seed-compatible `python src/predict.py`: a shim over `linreg-ops predict`."""

import sys

from linreg_ops.cli import main

sys.exit(main(["predict", *sys.argv[1:]]))
