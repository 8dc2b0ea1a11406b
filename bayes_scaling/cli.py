"""The ``bayes-scaling`` command: a thin layer over the library (no logic of its own)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd


def _float(text: str) -> float:
    return float(text)


def _target(text: str) -> dict:
    """``family=NAME,params=N,tokens=D`` -> dict."""
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    missing = {"family", "params", "tokens"} - set(out)
    if missing:
        raise argparse.ArgumentTypeError(f"--target needs family=..,params=..,tokens=..; missing {sorted(missing)}")
    return {"family": out["family"], "params": float(out["params"]), "tokens": float(out["tokens"])}


def _clean(obj):
    """JSON-safe: NaN/inf -> None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _sampling_args(p: argparse.ArgumentParser, draws: int = 1000, tune: int = 1000) -> None:
    p.add_argument("--law", default="chinchilla", choices=["chinchilla", "compute"])
    p.add_argument("--min-tokens", type=_float, default=None, help="drop checkpoints before this many tokens")
    p.add_argument("--fraction", type=_float, default=None, help="keep only this first fraction of each run")
    p.add_argument("--draws", type=int, default=draws)
    p.add_argument("--tune", type=int, default=tune)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"])
    p.add_argument("--likelihood", default="normal", choices=["normal", "student_t"],
                   help="student_t: robust run likelihood that down-weights outlying runs/points")
    p.add_argument("--no-extrapolation", action="store_true", help="no extrapolation-discrepancy term")


def _fit_kwargs(a: argparse.Namespace) -> dict:
    return dict(law=a.law, min_tokens=a.min_tokens, fraction=a.fraction, draws=a.draws, tune=a.tune,
                chains=a.chains, random_seed=a.random_seed, sampler=a.sampler, likelihood=a.likelihood,
                extrapolation=None if a.no_extrapolation else "learn")


