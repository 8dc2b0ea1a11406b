"""A self-contained HTML posterior report (figures embedded as base64 PNG; opens offline)."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd

from . import figures
from .format import human


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="tab", float_format=lambda v: f"{v:.4g}")


def target_table(fit, targets: list[dict], interval: float = 0.9) -> pd.DataFrame:
    rows = []
    for t in targets:
        p = fit.predict(t["family"], t["params"], t["tokens"], interval=interval)
        r = {k: float(p[k].values[0]) for k in ("run_median", "run_lower", "run_upper", "expected_median",
                                                   "expected_lower", "expected_upper")}
        r.update(family=t["family"], params=human(t["params"]), tokens=human(t["tokens"]),
                 new_family=bool(p["new_family"].values[0]),
                 label=f"{t['family']} {human(t['params'])} / {human(t['tokens'])}")
        rows.append(r)
    return pd.DataFrame(rows)


def write_report(fit, out_dir: str | os.PathLike, targets: list[dict] | None = None, title: str | None = None,
                 interval: float = 0.9) -> Path:
    """Write ``report.html`` into ``out_dir`` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = fit.summary()
    d = fit.diagnostics
    data = fit.data
    parts = [f"<h1>{html.escape(title or 'Scaling-law posterior report')}</h1>",
             f"<p>Source: {html.escape(fit.spec.source or 'user data')}</p>"]

    ov = data.overview().reset_index()
    for c in ("min_params", "max_params", "min_tokens", "max_tokens"):
        ov[c] = ov[c].map(human)
    parts += ["<h2>Data</h2>", _table(ov)]
    if fit.spec.filters:
        parts += ["<p>Rows removed by filters (nothing is dropped silently):</p>",
                  _table(pd.DataFrame(fit.spec.filters))]
    else:
        parts.append("<p>No rows were filtered out.</p>")

    parts += ["<h2>Model</h2>", f"<p>Law: <code>{html.escape(fit.law.formula)}</code>, anchored at "
              + ", ".join(f"{k} = {human(v)}" for k, v in fit.spec.reference.items())
              + ". Family parameters are partially pooled around a population distribution (LKJ-correlated); "
                "each run has a seed effect (sd sigma_seed) shared by its checkpoints, and each checkpoint "
                "noise (sd sigma_obs), on the log loss.</p>",
              "<p>Priors:</p><ul>" + "".join(f"<li><code>{html.escape(x)}</code></li>"
                                             for x in fit.spec.priors.describe()) + "</ul>"]

    status = "all checks passed" if d.ok else "PROBLEMS: " + "; ".join(d.problems)
    diag = pd.DataFrame([{"divergences": d.divergences, "max R-hat": d.max_rhat, "min bulk ESS": d.min_ess_bulk,
                          "min tail ESS": d.min_ess_tail, "chains x draws": f"{d.chains} x {d.draws}",
                          "sampling seconds": d.sampling_seconds}])
    cls = "ok" if d.ok else "warn"
    parts += ["<h2>Diagnostics</h2>", _table(diag), f'<p class="{cls}">{html.escape(status)}</p>']
    if s["notes"]:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s["notes"]) + "</ul>")

    parts += ["<h2>Fitted curves</h2>", _img(figures.fitted_curves(fit, interval=interval), "fitted curves")]
    parts += ["<h2>Parameters</h2>", _img(figures.parameter_forest(fit), "parameter forest")]
    tab = fit.parameter_table()
    parts.append(_table(tab))
    ex = fit.extrapolation
    if ex.get("mode") == "learn":
        parts.append(f"<p>Extrapolation discrepancy: {html.escape(ex.get('holdout', ''))}; kappa median "
                     f"{ex.get('kappa_median', float('nan')):.4g} log-loss sd and drift median "
                     f"{ex.get('drift_median', 0.0):+.4g} log loss per decade of compute beyond the data."
                     "</p>")
        if ex.get("note"):
            parts.append(f"<p><b>Note:</b> {html.escape(ex['note'])}</p>")
    if targets:
        tt = target_table(fit, targets, interval)
        parts += ["<h2>Targets</h2>", _table(tt.drop(columns=["label"])),
                  _img(figures.targets_plot(tt), "targets")]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%}"
             ".tab{border-collapse:collapse;font-size:12px}.tab td,.tab th{padding:2px 8px;border-bottom:1px solid #ddd}"
             ".warn{color:#b00;font-weight:bold}.ok{color:#070}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title or 'report')}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
