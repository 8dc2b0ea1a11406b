"""The flags several commands share (the sampler's, the data's columns, the outputs) and the configurations they make."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .messages import _Formatter, _in_cli_words, _show_bar
from .values import INTERVAL, _count, _float, _fraction, _interval, _positive_float


#: ``bs.SamplerConfig()``'s settings, as the flags' defaults (written here so that ``--help`` loads no sampler;
#: a test holds them equal)
_SAMPLER_DEFAULTS = argparse.Namespace(draws=2000, tune=1000, chains=4, target_accept=0.98, until_converged=True,
                                       whiten="auto")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    default = _SAMPLER_DEFAULTS
    g = p.add_argument_group("model and sampler")
    g.add_argument("--law", default="chinchilla", choices=["chinchilla", "compute", "data_constrained"],
                   help="chinchilla: L = E + A/N^alpha + B/D^beta; compute: L = E + A/C^alpha; data_constrained: "
                        "Chinchilla at the effective data and size of repeated tokens (needs --unique-tokens)")
    g.add_argument("--min-tokens", type=_positive_float, default=None, metavar="TOKENS",
                   help="drop checkpoints before this many training tokens, e.g. 1e10 (the guide's cut); "
                        "default: keep all")
    g.add_argument("--fraction", type=_fraction, default=None, metavar="F",
                   help="keep only the first fraction F in (0, 1] of each run's checkpoints; default: all")
    g.add_argument("--draws", type=_count(1), default=default.draws, metavar="N",
                   help="posterior draws per chain: the budget, which --until-converged may double for a run on course "
                        "to pass the checks (exactly this many with --no-until-converged)")
    g.add_argument("--tune", type=_count(0), default=default.tune, metavar="N", help="tuning steps per chain")
    g.add_argument("--until-converged", action=argparse.BooleanOptionalAction, default=default.until_converged,
                   help="stop sampling as soon as the draws pass the R-hat and ESS checks (divergences are reported, "
                        "not waited on); --no-until-converged samples all --draws")
    g.add_argument("--chains", type=_count(1), default=default.chains, metavar="N",
                   help="Markov chains, all run at once (each in its own thread, the system sharing the cores)")
    g.add_argument("--target-accept", type=_float, default=default.target_accept, metavar="P",
                   help="NUTS target acceptance in [0.5, 1): higher takes smaller steps and diverges less; with "
                        "--whiten auto (the default) a run that diverged is sampled again at 0.995, then 0.999")
    g.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED", help="seed of the sampler")
    g.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"],
                   help="NUTS implementation; auto: nutpie when installed")
    g.add_argument("--backend", default="auto", choices=["auto", "numba", "jax"],
                   help="nutpie's compile backend; auto: JAX for a small OU model when installed, else numba")
    g.add_argument("--likelihood", default="normal", choices=["normal", "student_t", "auto"],
                   help="student_t: robust run likelihood that down-weights outlying runs and points; auto: normal, "
                        "refitted with student_t when some run is an outlier (the fit's notes name the runs)")
    g.add_argument("--checkpoint-noise", default="independent", choices=["independent", "ou"],
                   help="ou: checkpoint noise correlated along each run in log tokens (dense checkpoint curves)")
    g.add_argument("--discrepancy-tails", default="normal", choices=["normal", "choose"],
                   help="choose: the nested leave-out also chooses the discrepancy's shape, normal or a variance-gamma "
                        "of the same variance (narrower centre, longer tails), by how well each predicts its held-out "
                        "runs")
    g.add_argument("--discrepancy-pooling", default="none", choices=["none", "directions"],
                   help="directions: the discrepancy's scale is shared by the directions a prediction leaves the data "
                        "in (compute, size, tokens per parameter), partially pooled, so a direction few held-out runs "
                        "reach borrows the scale the others learned; none: a scale per direction")
    g.add_argument("--discrepancy-scale", default="reducible", choices=["reducible", "loss"],
                   help="loss: the discrepancy is a relative error of the whole loss, learned from the held-out runs' "
                        "log-loss residuals as they are (its size then does not rest on each family's fitted E); "
                        "reducible: of the loss above E; either keeps the expected loss above E")
    g.add_argument("--no-extrapolation", action="store_true",
                   help="no extrapolation-discrepancy term (intervals then leave out the law's error beyond the data)")
    g.add_argument("--whiten", default=default.whiten, choices=["auto", "fixed", "conditional", "none"],
                   help="how a centred family layer is whitened for sampling (the same posterior); auto: fixed, "
                        "switched to conditional when the draws show the population spread mixing too slowly (the "
                        "fit's notes say which and why); none: not whitened")


def _target_size_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, type=_positive_float, metavar="N",
                   help="target model size in parameters, a plain count (7e9 for 7B)")
    p.add_argument("--tokens", required=True, type=_positive_float, metavar="D",
                   help="target training tokens, a plain count (2e12 for 2T); compute C = 6 N D")


def _subcommand(sub, name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with its description, an example, and the options every subcommand has."""
    p = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                       epilog="example:\n  " + example, formatter_class=_Formatter)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages (warnings and errors still show)")
    return p


