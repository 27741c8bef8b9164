"""Seed-compatible `python src/quantize.py`: a shim over `linreg-ops quantize`."""

import sys

from linreg_ops.cli import main

sys.exit(main(["quantize", *sys.argv[1:]]))
