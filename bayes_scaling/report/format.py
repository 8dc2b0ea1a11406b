"""Numbers for humans: 1.3B params, 50B tokens, 2.1e21 FLOPs; markdown tables of them."""

from __future__ import annotations

import math
from collections.abc import Iterable


def human(x: float) -> str:
    """1.3e9 -> '1.3B', 5e10 -> '50B', 2.5e12 -> '2.5T', 7.5e5 -> '750K'."""
    if x is None or not math.isfinite(x):
        return str(x)
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def sci(x: float, digits: int = 2) -> str:
    """FLOPs and other huge counts: 1.25e16 -> '1.2e16' (no '+', no zero padding)."""
    if x is None or not math.isfinite(x) or x == 0:
        return str(x)
    text = f"{x:.{digits}g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return f"{mant}e{int(exp)}"


def markdown_table(header: list[str], rows: Iterable[list[object]]) -> str:
    """A markdown table: ``header`` and each row's cells (already formatted, or printed with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
