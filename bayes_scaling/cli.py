"""The ``bayes-scaling`` command: a thin layer over the library (no logic of its own)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _float(text: str) -> float:
    return float(text)


def _key_values(text: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}."""
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out


def _target(text: str) -> dict:
    """``family=NAME,params=N,tokens=D`` -> dict."""
    out = _key_values(text)
    missing = {"family", "params", "tokens"} - set(out)
    if missing:
        raise argparse.ArgumentTypeError(f"--target needs family=..,params=..,tokens=..; missing {sorted(missing)}")
    return {"family": out["family"], "params": float(out["params"]), "tokens": float(out["tokens"])}


def _plan_target(text: str) -> dict:
    """``params=N,tokens=D[,family=NAME][,flops=C]`` -> dict."""
    out = _key_values(text)
    missing = {"params", "tokens"} - set(out)
    unknown = set(out) - {"params", "tokens", "family", "flops"}
    if missing or unknown:
        raise argparse.ArgumentTypeError(f"--target needs params=..,tokens=.. (optionally family=..,flops=..); "
                                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    try:
        return {k: (v if k == "family" else float(v)) for k, v in out.items()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--target {text!r}: {exc}") from None


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
    p.add_argument("--until-converged", action="store_true",
                   help="stop sampling as soon as the draws pass the R-hat and ESS checks (--draws is then the most; "
                        "divergences are reported, not waited on)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"])
    p.add_argument("--backend", default="auto", choices=["auto", "numba", "jax"],
                   help="nutpie's compile backend; auto: JAX for a small OU model when installed, else numba")
    p.add_argument("--likelihood", default="normal", choices=["normal", "student_t"],
                   help="student_t: robust run likelihood that down-weights outlying runs/points")
    p.add_argument("--checkpoint-noise", default="independent", choices=["independent", "ou"],
                   help="ou: checkpoint noise correlated along each run in log tokens (dense checkpoint curves)")
    p.add_argument("--no-extrapolation", action="store_true", help="no extrapolation-discrepancy term")
    p.add_argument("--whiten", default=None, choices=["fixed", "conditional", "none"],
                   help="how a centred family layer is whitened for sampling (the same posterior); default: the "
                        "package's default (fixed); none: not whitened")


def _target_size_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, type=_float, help="target model size N (parameters)")
    p.add_argument("--tokens", required=True, type=_float, help="target training tokens D (C = 6 N D)")


def _fit_question(sub, name: str, help: str, func, names: tuple[str, ...] = (), *, sizes: bool = True,
                  seed: bool = True) -> argparse.ArgumentParser:
    """A subcommand that asks a fitted model one question: FIT.nc, required names, target size, output."""
    p = sub.add_parser(name, help=help)
    p.add_argument("fit", type=Path)
    for n in names:
        p.add_argument(f"--{n}", required=True)
    if sizes:
        _target_size_args(p)
    _output_args(p, seed)
    p.set_defaults(func=func)
    return p


def _output_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    """--interval, --random-seed and --json of the commands that answer a question about a fit."""
    p.add_argument("--interval", type=_float, default=0.9)
    if seed:
        p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def _fit_kwargs(a: argparse.Namespace) -> dict:
    return dict(law=a.law, min_tokens=a.min_tokens, fraction=a.fraction, draws=a.draws, tune=a.tune,
                until_converged=a.until_converged, chains=a.chains, random_seed=a.random_seed, sampler=a.sampler,
                likelihood=a.likelihood,
                checkpoint_noise=a.checkpoint_noise, backend=a.backend,
                whiten=True if a.whiten is None else False if a.whiten == "none" else a.whiten,
                extrapolation=None if a.no_extrapolation else "learn")


