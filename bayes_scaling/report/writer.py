"""Write a fit's posterior report: ``report.html`` (self-contained) and optionally ``report.md``.

>>> bs.write_report(fit, "report/", targets=[{"family": "new", "params": 7e9, "tokens": 2e12}])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..storage import write_atomically
from . import sections
from .document import Document, to_html, to_markdown

FORMATS = ("html", "md")


def build_report(fit: Any, targets: Sequence[dict] | None = None, *, title: str | None = None,
                 interval: float = 0.9, budgets: Any | None = None, random_seed: int = 0) -> Document:
    """The report's sections, computed from ``fit`` (no file written)."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    targets = list(targets or [])
    for t in targets:
        missing = {"family", "params", "tokens"} - set(t)
        if missing:
            raise ValueError(f"target {t} lacks {sorted(missing)}; give family=NAME,params=N,tokens=D")
    from .._version import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Document(
        title=title or "Scaling-law posterior report",
        subtitle=f"bayes_scaling {__version__}, written {stamp}. Intervals are {interval:.0%} posterior intervals "
                 "unless said otherwise.",
        # the answer first: the targets, their intervals and whether to trust them; then how it was reached
        sections=[sections.targets_section(fit, targets, interval), sections.summary_section(fit, interval),
                  sections.data_section(fit), sections.model_section(fit),
                  sections.diagnostics_section(fit), sections.curves_section(fit, interval),
                  sections.parameters_section(fit, interval), sections.noise_section(fit, interval),
                  sections.predictive_check_section(fit, interval, random_seed),
                  sections.frontier_section(fit, interval, budgets, random_seed)])


def write_report(fit: Any, out_dir: str | os.PathLike, targets: Sequence[dict] | None = None, *,
                 title: str | None = None, interval: float = 0.9, budgets: Any | None = None,
                 formats: Sequence[str] = ("html",), random_seed: int = 0) -> Path:
    """Write the report into ``out_dir`` and return the path of ``report.html`` (or of the first format).

    ``targets``: dicts with ``family``, ``params``, ``tokens`` and optionally ``new_family`` (True: a family
    the fit has not seen, drawn from the population; a name the fit has not seen without it is an error).
    ``budgets``: FLOPs for the compute-optimal frontier (default: the data's smallest compute to 1000x its
    largest). ``formats``: any of "html" (self-contained, figures embedded) and "md"
    (Markdown with the figures in ``figures/``).
    """
    _check_formats(formats)
    doc = build_report(fit, targets, title=title, interval=interval, budgets=budgets, random_seed=random_seed)
    return write_document(doc, out_dir, formats)


def _check_formats(formats: Sequence[str]) -> None:
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"report formats must be among {FORMATS}, got {list(formats)}")


def write_document(doc: Document, out_dir: str | os.PathLike, formats: Sequence[str] = ("html",)) -> Path:
    """Write ``doc`` as ``report.html`` and/or ``report.md`` into ``out_dir``; the path of the first format."""
    _check_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt == "html":
            path = out / "report.html"
            write_atomically(path, to_html(doc))
        else:
            path = out / "report.md"
            write_atomically(path, to_markdown(doc, out / "figures", "figures"))
        paths.append(path)
    return paths[0]
