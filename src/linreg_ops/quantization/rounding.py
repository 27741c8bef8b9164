"""Choosing integer codes for fixed scales: nearest, Hessian-aware (GPTQ/OBQ) and optimal rounding.

Every method minimises, or approximates the minimum of, the training objective

    f(q) = (w − ŵ)ᵀ H (w − ŵ),   ŵ = scale · (q − zero_point),

where ``H`` is the Gram matrix of the (standardized) training features: ``f`` is exactly how
much the quantized model's predictions move away from the float model's on the training
rows. Nearest rounding ignores ``H``; that is fine for independent features and bad for
correlated ones, whose rounding errors add up instead of cancelling.

All functions are pure numpy on small arrays (d ≤ a few thousand weights).
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "OPTIMAL_MAX_FEATURES",
    "ROUNDERS",
    "SPHERE_NODE_BUDGET",
    "Grid",
    "SphereResult",
    "lll_reduce",
    "objective",
    "round_hessian",
    "round_nearest",
    "round_optimal",
    "sphere_decode",
]

OPTIMAL_MAX_FEATURES = 32
SPHERE_NODE_BUDGET = 2_000_000


@dataclass(frozen=True)
class Grid:
    """Per-weight quantization grid: scale, zero point and the saturating code range."""

    scale: np.ndarray  # (d,) float64, > 0
    zero_point: np.ndarray  # (d,) int64
    qmin: int
    qmax: int

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        dequantized: np.ndarray = self.scale * (codes - self.zero_point).astype(np.float64)
        return dequantized

    def nearest(self, values: np.ndarray) -> np.ndarray:
        codes = np.rint(values / self.scale) + self.zero_point
        clipped: np.ndarray = np.clip(codes, self.qmin, self.qmax).astype(np.int64)
        return clipped

    def only(self, index: int) -> "Grid":
        """The grid of one weight, so a one-element slice is never broadcast over all scales."""
        return Grid(
            self.scale[index : index + 1], self.zero_point[index : index + 1], self.qmin, self.qmax
        )


def objective(weights: np.ndarray, gram: np.ndarray, grid: Grid, codes: np.ndarray) -> float:
    """(w − ŵ)ᵀ H (w − ŵ): the squared prediction drift on the training rows (times n)."""
    error = weights - grid.dequantize(codes)
    return float(error @ gram @ error)


def round_nearest(weights: np.ndarray, gram: np.ndarray, grid: Grid) -> np.ndarray:
    """Round half to even, saturate. ``gram`` is unused; it keeps one signature for all methods."""
    del gram
    return grid.nearest(weights)


def _damped_inverse(gram: np.ndarray) -> np.ndarray:
    """H⁻¹ with GPTQ's 1% diagonal damping, so singular (collinear) H still works."""
    diag = np.diag(gram)
    damp = 0.01 * float(diag.mean()) if diag.size and diag.mean() > 0 else 1.0
    return np.linalg.inv(gram + damp * np.eye(gram.shape[0]))


def _gptq(weights: np.ndarray, gram: np.ndarray, grid: Grid) -> np.ndarray:
    """Round one weight at a time, pushing its error onto the not-yet-rounded ones through H⁻¹.

    Order: largest diagonal of H first (GPTQ's act-order). The update is the Optimal Brain
    Surgeon step, applied with the Cholesky factor of H⁻¹ as GPTQ does.
    """
    d = weights.size
    order = np.argsort(-np.diag(gram), kind="stable")
    hinv = _damped_inverse(gram[np.ix_(order, order)])
    upper = np.linalg.cholesky(hinv).T  # H⁻¹ = Uᵀ U, U upper triangular
    work = weights[order].astype(np.float64).copy()
    permuted = Grid(grid.scale[order], grid.zero_point[order], grid.qmin, grid.qmax)
    codes = np.empty(d, dtype=np.int64)
    for j in range(d):
        own = permuted.only(j)
        codes[j] = own.nearest(work[j : j + 1])[0]
        error = (work[j] - own.dequantize(codes[j : j + 1])[0]) / upper[j, j]
        work[j + 1 :] -= error * upper[j, j + 1 :]
    result = np.empty(d, dtype=np.int64)
    result[order] = codes
    return result