def cmd_fit(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    data = _read_data(a)
    fit = bs.fit(data, borrow=a.borrow, treatments=dict(a.treatment), **_fit_kwargs(a))
    path = fit.save(a.out)
    d = fit.diagnostics
    print(f"wrote {path}: {len(fit.spec.families)} families, {len(fit.spec.runs)} runs, {len(data)} rows; "
          f"divergences={d.divergences} max_rhat={d.max_rhat:.3f} min_ess_bulk={d.min_ess_bulk:.0f}")
    for p in d.problems:
        print(f"WARNING: {p}", file=sys.stderr)
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    """The CSV and its columns, as ``fit`` and ``backtest`` read them."""
    p.add_argument("data", type=Path, help="CSV with one row per checkpoint (or per run)")
    p.add_argument("--family", default=None, help="family column (default: one family)")
    p.add_argument("--params", required=True, help="column of model sizes N (parameters)")
    p.add_argument("--tokens", required=True, help="column of training tokens D")
    p.add_argument("--loss", required=True, help="column of validation loss (nats, or see --loss-kind)")
    p.add_argument("--run", default=None, help="column of run ids (default: one run per family and size)")
    p.add_argument("--seed", default=None, help="column of seeds")
    p.add_argument("--flops", default=None, help="column of training FLOPs (default 6 N D)")
    p.add_argument("--loss-kind", default="nats", choices=["nats", "perplexity"])


def _read_data(a: argparse.Namespace):
    import bayes_scaling as bs

    return bs.ScalingData.from_frame(pd.read_csv(a.data), family=a.family, params=a.params, tokens=a.tokens,
                                     loss=a.loss, run=a.run, seed=a.seed, flops=a.flops, loss_kind=a.loss_kind,
                                     source=str(a.data))


def cmd_backtest(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.evaluate.backtest import backtest_markdown

    directions = [d.strip() for d in a.directions.split(",") if d.strip()]
    try:
        depths = [int(k) for k in a.depths.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--depths {a.depths!r}: give comma-separated positive integers, e.g. --depths 1,2") from None
    if a.out is not None and a.out.exists() and not a.out.is_dir():
        raise ValueError(f"--out {a.out} is a file; give a folder for the report")
    data = _read_data(a)
    kwargs = _fit_kwargs(a)
    seed = kwargs.pop("random_seed")
    result = bs.backtest(data, directions=directions, depths=depths, random_seed=seed,
                         progress=lambda line: print(line, file=sys.stderr, flush=True), **kwargs)
    print(result.to_json() if a.json else backtest_markdown(result))
    if a.out is not None:
        path = result.write_report(a.out, source=str(a.data))
        print(f"wrote {path}", file=sys.stderr)
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


def cmd_cache(a: argparse.Namespace) -> int:
    import time

    from .inference import compile_store

    folder = compile_store.directory()
    if folder is None:
        print("the disk cache of compiled models is off (BAYES_SCALING_COMPILE_CACHE_DIR)")
        return 0
    if a.clear:
        print(f"removed {compile_store.clear(folder)} compiled models from {folder}")
        return 0
    found = compile_store.entries(folder)
    print(f"{len(found)} compiled models in {folder} ({sum(e['megabytes'] for e in found):.1f} MB; "
          f"at most {compile_store.MAX_ENTRIES} are kept)")
    for e in found:
        print(f"  {Path(e['path']).name}  {e['megabytes']:.1f} MB  last used "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e['last_used']))}")
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
    from bayes_scaling.report import write_report

    fit = bs.load(a.fit)
    formats = ("html", "md") if a.markdown else ("html",)
    path = write_report(fit, a.out, targets=a.target, title=a.title, interval=a.interval,
                        budgets=a.budget or None, formats=formats)
    print(f"report written to {path}" + (f" and {path.with_suffix('.md')}" if a.markdown else ""))
    return 0


DEMO_PORIAN_FAMILIES = ["rw-base-long-kaplan-standard-val", "rw-base-short-chinchilla-standard-val",
                        "rw-base-short-kaplan-standard-val", "rw-tuned-short-const-standard-val"]


def cmd_demo(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report import write_report

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


def cmd_mixing(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    data = bs.MixingData.from_frames(pd.read_csv(a.losses), pd.read_csv(a.proportions), loss=a.loss_column,
                                     share=a.share_column, source=f"{a.losses} + {a.proportions}")
    train = a.train.split(",") if a.train else data.mixtures
    fit = bs.fit_mixing(data.select(train), draws=a.draws, tune=a.tune, chains=a.chains, random_seed=a.random_seed,
                        sampler=a.sampler, extrapolation=not a.no_extrapolation, deviation=a.deviation)
    out = Path(a.out)
    path = fit.save(out / "mixing_fit.nc")
    result: dict = {"fit": str(path), "diagnostics": fit.diagnostics.to_dict(), "extrapolation": fit.extrapolation}
    steps = np.sort(data.frame["step"].unique())
    if a.predict:
        names = a.predict.split(",")
        p = fit.predict(data.proportions().loc[names], steps, interval=a.interval).to_dataframe().reset_index()
        p["mixture"] = p["mixture"].astype(str)
        obs = data.frame[["mixture", "domain", "step", "loss"]]
        p = p.merge(obs, on=["mixture", "domain", "step"], how="left")
        p.to_csv(out / "predictions.csv", index=False)
        result["predictions"] = str(out / "predictions.csv")
        dist = fit.mixture_distance(data.proportions().loc[names])
        result["distance_from_trained"] = {n: float(d) for n, d in zip(names, dist)}
        if p["loss"].notna().any():
            re = (p["run_median"] - p["loss"]).abs() / p["loss"]
            inside = (p["loss"] >= p["run_lower"]) & (p["loss"] <= p["run_upper"])
            result["heldout"] = {"mean_relative_error": float(re.mean()), f"coverage_{a.interval:g}": float(inside.mean())}
    if a.optimize_step:
        opt = bs.optimize_mixture(fit, a.optimize_step)
        result["optimal_mixture"] = {"step": a.optimize_step, "shares": opt.to_dict(),
                                     "average_loss": opt.attrs["objective"], "converged": opt.attrs["converged"],
                                     "distance_from_trained": float(fit.mixture_distance(opt)[0])}
    (out / "mixing.json").write_text(json.dumps(_clean(result), indent=1))
    print(json.dumps(_clean(result)) if a.json else f"mixing fit saved to {path}; summary in {out / 'mixing.json'}")
    return 0


def _print_table(table: pd.DataFrame, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        print(json.dumps(_clean({**(extra or {}), "rows": json.loads(table.to_json(orient="records"))})))
    else:
        for k, v in (extra or {}).items():
            print(f"{k}: {v}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_optimal(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    fit = bs.load(a.fit)
    opt = bs.compute_optimal(fit, a.budget, family=a.family, random_seed=a.random_seed)
    table = bs.decisions.summarize(opt, interval=a.interval)
    _print_table(table, a.json, {"family": opt.attrs["family"], "new_family": bool(opt.attrs["new_family"]),
                                 "flops": opt.attrs["flops"], "interval": a.interval})
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    cmp = bs.compare(bs.load(a.fit), a.a, a.b, a.params, a.tokens, random_seed=a.random_seed)
    table = bs.decisions.summarize(cmp[["expected_difference", "run_difference"]], interval=a.interval)
    extra = {"a": a.a, "b": a.b, "params": a.params, "tokens": a.tokens, "interval": a.interval,
             "p_a_better": float(cmp["p_a_better"].values[0]),
             "p_a_better_one_run": float(cmp["p_a_better_one_run"].values[0])}
    _print_table(table.drop(columns="target"), a.json, extra)
    return 0


def cmd_speedup(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    sp = bs.growth_speedup(bs.load(a.fit), a.grown, a.scratch, a.params, tokens=a.tokens, loss=a.loss)
    table = bs.decisions.summarize(sp, interval=a.interval)
    _print_table(table, a.json, {"grown": a.grown, "scratch": a.scratch, "params": a.params,
                                 "tokens": a.tokens, "loss": a.loss, "interval": a.interval})
    return 0


def cmd_growth_timing(a: argparse.Namespace) -> int:
    from bayes_scaling.decisions import GrowthTiming

    model = GrowthTiming.paper()
    if a.data is not None:
        model = model.update(pd.read_csv(a.data), params=a.params_column, tokens=a.tokens_column,
                             growth_tokens=a.growth_tokens_column)
    row = model.predict(a.params, a.tokens, interval=a.interval).iloc[0]
    out = {"growth_tokens": float(row["growth_tokens"]), "lower": float(row["lower"]), "upper": float(row["upper"]),
           "growth_factor": int(row["growth_factor"]), "interval": a.interval, "params": a.params,
           "tokens": a.tokens, "observations": model.n_obs}
    if a.json:
        print(json.dumps(out))
    else:
        source = "the paper's constants" if model.n_obs == 0 else f"updated with {model.n_obs} observations"
        print(f"grow after {out['growth_tokens'] / 1e9:.2f}B tokens ({a.interval:.0%} interval "
              f"{out['lower'] / 1e9:.2f}B-{out['upper'] / 1e9:.2f}B), growth factor g = {out['growth_factor']} "
              f"[{source}]")
    return 0


def _treatment(text: str) -> tuple[str, str]:
    grown, sep, twin = text.partition("=")
    if not sep or not grown or not twin:
        raise argparse.ArgumentTypeError(f"--treatment needs TREATED=TWIN (e.g. 7b-stacked=7b-scratch), got {text!r}")
    return grown.strip(), twin.strip()


def cmd_plan(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    target = dict(a.target)
    family = target.pop("family", None)
    candidates = pd.read_csv(a.candidates) if a.candidates is not None else None
    p = bs.plan(a.posterior, target, a.budget, family=family, candidates=candidates, accuracy=a.accuracy,
                interval=a.interval, checkpoints=a.checkpoints, min_tokens=a.min_tokens, fantasies=a.fantasies,
                method=a.method, stop_at_accuracy=not a.spend_budget, random_seed=a.random_seed)
    if a.json:
        print(json.dumps(_clean(p.to_dict())))
    else:
        print(p.summary())
    return 0


def cmd_prior(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    kw = {} if a.population is None else {"population": a.population}
    prior = bs.PopulationPrior.from_fit(bs.load(a.fit), draws=a.draws, **kw)
    path = prior.save(a.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {prior.describe()}")
    return 0


def cmd_grid(a: argparse.Namespace) -> int:
    from bayes_scaling.grid import GridConfig, GridRunError, counts, run_grid

    config = GridConfig.load(a.config)
    try:
        ds = run_grid(config, a.out, scheduler=a.scheduler, workers=a.workers, restart=a.restart,
                      progress=not a.no_progress)
        code = 0
    except GridRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        from bayes_scaling.grid import load_results

        ds, code = load_results(a.out), 1
    c = counts(ds)
    print(f"wrote {a.out}: {c['cells']} cells (ok {c['ok']}, not applicable {c['not_applicable']}, "
          f"failed {c['failed']}, pending {c['pending']})")
    if a.figures:
        from bayes_scaling.report.grid_figures import write_grid_figures

        for path in write_grid_figures(ds, a.figures):
            print(f"wrote {path}")
    return code


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bayes-scaling", description="Bayesian hierarchical scaling laws")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a CSV of runs and write FIT.nc")
    _data_args(p)
    p.add_argument("--borrow", default=None, type=Path,
                   help="FIT.nc or PRIOR.nc: fit one new family with that population prior")
    p.add_argument("--treatment", type=_treatment, action="append", default=[],
                   help="TREATED=TWIN: the treated family (e.g. grown by stacking) is its twin plus a shift "
                        "(repeatable)")
    _sampling_args(p)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("prior", help="extract the population prior of a fit into a small file")
    p.add_argument("fit", type=Path)
    p.add_argument("--draws", type=int, default=4000)
    p.add_argument("--population", default=None, metavar="{blend,model,families,mixture}",
                   help="what a new family is like: a Polya-urn blend of the model's population and the fitted "
                        "families (default), the model's population alone, the fitted families alone, or the urn "
                        "kept as a mixture that a borrowed fit averages by evidence (a fit per component)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_prior)

    _fit_question(sub, "predict", "posterior predictive loss at one point", cmd_predict, ("family",))

    p = sub.add_parser("plan", help="plan the next runs: which small models to train to predict a target "
                                    "within an accuracy at the least compute")
    p.add_argument("posterior", type=Path, help="FIT.nc (a fitted family, or a new one) or PRIOR.nc (nothing trained)")
    p.add_argument("--target", type=_plan_target, required=True,
                   help="params=N,tokens=D[,family=NAME][,flops=C]: the run whose loss is to be predicted")
    p.add_argument("--budget", type=_float, required=True, help="FLOPs available for the planned runs")
    p.add_argument("--candidates", type=Path, default=None,
                   help="CSV of candidate runs (params, tokens; optional flops, checkpoints, label); "
                        "default: 10 sizes x 5 token budgets")
    p.add_argument("--accuracy", type=_float, default=0.04, help="expected ARE wanted (default 0.04)")
    p.add_argument("--interval", type=_float, default=0.9)
    p.add_argument("--checkpoints", type=int, default=10, help="checkpoints used per run (evenly spaced)")
    p.add_argument("--min-tokens", type=_float, default=None, help="checkpoints before this many tokens are not used")
    p.add_argument("--fantasies", type=int, default=256)
    p.add_argument("--method", default="laplace", choices=["laplace", "importance"])
    p.add_argument("--spend-budget", action="store_true",
                   help="keep planning after the accuracy is expected to be reached, up to the budget")
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("summary", help="diagnostics and parameters of a fit")
    p.add_argument("fit", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("report", help="write a self-contained HTML report of a fit")
    p.add_argument("fit", type=Path)
    p.add_argument("--target", type=_target, action="append", default=[],
                   help="family=NAME,params=N,tokens=D (repeatable; an unseen family name is a new family)")
    p.add_argument("--budget", type=_float, action="append", default=[],
                   help="FLOPs for the compute-optimal frontier (repeatable; default: the data's compute to 1000x)")
    p.add_argument("--interval", type=_float, default=0.9)
    p.add_argument("--title", default=None)
    p.add_argument("--markdown", action="store_true", help="also write report.md with figures/*.png")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    p = _fit_question(sub, "optimal", "compute-optimal N*, D* and tokens per parameter at FLOPs budgets",
                      cmd_optimal, sizes=False)
    p.add_argument("--budget", type=_float, action="append", required=True, help="FLOPs (repeatable)")
    p.add_argument("--family", default=None, help="a fitted family, or a new name for a new family")

    _fit_question(sub, "compare", "recipe A vs B: loss difference at a target and P(A beats B)", cmd_compare,
                  ("a", "b"))

    p = _fit_question(sub, "speedup", "model growth: D_scratch(L) / D_grown(L) - 1 at size N", cmd_speedup,
                      ("grown", "scratch"), sizes=False, seed=False)
    p.add_argument("--params", required=True, type=_float)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--tokens", type=_float, help="the target loss is the scratch model's after these tokens")
    target.add_argument("--loss", type=_float, help="the target loss")

    p = sub.add_parser("growth-timing", help="G_stack: tokens to train the small model before growing it")
    _target_size_args(p)
    p.add_argument("--interval", type=_float, default=0.9)
    p.add_argument("--data", type=Path, default=None,
                   help="CSV of your own growth experiments (one row per target: size, tokens, best growth tokens)")
    p.add_argument("--params-column", default="params")
    p.add_argument("--tokens-column", default="tokens")
    p.add_argument("--growth-tokens-column", default="growth_tokens")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_growth_timing)

    p = sub.add_parser("mixing", help="BiMix data-mixing law: fit per-domain losses of several mixtures, "
                                      "predict others, optimise the mixture")
    p.add_argument("losses", type=Path, help="CSV: mixture, domain, step, and the loss column")
    p.add_argument("proportions", type=Path, help="CSV: mixture, domain, and the share column")
    p.add_argument("--loss-column", default="val_loss")
    p.add_argument("--share-column", default="proportion")
    p.add_argument("--train", default=None, help="comma-separated mixtures to fit (default: all)")
    p.add_argument("--predict", default=None, help="comma-separated mixtures to predict (held out or not)")
    p.add_argument("--optimize-step", type=_float, default=None, help="optimise the mixture for this step")
    p.add_argument("--interval", type=_float, default=0.9)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"])
    p.add_argument("--no-extrapolation", action="store_true", help="no share-extrapolation term")
    p.add_argument("--deviation", default="normal", choices=["normal", "student_t"],
                   help="a run's deviation from the law: normal, or heavy-tailed student_t")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mixing)

    p = sub.add_parser(
        "backtest", help="how far this zoo's forecasts can be trusted: nested hold-outs in every direction, ours "
                         "beside point fits", description="Hold out each family's largest compute budgets, model "
        "sizes and tokens-per-parameter levels (1, then 2 deep), fit the rest, and score the held-out runs: ARE, "
        "50%% and 90%% coverage, interval width, for bayes_scaling and per-family Huber, fixed-N-term and "
        "variable-projection fits. Example: bayes-scaling backtest runs.csv --family data --params params "
        "--tokens tokens --loss val_loss --run id --out backtest/")
    _data_args(p)
    p.add_argument("--directions", default="flops,params,ratio",  # bayes_scaling.data.extent.DIRECTIONS
                   help="comma-separated directions to hold out along: flops (compute budgets), params (model "
                        "sizes), ratio (tokens per parameter); default all three")
    p.add_argument("--depths", default="1,2", help="comma-separated depths: 1 holds out each family's largest "
                                                    "level, 2 its two largest (default 1,2)")
    _sampling_args(p, draws=1000, tune=1000)
    p.add_argument("--json", action="store_true", help="print the summary and every task as JSON")
    p.add_argument("--out", type=Path, default=None, help="also write an HTML report (with the calibration plot) "
                                                          "into this folder")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("grid", help="run an experiment grid of fits (held-out family x k x fraction x early "
                                    "cut x prior) on a dask cluster; resumable")
    p.add_argument("config", type=Path, help="grid config, .toml or .yaml (see bayes_scaling.grid.config)")
    p.add_argument("--out", required=True, type=Path, help="results NetCDF, rewritten after every cell; "
                                                            "an existing one from the same config is resumed")
    p.add_argument("--scheduler", default=None,
                   help="tcp://HOST:PORT of a running dask scheduler, or a scheduler file (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--restart", action="store_true", help="discard the results at --out and start over")
    p.add_argument("--figures", type=Path, default=None, help="write ARE heatmaps into this folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("cache", help="list (or --clear) the compiled models kept on disk for later processes")
    p.add_argument("--clear", action="store_true", help="remove them: the next fit of each structure compiles again")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("demo", help="fit a bundled real dataset and write a report")
    p.add_argument("--out", default=Path("demo_output"), type=Path)
    p.add_argument("--dataset", default="porian", choices=["porian", "opt"])
    p.add_argument("--families", default=None,
                   help="comma-separated families to fit, or 'all' (default for porian: its four RefinedWeb "
                        "validation-loss recipes, to keep the demo near a minute on 2 cores)")
    _sampling_args(p, draws=1000, tune=1000)
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
    except (BayesScalingError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
