"""The commands that fit and report: fit, backtest, predict, summary, report, demo, cache, grid, mixing, downstream."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .messages import _MESSAGES, _in_cli_words, _show_bar
from .options import _configs, _read_csv, _read_data
from .output import _check_out_file, _check_out_folder, _interval_words, _save
from .values import INTERVAL, _clean


def cmd_fit(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    _check_out_file(a.out)
    data = _read_data(a)
    fit = bs.fit(data, *_configs(a, treatments=dict(a.treatment)), borrow=a.borrow, min_tokens=a.min_tokens,
                 fraction=a.fraction)
    path = _save(fit, a.out, "fit")
    d = fit.diagnostics
    print(f"wrote {path}: {len(fit.spec.families)} families, {len(fit.spec.runs)} runs, {len(data)} rows; "
          f"divergences={d.divergences} max_rhat={d.max_rhat:.3f} min_ess_bulk={d.min_ess_bulk:.0f}")
    for p in d.problems:
        _MESSAGES.say(f"fit: {p}")
    for n in fit.notes():
        print(f"note: {_in_cli_words(n)}")
    return 0


def cmd_backtest(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.evaluate.backtest import backtest_markdown

    directions = [d.strip() for d in a.directions.split(",") if d.strip()]
    try:
        depths = [int(k) for k in a.depths.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--depths {a.depths!r}: give comma-separated positive integers, e.g. --depths 1,2") from None
    if a.out is not None:
        _check_out_folder(a.out)
    data = _read_data(a)
    model, sampler = _configs(a)
    say = logging.getLogger("bayes_scaling").info
    result = bs.backtest(data, directions=directions, depths=depths, model=model, sampler=sampler,
                         min_tokens=a.min_tokens, fraction=a.fraction, progress=lambda line: say("%s", line))
    print(result.to_json() if a.json else backtest_markdown(result))
    if a.out is not None:
        path = result.write_report(a.out, source=str(a.data))
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    fit = bs.open(a.fit, "fit")
    p = fit.predict(a.family, a.params, a.tokens, interval=a.interval, random_seed=a.random_seed,
                    inputs=None if a.unique_tokens is None else {"unique_tokens": a.unique_tokens},
                    new_family=a.new_family)
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
        print(f"{kind} {a.family}, N={a.params:.3g}, D={a.tokens:.3g}, {_interval_words(a.interval)}:\n"
              f"  one-run loss   {out['median']:.4f} [{out['lower']:.4f}, {out['upper']:.4f}]  "
              "(the run you will train: seed noise included)\n"
              f"  expected loss  {out['expected_median']:.4f} [{out['expected_lower']:.4f}, "
              f"{out['expected_upper']:.4f}]  (the configuration, without seed noise)")
    return 0


def cmd_downstream_fit(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    _check_out_file(a.out)
    frame = _read_csv(a.data, (a.family, a.run, a.task))
    data = bs.data.TaskData.from_frame(frame, family=a.family, run=a.run, params=a.params, tokens=a.tokens, task=a.task,
                                  accuracy=a.accuracy, chance=a.chance, task_loss=a.task_loss, source=str(a.data))
    law = {"extrapolation": None if a.no_extrapolation else "learn", "likelihood": a.likelihood}
    fit = bs.fit_downstream(data, method=a.method, law_tail=a.law_tail, burn=a.burn,
                            link_checkpoints=a.link_checkpoints, model=law,
                            sampler={"draws": a.draws, "tune": a.tune, "chains": a.chains,
                                     "random_seed": a.random_seed, "progressbar": _show_bar(a)})
    path = _save(fit, a.out, "downstream fit")
    print(f"wrote {path}: {len(fit.tasks)} task(s), {len(fit.families)} family(ies), {fit.kind} link")
    for n in fit.notes():
        print(f"note: {_in_cli_words(n)}")
    return 0


def cmd_downstream_predict(a: argparse.Namespace) -> int:
    import bayes_scaling as bs

    fit = bs.open(a.fit, "downstream fit")
    p = fit.predict(a.family, a.task, a.params, a.tokens, interval=a.interval, random_seed=a.random_seed,
                    new_family=a.new_family)
    out = {"task": a.task, "family": a.family, "params": a.params, "tokens": a.tokens,
           "median": float(p["median"][0]), "lower": float(p["lower"][0]), "upper": float(p["upper"][0]),
           "interval": a.interval, "expected_median": float(p["expected_median"][0]),
           "expected_lower": float(p["expected_lower"][0]), "expected_upper": float(p["expected_upper"][0]),
           "chance": p.attrs["chance"], "at_chance": bool(p.attrs["at_chance"])}
    if "task_loss_median" in p:
        out.update({f"task_loss_{k}": float(p[f"task_loss_{k}"][0]) for k in ("median", "lower", "upper")})
    if a.json:
        print(json.dumps(_clean(out)))
        return 0
    print(f"task {a.task}, family {a.family}, N={a.params:.3g}, D={a.tokens:.3g}, {_interval_words(a.interval)}:\n"
          f"  accuracy of one run  {out['median']:.3f} [{out['lower']:.3f}, {out['upper']:.3f}]  (chance "
          f"{out['chance']:.3g})")
    if "task_loss_median" in out:
        print(f"  task loss            {out['task_loss_median']:.4f} [{out['task_loss_lower']:.4f}, "
              f"{out['task_loss_upper']:.4f}]")
    if out["at_chance"]:
        print("  held at chance: the fitted data show no rise above chance on this task")
    return 0


def cmd_downstream_report(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report.downstream import write_downstream_report

    _check_out_folder(a.out)
    fit = bs.open(a.fit, "downstream fit")
    path = write_downstream_report(fit, a.out, targets=a.target, interval=a.interval, source=str(a.fit))
    print(f"wrote {path}")
    return 0


def cmd_cache(a: argparse.Namespace) -> int:
    from ..inference import compile_store

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

    s = bs.open(a.fit, "fit").summary(interval=a.interval)
    if a.json:
        print(json.dumps(_clean(s)))
    else:
        keys = ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "chains", "draws", "sampling_seconds")
        for k in keys:
            print(f"{k:>18}: {s[k]}")
        print(f"{'parameters':>18}: {_interval_words(a.interval)}")
        for name, v in s["parameters"].items():
            if name != "families" and v:
                print(f"{name:>18}: {v['median']:.4g} [{v['lower']:.4g}, {v['upper']:.4g}]")
        for n in s["notes"]:
            print(f"note: {_in_cli_words(n)}")
        for n in s["problems"]:
            print(f"problem: {_in_cli_words(n)}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report import write_report

    _check_out_folder(a.out)
    fit = bs.open(a.fit, "fit")
    formats = ("html", "md") if a.markdown else ("html",)
    path = write_report(fit, a.out, targets=a.target, title=a.title, interval=a.interval,
                        budgets=a.budget or None, formats=formats)
    print(f"report written to {path}" + (f" and {path.with_suffix('.md')}" if a.markdown else "")
          + f" ({_interval_words(a.interval)} throughout)")
    return 0


DEMO_PORIAN_FAMILIES = ["rw-base-long-kaplan-standard-val", "rw-base-short-chinchilla-standard-val",
                        "rw-base-short-kaplan-standard-val", "rw-tuned-short-const-standard-val"]


def cmd_demo(a: argparse.Namespace) -> int:
    import bayes_scaling as bs
    from bayes_scaling.report import write_report

    out = Path(a.out)
    _check_out_folder(out)
    data = bs.load_bundled(a.dataset)
    if a.families != "all":
        keep = data.families if a.families is None else a.families.split(",")
        if a.families is None and a.dataset == "porian":
            keep = DEMO_PORIAN_FAMILIES
        data = data.select_families(keep)
    print(f"fitting the bundled {a.dataset!r} data: {bs.data.BUNDLED[a.dataset]}")
    print(f"{len(data)} rows, {len(data.families)} families, {len(data.runs)} runs")
    fit = bs.fit(data, *_configs(a), min_tokens=a.min_tokens, fraction=a.fraction)
    fit_path = _save(fit, out / "fit.nc", "fit")
    run_table = data.run_table()
    big = run_table.sort_values("max_flops").iloc[-1]
    size = {"params": float(big["params"]) * 10, "tokens": float(big["max_tokens"]) * 10}
    targets = [{"family": big["family"], **size}, {"family": "a new family", "new_family": True, **size}]
    report = write_report(fit, out, targets=targets, title=f"bayes_scaling demo: {bs.data.BUNDLED[a.dataset]}")
    print(f"fit saved to {fit_path}")
    print(f"report written to {report} ({_interval_words(INTERVAL)} throughout)")
    return 0


def cmd_mixing(a: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    import bayes_scaling as bs

    from ..storage import write_atomically

    out = Path(a.out)
    _check_out_folder(out)
    data = bs.mixing.MixingData.from_frames(pd.read_csv(a.losses), pd.read_csv(a.proportions), loss=a.loss_column,
                                     share=a.share_column, source=f"{a.losses} + {a.proportions}")
    train = a.train.split(",") if a.train else data.mixtures
    fit = bs.mixing.fit_mixing(data.select(train), likelihood=a.likelihood, extrapolation=not a.no_extrapolation,
                        sampler={"draws": a.draws, "tune": a.tune, "chains": a.chains, "random_seed": a.random_seed,
                                 "engine": a.sampler})
    path = _save(fit, out / "mixing_fit.nc", "mixing fit")
    result: dict = {"fit": str(path), "diagnostics": fit.diagnostics.to_dict(), "extrapolation": fit.extrapolation,
                    "interval": a.interval}
    steps = np.sort(data.frame["step"].unique())
    if a.predict:
        names = a.predict.split(",")
        p = fit.predict(data.proportions().loc[names], steps, interval=a.interval).to_dataframe().reset_index()
        p["mixture"] = p["mixture"].astype(str)
        obs = data.frame[["mixture", "domain", "step", "loss"]]
        p = p.merge(obs, on=["mixture", "domain", "step"], how="left")
        write_atomically(out / "predictions.csv", p.to_csv(index=False))
        result["predictions"] = str(out / "predictions.csv")
        dist = fit.mixture_distance(data.proportions().loc[names])
        result["distance_from_trained"] = {n: float(d) for n, d in zip(names, dist)}
        if p["loss"].notna().any():
            re_ = (p["run_median"] - p["loss"]).abs() / p["loss"]
            inside = (p["loss"] >= p["run_lower"]) & (p["loss"] <= p["run_upper"])
            result["heldout"] = {"mean_relative_error": float(re_.mean()),
                                 f"coverage_{a.interval:g}": float(inside.mean())}
    if a.optimize_step:
        opt = bs.mixing.optimize_mixture(fit, a.optimize_step)
        result["optimal_mixture"] = {"step": a.optimize_step, "shares": opt.to_dict(),
                                     "average_loss": opt.attrs["objective"], "converged": opt.attrs["converged"],
                                     "distance_from_trained": float(fit.mixture_distance(opt)[0])}
    write_atomically(out / "mixing.json", json.dumps(_clean(result), indent=1))
    print(json.dumps(_clean(result)) if a.json else f"mixing fit saved to {path}; summary in {out / 'mixing.json'}")
    return 0


def cmd_grid(a: argparse.Namespace) -> int:
    from bayes_scaling.grid import GridConfig, GridRunError, counts, run_grid

    _check_out_file(a.out)
    config = GridConfig.load(a.config)
    try:
        ds = run_grid(config, a.out, scheduler=a.scheduler, workers=a.workers, restart=a.restart,
                      progress=not (a.no_progress or a.quiet))
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
