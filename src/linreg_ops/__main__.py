"""Allow ``python -m linreg_ops``; the CLI does the work."""

import sys

from linreg_ops.cli import main

sys.exit(main())
