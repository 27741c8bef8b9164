"""Constants and small helpers shared by the test suites (importable: tests/ is on pythonpath)."""

from pathlib import Path

import numpy as np

# The seed's reference run (../shared/reference/mission-seed.txt).
SEED_R2 = 0.5758
SEED_MSE = 0.5559
SEED_INTERCEPT = -37.023277706064
SEED_COEF = np.array(
    [
        4.48674910e-01,
        9.72425752e-03,
        -1.23323343e-01,
        7.83144907e-01,
        -2.02962058e-06,
        -3.52631849e-03,
        -4.19792487e-01,
        -4.33708065e-01,
    ]
)
SEED_FIRST_PREDICTIONS = np.array(
    [0.71912284, 1.76401657, 2.70965883, 2.83892593, 2.60465725,
     2.01175367, 2.64550005, 2.16875532, 2.74074644, 3.91561473]
)  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, to prove a failed command changed nothing."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
