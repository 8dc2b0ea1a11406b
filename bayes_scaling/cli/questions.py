"""The commands that ask a fit or a prior a question: optimal, compare, speedup, growth-timing, plan, prior."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from ..errors import UsageError

from .output import _SUMMARY_LEGEND, _check_out_file, _print_table, _save
from .values import _clean


def cmd_optimal(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    fit = bs.open(a.fit, "fit")
    opt = bs.decisions.compute_optimal(fit, a.budget, family=a.family, new_family=a.new_family, random_seed=a.random_seed)
    table = bs.decisions.summarize(opt, interval=a.interval)
    _print_table(table, a.json, {"family": opt.attrs["family"], "new_family": bool(opt.attrs["new_family"]),
                                 "flops": opt.attrs["flops"], "interval": a.interval},
                 legend=_SUMMARY_LEGEND.format(interval=a.interval) + ".\nparams, tokens: the compute-optimal N* "
                 "and D*; loss: the fitted law's loss there; expected_loss: the same with the extrapolation "
                 "discrepancy beyond the data (what to plan on).")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    cmp = bs.decisions.compare(bs.open(a.fit, "fit"), a.a, a.b, a.params, a.tokens, random_seed=a.random_seed)
    table = bs.decisions.summarize(cmp[["expected_difference", "run_difference"]], interval=a.interval)
    extra = {"a": a.a, "b": a.b, "params": a.params, "tokens": a.tokens, "interval": a.interval,
             "p_a_better": float(cmp["p_a_better"].values[0]),
             "p_a_better_one_run": float(cmp["p_a_better_one_run"].values[0])}
    _print_table(table.drop(columns="target"), a.json, extra,
                 legend=_SUMMARY_LEGEND.format(interval=a.interval) + ". Differences are loss(a) - loss(b): "
                 "negative means a is better.")
    return 0


def cmd_speedup(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    sp = bs.decisions.growth_speedup(bs.open(a.fit, "fit"), a.grown, a.scratch, a.params, tokens=a.tokens, loss=a.loss)
    table = bs.decisions.summarize(sp, interval=a.interval)
    _print_table(table, a.json, {"grown": a.grown, "scratch": a.scratch, "params": a.params,
                                 "tokens": a.tokens, "loss": a.loss, "interval": a.interval},
                 legend=_SUMMARY_LEGEND.format(interval=a.interval) + ".")
    return 0


def cmd_growth_timing(a: argparse.Namespace) -> int:
    import pandas as pd

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
        print(f"grow after {out['growth_tokens'] / 1e9:.2f}B tokens ({a.interval:.0%} central interval "
              f"{out['lower'] / 1e9:.2f}B-{out['upper'] / 1e9:.2f}B), growth factor g = {out['growth_factor']} "
              f"[{source}]")
    return 0


def cmd_plan(a: argparse.Namespace) -> int:
    import pandas as pd

    import bayes_scaling as bs

    candidates = pd.read_csv(a.candidates) if a.candidates is not None else None
    p = bs.decisions.plan(a.posterior, a.target, a.budget, family=a.family, new_family=a.new_family, candidates=candidates,
                accuracy=a.accuracy, interval=a.interval, checkpoints=a.checkpoints, min_tokens=a.min_tokens,
                fantasies=a.fantasies, method=a.method, stop_at_accuracy=not a.spend_budget,
                random_seed=a.random_seed)
    if a.json:
        print(json.dumps(_clean(p.to_dict())))
    else:
        print(p.summary())
    return 0


def cmd_prior(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.model.population_prior import PUBLISHED

    published = a.source == PUBLISHED
    if a.without and not (published and a.rebuild):
        raise UsageError("--without ZOO leaves a zoo out of a rebuilt published prior: use it with "
                         "bayes-scaling prior published --rebuild --out FILE")
    if published and a.population is not None:
        raise UsageError("--population chooses how a fit's families become a prior; the published prior is "
                         "always its source fit's model population (drop --population)")
    if published and a.no_calibrate:
        raise UsageError("--no-calibrate keeps a fit's population spread uncalibrated; the published prior is "
                         "calibrated as it is built (drop --no-calibrate)")
    if a.out is None and not a.describe:
        raise UsageError("say where to write the prior (--out FILE), or print what it holds (--describe)")
    if a.out is not None:
        _check_out_file(a.out)
    if published and a.rebuild:
        from bayes_scaling.priors.published import build_published_prior

        prior = build_published_prior(exclude=a.without, random_seed=a.random_seed, draws=a.draws)
    elif a.rebuild:
        raise UsageError(f"--rebuild rebuilds the published prior: bayes-scaling prior published --rebuild --out FILE "
                         f"(got {a.source})")
    elif published:
        prior = bs.PopulationPrior.published()
    else:
        from ..storage import file_kind

        kw = {} if a.population is None else {"population": a.population}
        path = Path(a.source)
        opened = bs.open(path)
        if isinstance(opened, bs.PopulationPrior):
            if kw or a.no_calibrate:
                raise UsageError(f"{path} is a population prior already: --population and --no-calibrate choose how a "
                                 "fit's families become a prior (bayes-scaling prior FIT.nc --population ... --out "
                                 "PRIOR.nc)")
            prior = opened
        elif isinstance(opened, bs.inference.ScalingFit) and a.no_calibrate:
            prior = bs.PopulationPrior.from_fit(opened, draws=a.draws, random_seed=a.random_seed, **kw)
        elif isinstance(opened, bs.inference.ScalingFit):
            from bayes_scaling.priors import calibrated_prior

            prior = calibrated_prior(opened, draws=a.draws, random_seed=a.random_seed, **kw)
        else:
            raise UsageError(f"{path} is a {file_kind(path)}: bayes-scaling prior takes a fit of "
                             "the loss (bayes-scaling fit ... --out FIT.nc), a prior, or 'published'")
    if a.out is not None:
        path = _save(prior, a.out, "prior")
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {prior.describe()}")
    if a.describe:
        print(prior.summary())
    return 0