def _coordinate_descent(
    weights: np.ndarray, gram: np.ndarray, grid: Grid, codes: np.ndarray, max_passes: int = 20
) -> np.ndarray:
    """Move single codes by ±1 while the objective falls: a cheap exact polish after GPTQ."""
    codes = codes.copy()
    residual = grid.dequantize(codes) - weights  # ŵ − w
    gradient = gram @ residual  # ∂f/∂ŵ / 2
    for _ in range(max_passes):
        improved = False
        for j in range(codes.size):
            for step in (-1, 1):
                new_code = codes[j] + step
                if not grid.qmin <= new_code <= grid.qmax:
                    continue
                delta = step * grid.scale[j]
                curvature = delta * delta * gram[j, j]
                change = 2.0 * delta * gradient[j] + curvature
                # Only a fall beyond rounding noise counts, noise relative to the objective
                # and to this move (no absolute floor: the weights' units must not matter).
                if change < -1e-15 * max(curvature, abs(float(residual @ gradient))):
                    codes[j] = new_code
                    residual[j] += delta
                    gradient += delta * gram[:, j]
                    improved = True
                    break
        if not improved:
            break
    return codes


def round_hessian(weights: np.ndarray, gram: np.ndarray, grid: Grid) -> np.ndarray:
    """GPTQ followed by a ±1 polish; never worse than nearest on the training objective."""
    nearest = grid.nearest(weights)
    if weights.size == 1:
        return nearest
    candidate = _coordinate_descent(weights, gram, grid, _gptq(weights, gram, grid))
    if objective(weights, gram, grid, candidate) <= objective(weights, gram, grid, nearest):
        return candidate
    return nearest


@dataclass(frozen=True)
class SphereResult:
    codes: np.ndarray
    proven_optimal: bool
    nodes: int


def _enumerate(
    upper: np.ndarray,
    target: np.ndarray,
    start: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    node_budget: int,
) -> tuple[np.ndarray, bool, int]:
    """Schnorr–Euchner enumeration: argmin ‖R(t − c)‖² over integers low ≤ c ≤ high.

    Depth-first from the last coordinate, visiting each level's codes in order of distance
    from its centre and pruning as soon as the partial cost reaches the best found so far
    (initially the cost of ``start``). Returns (codes, finished within budget, nodes).
    """
    d = target.size
    best = start.astype(np.float64).copy()
    best_cost = float(np.sum((upper @ (target - best)) ** 2))
    current = np.zeros(d)
    nodes = 0

    def search(level: int, partial: float) -> bool:
        nonlocal best_cost, nodes
        offset = upper[level, level + 1 :] @ (target[level + 1 :] - current[level + 1 :])
        centre = target[level] + offset / upper[level, level]
        first = float(np.clip(np.rint(centre), low[level], high[level]))
        below, above = first - 1, first + 1
        down_open, up_open = below >= low[level], above <= high[level]
        candidate: float | None = first
        while candidate is not None:
            nodes += 1
            if nodes > node_budget:
                return False
            cost = partial + (upper[level, level] * (centre - candidate)) ** 2
            if cost >= best_cost:
                # Farther codes on this side only cost more: close it.
                if candidate <= centre:
                    down_open = False
                else:
                    up_open = False
            else:
                current[level] = candidate
                if level == 0:
                    best_cost = cost
                    best[:] = current
                elif not search(level - 1, cost):
                    return False
            if down_open and (not up_open or centre - below <= above - centre):
                candidate, below = below, below - 1
                down_open = below >= low[level]
            elif up_open:
                candidate, above = above, above + 1
                up_open = above <= high[level]
            else:
                candidate = None
        return True

    finished = search(d - 1, 0.0)
    return np.rint(best).astype(np.int64), finished, nodes