def _fit_question(sub, name: str, help: str, func, example: str, names: dict[str, str] | None = None, *,
                  sizes: bool = True, seed: bool = True) -> argparse.ArgumentParser:
    """A subcommand that asks a fitted model one question: FIT.nc, required names, target size, output."""
    p = _subcommand(sub, name, help, example)
    p.add_argument("fit", type=Path, help="a fit written by bayes-scaling fit (FIT.nc)")
    for n, text in (names or {}).items():
        p.add_argument(f"--{n}", required=True, help=text)
    if sizes:
        _target_size_args(p)
    _output_args(p, seed)
    p.set_defaults(func=func)
    return p


def _downstream_question(sub, name: str, help: str, example: str, func) -> argparse.ArgumentParser:
    """A ``downstream`` step that reads a downstream fit (FIT.nc)."""
    p = _subcommand(sub, name, help, "bayes-scaling downstream " + example)
    p.add_argument("fit", type=Path, help="a fit written by bayes-scaling downstream fit (FIT.nc)")
    p.set_defaults(func=func)
    return p


def _output_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    """--interval, --random-seed and --json of the commands that answer a question about a fit."""
    p.add_argument("--interval", type=_interval, default=INTERVAL, metavar="MASS",
                   help="mass of the central posterior intervals printed")
    if seed:
        p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED",
                       help="seed of the predictive draws")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _configs(a: argparse.Namespace, **model: object) -> tuple:
    """The model and sampler configurations the fit flags ask for (``model``: further model settings)."""
    from ..inference.config import SamplerConfig
    from ..model.config import ModelConfig

    return (ModelConfig(law=a.law, likelihood=a.likelihood, checkpoint_noise=a.checkpoint_noise,
                        extrapolation=None if a.no_extrapolation else "learn",
                        discrepancy_tails=a.discrepancy_tails, discrepancy_pooling=a.discrepancy_pooling,
                        discrepancy_scale=a.discrepancy_scale, **model),
            SamplerConfig(draws=a.draws, tune=a.tune, chains=a.chains, target_accept=a.target_accept,
                          random_seed=a.random_seed, until_converged=a.until_converged,
                          whiten=False if a.whiten == "none" else a.whiten,
                          engine=a.sampler, backend=a.backend, progressbar=_show_bar(a)))


def _csv_columns(p: argparse.ArgumentParser, rows: str) -> argparse._ArgumentGroup:
    """The CSV and the columns every command that reads runs names: family, size and tokens."""
    p.add_argument("data", type=Path, help=f"CSV with one row per {rows}")
    g = p.add_argument_group("data (column names of the CSV)")
    g.add_argument("--family", default=None, metavar="COLUMN",
                   help="column of family names (architecture, recipe, data set); default: one family")
    g.add_argument("--params", required=True, metavar="COLUMN", help="column of model sizes N, in parameters (counts)")
    g.add_argument("--tokens", required=True, metavar="COLUMN", help="column of training tokens D (counts)")
    return g


def _data_args(p: argparse.ArgumentParser) -> None:
    """The CSV and its columns, as ``fit`` and ``backtest`` read them."""
    g = _csv_columns(p, "checkpoint (or per run)")
    g.add_argument("--loss", required=True, metavar="COLUMN",
                   help="column of validation loss, a cross-entropy in nats per token (or see --loss-kind)")
    g.add_argument("--run", default=None, metavar="COLUMN",
                   help="column of run ids; default: one run per family and model size (rows of one size are "
                        "its checkpoints)")
    g.add_argument("--seed", default=None, metavar="COLUMN", help="column of seeds (repeated runs of one size)")
    g.add_argument("--flops", default=None, metavar="COLUMN", help="column of training FLOPs; default: 6 N D")
    g.add_argument("--unique-tokens", default=None, metavar="COLUMN",
                   help="column of distinct tokens seen (at most --tokens; tokens / unique tokens = epochs), read by "
                        "--law data_constrained")
    g.add_argument("--loss-kind", default="nats", choices=["nats", "perplexity"],
                   help="what the loss column holds; perplexity is converted with log")


def _read_csv(path: Path, name_columns: tuple[str | None, ...]):
    """The CSV at ``path``, its name columns (those given) read as written text ("1", not 1.0)."""
    import pandas as pd

    from ..errors import DataValidationError

    if not path.is_file():
        raise FileNotFoundError(f"no CSV at {path}")
    try:
        return pd.read_csv(path, dtype={c: str for c in name_columns if c is not None})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path} is not a readable CSV: {exc}") from None


def _read_data(a: argparse.Namespace):
    import bayes_scaling as bs

    frame = _read_csv(a.data, (a.family, a.run, a.seed))
    data = bs.ScalingData.from_frame(frame, family=a.family, params=a.params, tokens=a.tokens,
                                     loss=a.loss, run=a.run, seed=a.seed, flops=a.flops,
                                     unique_tokens=a.unique_tokens, loss_kind=a.loss_kind, source=str(a.data))
    for note in data.assumptions:
        logging.getLogger("bayes_scaling").info("assumed: %s", _in_cli_words(note))
    return data
