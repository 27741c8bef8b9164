"""Seed-compatible `python src/train.py`: a shim over `linreg-ops train`."""

import sys

from linreg_ops.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