def lll_reduce(basis: np.ndarray, delta: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """LLL-reduce the columns of ``basis``: (reduced, U) with reduced = basis·U, U unimodular.

    A skewed lattice (collinear features) makes enumeration exponential; in a reduced basis
    the same closest-vector search visits a handful of nodes.
    """
    reduced = basis.astype(np.float64).copy()
    n = reduced.shape[1]
    unimodular = np.eye(n, dtype=np.int64)
    _, r = np.linalg.qr(reduced)
    k = 1
    while k < n:
        for j in range(k - 1, -1, -1):
            mu = np.rint(r[j, k] / r[j, j])
            if mu != 0:
                reduced[:, k] -= mu * reduced[:, j]
                unimodular[:, k] -= int(mu) * unimodular[:, j]
                r[:, k] -= mu * r[:, j]
        if delta * r[k - 1, k - 1] ** 2 > r[k - 1, k] ** 2 + r[k, k] ** 2:
            reduced[:, [k - 1, k]] = reduced[:, [k, k - 1]]
            unimodular[:, [k - 1, k]] = unimodular[:, [k, k - 1]]
            _, r = np.linalg.qr(reduced)
            k = max(k - 1, 1)
        else:
            k += 1
    return reduced, unimodular


def sphere_decode(
    weights: np.ndarray,
    gram: np.ndarray,
    grid: Grid,
    start: np.ndarray,
    node_budget: int = SPHERE_NODE_BUDGET,
) -> SphereResult:
    """Exact box-constrained integer least squares: the closest lattice point to the weights.

    Minimises ‖R (t − c)‖² over integer codes c in the grid's range, with t = w/scale +
    zero_point and RᵀR the Gram matrix in code units. First an unconstrained search in an
    LLL-reduced basis; if its answer lies inside the range it is the constrained optimum too.
    Otherwise a Schnorr–Euchner search in the original basis with the box, from ``start``.
    Features the objective does not see (zero rows of H, e.g. constant columns) keep their
    ``start`` code.
    """
    active = np.flatnonzero(np.diag(gram) > 0)
    codes = start.copy()
    if active.size == 0:
        return SphereResult(codes, True, 0)
    scale = grid.scale[active]
    gram_codes = gram[np.ix_(active, active)] * np.outer(scale, scale)
    jitter = 1e-12 * float(np.trace(gram_codes)) / active.size
    try:
        upper = np.linalg.cholesky(gram_codes + jitter * np.eye(active.size)).T
    except np.linalg.LinAlgError:
        return SphereResult(codes, False, 0)
    target = weights[active] / scale + grid.zero_point[active]
    begin = start[active]
    d = active.size

    reduced, unimodular = lll_reduce(upper)
    q, r = np.linalg.qr(reduced)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)  # make R's diagonal positive
    q, r = q * signs, r * signs[:, None]
    inverse = np.rint(np.linalg.inv(unimodular)).astype(np.int64)
    reduced_target = np.linalg.solve(r, q.T @ (upper @ target))
    unbounded = np.full(d, np.inf)
    found, finished, nodes = _enumerate(
        r, reduced_target, inverse @ begin, -unbounded, unbounded, node_budget
    )
    candidate = unimodular @ found
    if finished and np.all((candidate >= grid.qmin) & (candidate <= grid.qmax)):
        codes[active] = candidate
        return SphereResult(codes, True, nodes)

    low, high = np.full(d, float(grid.qmin)), np.full(d, float(grid.qmax))
    found, finished, more = _enumerate(upper, target, begin, low, high, node_budget)
    codes[active] = found
    return SphereResult(codes, finished, nodes + more)


def round_optimal(weights: np.ndarray, gram: np.ndarray, grid: Grid) -> np.ndarray:
    """The exact minimiser for up to ``OPTIMAL_MAX_FEATURES`` weights (callers check the size)."""
    start = round_hessian(weights, gram, grid)
    return sphere_decode(weights, gram, grid, start).codes


ROUNDERS = {"nearest": round_nearest, "hessian": round_hessian, "optimal": round_optimal}