def cmd_fit(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    df = pd.read_csv(a.data)
    data = bs.ScalingData.from_frame(df, family=a.family, params=a.params, tokens=a.tokens, loss=a.loss,
                                     run=a.run, seed=a.seed, flops=a.flops, loss_kind=a.loss_kind,
                                     source=str(a.data))
    fit = bs.fit(data, borrow=a.borrow, **_fit_kwargs(a))
    path = fit.save(a.out)
    d = fit.diagnostics
    print(f"wrote {path}: {len(fit.spec.families)} families, {len(fit.spec.runs)} runs, {len(data)} rows; "
          f"divergences={d.divergences} max_rhat={d.max_rhat:.3f} min_ess_bulk={d.min_ess_bulk:.0f}")
    for p in d.problems:
        print(f"WARNING: {p}", file=sys.stderr)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    fit = bs.load(a.fit)
    p = fit.predict(a.family, a.params, a.tokens, interval=a.interval, random_seed=a.random_seed)
    out = {"family": a.family, "params": a.params, "tokens": a.tokens,
           "median": float(p["run_median"].values[0]), "mean": float(p["run_mean"].values[0]),
           "lower": float(p["run_lower"].values[0]), "upper": float(p["run_upper"].values[0]),
           "interval": a.interval,
           "expected_median": float(p["expected_median"].values[0]),
           "expected_lower": float(p["expected_lower"].values[0]),
           "expected_upper": float(p["expected_upper"].values[0]),
           "new_family": bool(p["new_family"].values[0])}
    if a.json:
        print(json.dumps(_clean(out)))
    else:
        kind = "new family (drawn from the population)" if out["new_family"] else "family"
        print(f"{kind} {a.family}, N={a.params:.3g}, D={a.tokens:.3g}: one-run loss {out['median']:.4f} "
              f"[{out['lower']:.4f}, {out['upper']:.4f}] ({a.interval:.0%}); expected loss "
              f"[{out['expected_lower']:.4f}, {out['expected_upper']:.4f}]")
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    s = bs.load(a.fit).summary()
    if a.json:
        print(json.dumps(_clean(s)))
    else:
        keys = ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "chains", "draws", "sampling_seconds")
        for k in keys:
            print(f"{k:>18}: {s[k]}")
        for name, v in s["parameters"].items():
            if name != "families" and v:
                print(f"{name:>18}: {v['median']:.4g} [{v['lower']:.4g}, {v['upper']:.4g}]")
        for n in s["notes"] + s["problems"]:
            print(f"note: {n}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report.html import write_report

    fit = bs.load(a.fit)
    path = write_report(fit, a.out, targets=a.target)
    print(f"report written to {path}")
    return 0


DEMO_PORIAN_FAMILIES = ["rw-base-long-kaplan-standard-val", "rw-base-short-chinchilla-standard-val",
                        "rw-base-short-kaplan-standard-val", "rw-tuned-short-const-standard-val"]


def cmd_demo(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report.html import write_report

    data = bs.load_bundled(a.dataset)
    if a.families != "all":
        keep = data.families if a.families is None else a.families.split(",")
        if a.families is None and a.dataset == "porian":
            keep = DEMO_PORIAN_FAMILIES
        data = data.select_families(keep)
    print(f"fitting the bundled {a.dataset!r} data: {bs.data.BUNDLED[a.dataset]}")
    print(f"{len(data)} rows, {len(data.families)} families, {len(data.runs)} runs")
    fit = bs.fit(data, **_fit_kwargs(a))
    out = Path(a.out)
    fit_path = fit.save(out / "fit.nc")
    run_table = data.run_table()
    big = run_table.sort_values("max_flops").iloc[-1]
    targets = [{"family": big["family"], "params": float(big["params"]) * 10, "tokens": float(big["max_tokens"]) * 10},
               {"family": "a new family", "params": float(big["params"]) * 10, "tokens": float(big["max_tokens"]) * 10}]
    report = write_report(fit, out, targets=targets, title=f"bayes_scaling demo: {bs.data.BUNDLED[a.dataset]}")
    print(f"fit saved to {fit_path}")
    print(f"report written to {report}")
    return 0


def cmd_prior(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    prior = bs.PopulationPrior.from_fit(bs.load(a.fit), draws=a.draws)
    path = prior.save(a.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {prior.describe()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bayes-scaling", description="Bayesian hierarchical scaling laws")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a CSV of runs and write FIT.nc")
    p.add_argument("data", type=Path)
    p.add_argument("--family", default=None, help="family column (default: one family)")
    p.add_argument("--params", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--loss", required=True)
    p.add_argument("--run", default=None)
    p.add_argument("--seed", default=None)
    p.add_argument("--flops", default=None)
    p.add_argument("--loss-kind", default="nats", choices=["nats", "perplexity"])
    p.add_argument("--borrow", default=None, type=Path,
                   help="FIT.nc or PRIOR.nc: fit one new family with that population prior")
    _sampling_args(p)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("prior", help="extract the population prior of a fit into a small file")
    p.add_argument("fit", type=Path)
    p.add_argument("--draws", type=int, default=4000)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_prior)

    p = sub.add_parser("predict", help="posterior predictive loss at one point")
    p.add_argument("fit", type=Path)
    p.add_argument("--family", required=True)
    p.add_argument("--params", required=True, type=_float)
    p.add_argument("--tokens", required=True, type=_float)
    p.add_argument("--interval", type=_float, default=0.9)
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("summary", help="diagnostics and parameters of a fit")
    p.add_argument("fit", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("report", help="write a self-contained HTML report of a fit")
    p.add_argument("fit", type=Path)
    p.add_argument("--target", type=_target, action="append", default=[],
                   help="family=NAME,params=N,tokens=D (repeatable)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="fit a bundled real dataset and write a report")
    p.add_argument("--out", default=Path("demo_output"), type=Path)
    p.add_argument("--dataset", default="porian", choices=["porian", "opt"])
    p.add_argument("--families", default=None,
                   help="comma-separated families to fit, or 'all' (default for porian: its four RefinedWeb "
                        "validation-loss recipes, to keep the demo near a minute on 2 cores)")
    _sampling_args(p, draws=500, tune=500)
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bayes_scaling.errors import BayesScalingError, SamplingWarning

    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    warnings.simplefilter("always", SamplingWarning)
    try:
        return args.func(args)
    except (BayesScalingError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
