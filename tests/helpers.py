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


def fit_model(X, y, names=None):
    """A LinearModel fitted the project's way on in-memory arrays (no files)."""
    from linreg_ops.data import Dataset
    from linreg_ops.train import fit_linear_regression, to_linear_model

    X = np.asarray(X, dtype=np.float64)
    names = tuple(names or (f"x{i}" for i in range(X.shape[1])))
    dataset = Dataset(X, np.asarray(y, dtype=np.float64), names, "y", "memory", "0" * 64)
    return to_linear_model(fit_linear_regression(X, y), dataset, X)


def model_with(coef, intercept, X):
    """A LinearModel with given coefficients and the statistics of ``X`` (for edge cases)."""
    from dataclasses import replace

    model = fit_model(X, X[:, 0] + np.arange(len(X)) % 3)
    return replace(model, coef=np.asarray(coef, dtype=np.float64), intercept=float(intercept))


def collinear_data(seed: int, n: int = 4000, k: int = 10):
    """k near-copies of one signal with large alternating coefficients that cancel."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = x[:, None] + 0.01 * rng.normal(size=(n, k))
    coef = 30.0 * (-1.0) ** np.arange(k) + 0.1
    return X, X @ coef + 0.3 * rng.normal(size=n)


def split_rows(X, y, test_share: float = 0.2):
    """A deterministic head/tail split for synthetic data (rows are already random)."""
    cut = int(len(y) * (1 - test_share))
    return X[:cut], y[:cut], X[cut:], y[cut:]
