"""What ``versions``, ``show``, ``diff``, ``promote``, ``rollback``, ``history`` and ``gc``
print: tables for people, JSON (``--json``) for programs. Rendering only."""

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from linreg_ops.cli.render import say

if TYPE_CHECKING:
    from pathlib import Path

    from linreg_ops.baseline import ComparedRow, Comparison
    from linreg_ops.lifecycle import GcResult, PromoteResult, RegistryMove, VersionInfo
    from linreg_ops.storage.store import Move

__all__ = [
    "already",
    "as_json",
    "baseline_table",
    "baseline_written",
    "diff",
    "gc",
    "history",
    "move",
    "promote",
    "registry_move",
    "show",
    "versions",
]


def as_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))  # data: shown under -q too


def _r2(info: "VersionInfo", kind: str) -> str:
    if kind not in info.r2:
        return "–"
    delta = f" ({info.delta_r2[kind]:+.6f})" if kind in info.delta_r2 else ""
    return f"{info.r2[kind]:.4f}{delta}"


def _aliases(info: "VersionInfo") -> str:
    names = ", ".join(info.aliases)
    return names if info.published else f"{names} (unpublished: gc removes it)".strip()


def versions(infos: "list[VersionInfo]") -> None:
    say(
        "| version | created (UTC) | data | SHA-256 | engine | R² float | R² quantized (ΔR²) "
        "| R² integer-only (ΔR²) | aliases |"
    )
    say("|---:|---|---|---|---|---:|---:|---:|---|")
    for info in infos:
        say(
            f"| {info.number} | {info.created_utc.replace('+00:00', '')} | "
            f"{info.data_source} | {info.data_sha256[:12]} | {info.engine or '–'} | "
            f"{_r2(info, 'float')} | {_r2(info, 'quantized')} | {_r2(info, 'integer')} | "
            f"{_aliases(info)} |"
        )


def _rows(info: "VersionInfo") -> dict[str, str]:
    """Every figure of a version, one line each, for ``show`` and ``diff``."""
    p, m = info.parameters, info.metrics
    split = p.get("split", {})
    quant = p.get("quantization") or {}
    integer = p.get("integer_only") or {}
    rows = {
        "created (UTC)": info.created_utc,
        "command": info.command,
        "aliases": ", ".join(info.aliases) or "–",
        "data": info.data_source,
        "data SHA-256": info.data_sha256,
        "target": str(p.get("target", "")),
        "engine": str(info.engine),
        "test size": str(split.get("test_size", "–")),
        "random state": str(split.get("random_state", "–")),
        "train rows": f"{split.get('n_train', '–')}",
        "test rows": f"{split.get('n_test', '–')}",
        "weights dtype": str(quant.get("dtype", "–")),
        "granularity": str(quant.get("granularity", "–")),
        "rounding": str(quant.get("rounding", "–")),
        "integer-only inputs": str(integer.get("input_dtype", "–")),
        "calibration": str(integer.get("calibration", "–")),
        "R² float": _figure(m, "float", "r2"),
        "MSE float": _figure(m, "float", "mse"),
        "R² quantized": _figure(m, "quantized", "r2"),
        "ΔR² quantized": _figure(m, "quantized", "delta_r2", signed=True),
        "R² integer-only": _figure(m, "integer_only", "r2"),
        "ΔR² integer-only": _figure(m, "integer_only", "delta_r2", signed=True),
        "intercept": "–" if info.intercept is None else f"{info.intercept:.6f}",
    }
    rows.update({f"coef {name}": f"{value:.6f}" for name, value in info.coefficients.items()})
    return rows


def _figure(metrics: dict[str, Any], section: str, key: str, signed: bool = False) -> str:
    value = (metrics.get(section) or {}).get(key)
    if value is None:
        return "–"
    return f"{value:+.6f}" if signed else f"{value:.6f}"


