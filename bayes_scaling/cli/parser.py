"""The ``bayes-scaling`` parser: every command, its flags and its example."""

from __future__ import annotations

import argparse
from pathlib import Path

from .commands import cmd_backtest, cmd_cache, cmd_demo, cmd_downstream_fit, cmd_downstream_predict, cmd_downstream_report, cmd_fit, cmd_grid, cmd_mixing, cmd_predict, cmd_report, cmd_summary
from .messages import _Formatter
from .options import _csv_columns, _data_args, _downstream_question, _fit_question, _output_args, _sampling_args, _subcommand, _target_size_args
from .questions import cmd_compare, cmd_growth_timing, cmd_optimal, cmd_plan, cmd_prior, cmd_speedup
from .values import INTERVAL, _count, _fraction, _interval, _link_checkpoints, _plan_target, _positive_float, _target, _treatment


_DATA_EXAMPLE = "runs.csv --family data --params params --tokens tokens --loss val_loss --run id"


_TASKS_EXAMPLE = ("tasks.csv --family family --run run --params params --tokens tokens --task task --accuracy accuracy "
                  "--chance chance --task-loss task_bpb")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bayes-scaling", formatter_class=_Formatter,
        description="Bayesian hierarchical scaling laws: fit L(N, D) = E + A/N^alpha + B/D^beta to a zoo of "
                    "model families with partial pooling, then predict large runs with intervals you can check. "
                    f"Every interval printed is a central posterior interval ({INTERVAL:.0%} unless --interval "
                    "says otherwise); sizes and tokens are plain counts (7e9, not 7B).",
        epilog="examples:\n  bayes-scaling demo --out demo_output\n  bayes-scaling fit " + _DATA_EXAMPLE
               + " --out fit.nc\n  bayes-scaling predict fit.nc --family c4 --params 7e9 --tokens 2e12\n"
               "  bayes-scaling report fit.nc --target family=c4,params=7e9,tokens=2e12 --out report/")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _subcommand(sub, "fit", "fit a CSV of runs and write FIT.nc", "bayes-scaling fit " + _DATA_EXAMPLE
                    + " --out fit.nc")
    _data_args(p)
    p.add_argument("--borrow", default=None, metavar="FILE|published",
                   help="FIT.nc or PRIOR.nc: fit one new family with that population prior; 'published': the prior "
                        "shipped with the package, fitted on every public zoo it bundles (the loss level is left "
                        "to this family's data)")
    p.add_argument("--treatment", type=_treatment, action="append", default=[], metavar="TREATED=TWIN",
                   help="the treated family (e.g. grown by stacking) is its twin plus a shift (repeatable)")
    _sampling_args(p)
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="where to write the fit (NetCDF); checked before sampling")
    p.set_defaults(func=cmd_fit)

    p = _subcommand(sub, "prior", "extract the population prior of a fit, or use the published prior",
                    "bayes-scaling prior zoo.nc --out population.nc\n  bayes-scaling prior published --describe\n"
                    "  bayes-scaling prior published --rebuild --out published.nc")
    p.add_argument("source", metavar="FIT|published",
                   help="a fit of several families (FIT.nc), or 'published': the prior shipped with the package, "
                        "fitted on every public zoo it bundles")
    p.add_argument("--describe", action="store_true",
                   help="print what the prior holds: its parameters, noise and, for the published prior, the "
                        "families it was fitted on")
    p.add_argument("--rebuild", action="store_true",
                   help="with 'published': fit the bundled zoos again (minutes) and write the prior to --out")
    p.add_argument("--without", action="append", default=[], metavar="ZOO",
                   help="with --rebuild: leave this zoo out (repeatable; colpret, porian, gemstone, olmo_ladder)")
    p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED",
                   help="seed of a rebuild, or of the draws and calibration of a fit's prior")
    p.add_argument("--draws", type=_count(1), default=4000, metavar="N", help="draws kept in the prior")
    p.add_argument("--population", default=None, metavar="{blend,model,families,mixture}",
                   help="what a new family is like: a Polya-urn blend of the model's population and the fitted "
                        "families (default), the model's population alone, the fitted families alone, or the urn "
                        "kept as a mixture that a borrowed fit averages by evidence (a fit per component)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="with FIT.nc: keep the fitted population's spread and discrepancy instead of calibrating them "
                        "on the fit's own families (each borrowing from the rest; a minute or two)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="where to write the prior (NetCDF)")
    p.set_defaults(func=cmd_prior)

    p = _fit_question(sub, "predict", "posterior predictive loss of one run at one size and token count",
                      cmd_predict, "bayes-scaling predict fit.nc --family c4 --params 7e9 --tokens 2e12",
                      {"family": "the family to predict (a fitted one, or a new one with --new-family)"})
    p.add_argument("--new-family", action="store_true",
                   help="--family names a family the fit has not seen: draw it from the population of families")
    p.add_argument("--unique-tokens", type=_positive_float, default=None, metavar="U",
                   help="distinct tokens the run sees (a fit with --law data_constrained needs it; epochs = D / U, "
                        "which a fit of data with --unique-tokens measures beyond its data whatever the law)")

    p = _subcommand(sub, "plan", "plan the next runs: which small models to train to predict a target within an "
                                 "accuracy at the least compute",
                    "bayes-scaling plan fit.nc --family c4 --target params=7e9,tokens=2e12 --budget 1e21")
    p.add_argument("posterior", type=Path, help="FIT.nc (a fitted family, or a new one) or PRIOR.nc (nothing trained)")
    p.add_argument("--target", type=_plan_target, required=True, metavar="params=N,tokens=D[,flops=C]",
                   help="the run whose loss is to be predicted (plain counts)")
    p.add_argument("--family", default=None, help="the family of the target (default: the fit's only family)")
    p.add_argument("--new-family", action="store_true",
                   help="--family names a family the fit has not seen: plan from the population of families")
    p.add_argument("--budget", type=_positive_float, required=True, metavar="FLOPS",
                   help="FLOPs available for the planned runs")
    p.add_argument("--candidates", type=Path, default=None, metavar="CSV",
                   help="CSV of candidate runs (params, tokens; optional flops, checkpoints, label); "
                        "default: 10 sizes x 5 token budgets")
    p.add_argument("--accuracy", type=_interval, default=0.04, metavar="ARE", help="expected ARE wanted")
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central predictive interval planned for")
    p.add_argument("--checkpoints", type=_count(1), default=10, metavar="N",
                   help="checkpoints used per run (evenly spaced)")
    p.add_argument("--min-tokens", type=_positive_float, default=None, metavar="TOKENS",
                   help="checkpoints before this many tokens are not used; default: all are")
    p.add_argument("--fantasies", type=_count(1), default=256, metavar="N",
                   help="simulated outcomes per candidate")
    p.add_argument("--method", default="laplace", choices=["laplace", "importance"],
                   help="how a simulated outcome updates the posterior")
    p.add_argument("--spend-budget", action="store_true",
                   help="keep planning after the accuracy is expected to be reached, up to the budget")
    p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED", help="seed of the simulations")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_plan)

    p = _subcommand(sub, "summary", "diagnostics and parameters of a fit", "bayes-scaling summary fit.nc")
    p.add_argument("fit", type=Path, help="a fit written by bayes-scaling fit (FIT.nc)")
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central posterior intervals printed")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_summary)

    p = _subcommand(sub, "report", "write a self-contained HTML report of a fit that opens with the answer",
                    "bayes-scaling report fit.nc --target family=c4,params=7e9,tokens=2e12 --out report/")
    p.add_argument("fit", type=Path, help="a fit written by bayes-scaling fit (FIT.nc)")
    p.add_argument("--target", type=_target, action="append", default=[],
                   metavar="family=NAME,params=N,tokens=D[,new_family=yes]",
                   help="a run to predict (repeatable); new_family=yes for a family the fit has not seen")
    p.add_argument("--budget", type=_positive_float, action="append", default=[], metavar="FLOPS",
                   help="FLOPs for the compute-optimal frontier (repeatable); default: the data's compute to 1000x")
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central intervals in the report")
    p.add_argument("--title", default=None, help="the report's title")
    p.add_argument("--markdown", action="store_true", help="also write report.md with figures/*.png")
    p.add_argument("--out", required=True, type=Path, metavar="FOLDER", help="folder to write report.html into")
    p.set_defaults(func=cmd_report)

    p = _fit_question(sub, "optimal", "compute-optimal N*, D* and tokens per parameter at FLOPs budgets",
                      cmd_optimal, "bayes-scaling optimal fit.nc --family c4 --budget 1e22 --budget 1e23", sizes=False)
    p.add_argument("--budget", type=_positive_float, action="append", required=True, metavar="FLOPS",
                   help="training compute in FLOPs (repeatable)")
    p.add_argument("--family", default=None, help="a fitted family (default: the fit's only family)")
    p.add_argument("--new-family", action="store_true",
                   help="--family names a family the fit has not seen: draw it from the population of families")

    _fit_question(sub, "compare", "recipe A vs B: loss difference at a target and P(A beats B)", cmd_compare,
                  "bayes-scaling compare fit.nc --a recipe-a --b recipe-b --params 7e9 --tokens 2e12",
                  {"a": "family A (fitted)", "b": "family B (fitted)"})

    p = _fit_question(sub, "speedup", "model growth: D_scratch(L) / D_grown(L) - 1 at size N", cmd_speedup,
                      "bayes-scaling speedup fit.nc --grown 7b-stacked --scratch 7b-scratch --params 7e9 --tokens 3e11",
                      {"grown": "the grown family (fitted)", "scratch": "its from-scratch twin (fitted)"},
                      sizes=False, seed=False)
    p.add_argument("--params", required=True, type=_positive_float, metavar="N",
                   help="model size in parameters (plain count)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--tokens", type=_positive_float, metavar="D",
                        help="the target loss is the scratch model's after these tokens")
    target.add_argument("--loss", type=_positive_float, metavar="NATS", help="the target loss")

    p = _subcommand(sub, "growth-timing", "G_stack: tokens to train the small model before growing it",
                    "bayes-scaling growth-timing --params 7e9 --tokens 3e11")
    _target_size_args(p)
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central interval printed")
    p.add_argument("--data", type=Path, default=None, metavar="CSV",
                   help="CSV of your own growth experiments (one row per target: size, tokens, best growth tokens)")
    p.add_argument("--params-column", default="params", metavar="COLUMN", help="column of sizes in --data")
    p.add_argument("--tokens-column", default="tokens", metavar="COLUMN", help="column of tokens in --data")
    p.add_argument("--growth-tokens-column", default="growth_tokens", metavar="COLUMN",
                   help="column of the best growth tokens in --data")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_growth_timing)

    p = _subcommand(sub, "mixing", "BiMix data-mixing law: fit per-domain losses of several mixtures, predict "
                                   "others, optimise the mixture",
                    "bayes-scaling mixing losses.csv proportions.csv --predict DoReMi --out mixing/")
    p.add_argument("losses", type=Path, help="CSV: mixture, domain, step, and the loss column")
    p.add_argument("proportions", type=Path, help="CSV: mixture, domain, and the share column")
    p.add_argument("--loss-column", default="val_loss", metavar="COLUMN", help="loss column of LOSSES (nats)")
    p.add_argument("--share-column", default="proportion", metavar="COLUMN",
                   help="share column of PROPORTIONS (fractions summing to 1 per mixture)")
    p.add_argument("--train", default=None, metavar="NAMES", help="comma-separated mixtures to fit; default: all")
    p.add_argument("--predict", default=None, metavar="NAMES",
                   help="comma-separated mixtures to predict (held out or not)")
    p.add_argument("--optimize-step", type=_positive_float, default=None, metavar="STEP",
                   help="optimise the mixture for this training step")
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central predictive intervals")
    p.add_argument("--draws", type=_count(1), default=1000, metavar="N", help="posterior draws per chain")
    p.add_argument("--tune", type=_count(0), default=1000, metavar="N", help="tuning steps per chain")
    p.add_argument("--chains", type=_count(1), default=4, metavar="N", help="Markov chains")
    p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED", help="seed of the sampler")
    p.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"],
                   help="NUTS implementation; auto: nutpie when installed")
    p.add_argument("--no-extrapolation", action="store_true", help="no share-extrapolation term")
    p.add_argument("--likelihood", default="normal", choices=["normal", "student_t"],
                   help="a run's deviation from the law: normal, or heavy-tailed student_t")
    p.add_argument("--out", required=True, type=Path, metavar="FOLDER", help="folder for the fit and summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_mixing)

    p = _subcommand(
        sub, "backtest", "how far this zoo's forecasts can be trusted: nested hold-outs in every direction, ours "
                         "beside point fits", "bayes-scaling backtest " + _DATA_EXAMPLE + " --out backtest/",
        description="Hold out each family's largest compute budgets, model sizes and tokens-per-parameter levels "
                    "(1, then 2 deep), fit the rest, and score the held-out runs: ARE, 50% and 90% coverage, "
                    "interval width, for bayes_scaling and per-family Huber, fixed-N-term and variable-projection "
                    "fits.")
    _data_args(p)
    p.add_argument("--directions", default="flops,params,ratio,epochs",  # bayes_scaling.data.extent.DIRECTIONS
                   help="comma-separated directions to hold out along: flops (compute budgets), params (model "
                        "sizes), ratio (tokens per parameter), epochs (passes over the unique tokens, where "
                        "--unique-tokens is given)")
    p.add_argument("--depths", default="1,2", help="comma-separated depths: 1 holds out each family's largest "
                                                    "level, 2 its two largest")
    _sampling_args(p)
    p.add_argument("--json", action="store_true", help="print the summary and every task as JSON")
    p.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                   help="also write an HTML report (with the calibration plot) into this folder")
    p.set_defaults(func=cmd_backtest)

    p = _subcommand(sub, "grid", "run an experiment grid of fits (held-out family x k x fraction x early cut x "
                                 "prior) on a dask cluster; resumable",
                    "bayes-scaling grid grid.toml --out results.nc --figures figures/")
    p.add_argument("config", type=Path, help="grid config, .toml or .yaml (see bayes_scaling.grid.config)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="results NetCDF, rewritten after every cell; an existing one from the same config is resumed")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="tcp://HOST:PORT of a running dask scheduler, or a scheduler file; default: a LocalCluster")
    p.add_argument("--workers", type=_count(1), default=None, metavar="N",
                   help="LocalCluster worker processes; default: one per core")
    p.add_argument("--restart", action="store_true", help="discard the results at --out and start over")
    p.add_argument("--figures", type=Path, default=None, metavar="FOLDER", help="write ARE heatmaps into this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (same as --quiet)")
    p.set_defaults(func=cmd_grid)

    p = _subcommand(sub, "downstream", "forecast task accuracy in two steps: size and tokens -> task loss -> "
                                       "accuracy", "bayes-scaling downstream fit " + _TASKS_EXAMPLE + " --out tasks.nc")
    dsub = p.add_subparsers(dest="downstream_command", required=True, metavar="STEP")
    p = _subcommand(dsub, "fit", "fit a CSV of task evaluations (one row per checkpoint and task) and write FIT.nc",
                    "bayes-scaling downstream fit " + _TASKS_EXAMPLE + " --out tasks.nc")
    g = _csv_columns(p, "checkpoint and task")
    g.add_argument("--run", required=True, metavar="COLUMN", help="column of run ids (one training run each)")
    g.add_argument("--task", required=True, metavar="COLUMN",
                   help="column of task names (a task evaluated on two splits is two tasks: 'arc_easy/test')")
    g.add_argument("--accuracy", required=True, metavar="COLUMN", help="column of accuracies, shares in [0, 1]")
    g.add_argument("--chance", required=True, metavar="COLUMN",
                   help="column of each task's random-guess accuracy (0.25 for four choices)")
    g.add_argument("--task-loss", default=None, metavar="COLUMN",
                   help="column of the task loss (bits per byte of the right answer, or cross-entropy over the "
                        "choices); without it the first step is a latent law fitted from the accuracies")
    p.add_argument("--method", default="two_step", choices=["two_step", "direct"],
                   help="two_step: (N, D) -> task loss -> accuracy; direct: accuracy against compute 6ND")
    p.add_argument("--law-tail", type=_fraction, default=0.1, metavar="SHARE",
                   help="the task-loss law is fitted on each run's checkpoints in its last SHARE of tokens")
    p.add_argument("--burn", type=_fraction, default=0.1, metavar="SHARE",
                   help="the accuracy link ignores each run's checkpoints in its first SHARE of tokens")
    p.add_argument("--link-checkpoints", type=_link_checkpoints, default="auto", metavar="N",
                   help="fit the accuracy link on at most N checkpoints of each run and task, evenly spread in log "
                        "tokens; 'all' for every one; 'auto' (default): every one with --task-loss or --method "
                        "direct, a thinned set for a latent task loss (the fit's notes say how many)")
    p.add_argument("--likelihood", default="normal", choices=["normal", "student_t", "auto"],
                   help="likelihood of the task-loss law")
    p.add_argument("--no-extrapolation", action="store_true",
                   help="no extrapolation-discrepancy term in the task-loss law (faster; intervals then leave out "
                        "the law's error beyond the data)")
    p.add_argument("--draws", type=_count(1), default=1000, metavar="N", help="draws per chain of each step")
    p.add_argument("--tune", type=_count(1), default=1000, metavar="N", help="tuning steps per chain")
    p.add_argument("--chains", type=_count(1), default=4, metavar="N", help="chains")
    p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED", help="sampler seed")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="where to write the fit (NetCDF); checked before sampling")
    p.set_defaults(func=cmd_downstream_fit)

    p = _downstream_question(dsub, "predict", "posterior predictive accuracy of one task at one size and token count",
                             "predict tasks.nc --family olmo2 --task hellaswag/val --params 13e9 --tokens 5e12 --json",
                             cmd_downstream_predict)
    p.add_argument("--family", required=True, help="the family to predict")
    p.add_argument("--task", required=True, help="the task to predict")
    _target_size_args(p)
    _output_args(p)
    p.add_argument("--new-family", action="store_true",
                   help="--family has no data on --task: draw its task-loss law from the population")

    p = _downstream_question(dsub, "report", "write the downstream report: accuracy against compute per task, the "
                             "targets", "report tasks.nc --target family=olmo2,params=13e9,tokens=5e12 --out "
                             "tasks_report/", cmd_downstream_report)
    p.add_argument("--target", type=_target, action="append", default=[],
                   metavar="family=NAME,params=N,tokens=D", help="a target run forecast on every task (repeatable)")
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS", help="mass of the intervals")
    p.add_argument("--out", required=True, type=Path, metavar="FOLDER", help="folder for report.html")

    p = _subcommand(sub, "cache", "list (or --clear) the compiled models kept on disk for later processes",
                    "bayes-scaling cache --clear")
    p.add_argument("--clear", action="store_true", help="remove them: the next fit of each structure compiles again")
    p.set_defaults(func=cmd_cache)

    p = _subcommand(sub, "demo", "fit a bundled real dataset and write a report",
                    "bayes-scaling demo --out demo_output")
    p.add_argument("--out", default=Path("demo_output"), type=Path, metavar="FOLDER",
                   help="folder for fit.nc and report.html")
    p.add_argument("--dataset", default="porian", choices=["porian", "opt"], help="which bundled dataset")
    p.add_argument("--families", default=None, metavar="NAMES",
                   help="comma-separated families to fit, or 'all'; default for porian: its four RefinedWeb "
                        "validation-loss recipes, to keep the demo near a minute on 2 cores")
    _sampling_args(p)
    p.set_defaults(func=cmd_demo)
    return ap