def show(info: "VersionInfo") -> None:
    status = "" if info.published else " (unpublished: left by an interrupted writer)"
    say(f"Version {info.number}{' (current)' if info.current else ''}{status}")
    width = max(map(len, _rows(info)))
    for name, value in _rows(info).items():
        say(f"  {name:<{width}}  {value}")


def diff(a: "VersionInfo", b: "VersionInfo") -> None:
    left, right = _rows(a), _rows(b)
    say(f"| | version {a.number} | version {b.number} | change |")
    say("|---|---:|---:|---:|")
    for name in [*left, *(n for n in right if n not in left)]:
        x, y = left.get(name, "–"), right.get(name, "–")
        say(f"| {name} | {x} | {y} | {_change(x, y)} |")


def _change(x: str, y: str) -> str:
    if x == y:
        return ""
    try:
        return f"{int(y) - int(x):+d}"
    except ValueError:
        pass
    try:
        return f"{float(y) - float(x):+.6f}"
    except ValueError:
        return "changed"


def move(done: "Move") -> None:
    before = "nothing" if done.previous is None else f"version {done.previous}"
    say(f"{done.alias}: version {done.version} (was {before}; {done.action} by {done.user})")


def promote(result: "PromoteResult") -> None:
    if result.holder_r2 is not None and result.candidate_r2 is not None:
        verdict = "--force" if result.forced else "within --max-r2-regression"
        say(
            f"R² on the {result.rows:,} test rows of version {result.move.previous}: "
            f"{result.holder_r2:.6f} → {result.candidate_r2:.6f} "
            f"({result.candidate_r2 - result.holder_r2:+.6f}, {verdict})"
        )
    move(result.move)


def already(alias: str, number: int) -> None:
    say(f"{alias}: version {number} already (the folder's alias unchanged)")


def registry_move(done: "RegistryMove") -> None:
    before = "nothing" if done.previous is None else f"models:/{done.name}/{done.previous}"
    say(
        f"registry {done.name}@{done.alias}: models:/{done.name}/{done.version} "
        f"(was {before}) at {done.tracking_uri}"
    )


def history(moves: "list[Move]", as_document: bool) -> None:
    if as_document:
        as_json([asdict(m) for m in moves])
        return
    say("| time (UTC) | action | version | previous | user | command |")
    say("|---|---|---:|---:|---|---|")
    for m in moves:
        previous = "–" if m.previous is None else str(m.previous)
        say(
            f"| {m.time_utc.replace('+00:00', '')} | {m.action} | {m.version} | {previous} "
            f"| {m.user} | {m.command} |"
        )


def gc(result: "GcResult") -> None:
    removed = ", ".join(map(str, result.removed)) or "none"
    say(f"Removed versions: {removed}")
    for number, why in sorted(result.kept.items()):
        say(f"Kept version {number}: {why}")


def baseline_written(path: "Path", document: dict[str, Any]) -> None:
    figures = ", ".join(f"{kind} {value:.6f}" for kind, value in document["r2"].items())
    say(f"Baseline of version {document['version']} written to {path}: R² {figures}")


def baseline_table(comparison: "Comparison") -> str:
    """The comparison as Markdown (the terminal and ``$GITHUB_STEP_SUMMARY`` get the same)."""

    def number(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "–"
        return f"{value:+.6f}" if signed else f"{value:.6f}"

    verdict = "passed" if comparison.passed else "FAILED"
    lines = [
        f"### Regression gate: version {comparison.version} against the baseline: {verdict}",
        "",
        "| model | baseline R² | this R² | ΔR² | allowed | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in comparison.rows:
        lines.append(
            f"| {row.kind} | {number(row.baseline)} | {number(row.current)} | "
            f"{number(row.delta, signed=True)} | -{comparison.limit:g} | "
            f"{_verdict(row)} |"
        )
    return "\n".join(lines)


def _verdict(row: "ComparedRow") -> str:
    if row.passed:
        return "ok"
    return "missing" if row.current is None else "regression"
