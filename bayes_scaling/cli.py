"""The ``bayes-scaling`` command: a thin layer over the library (no logic of its own).

The heavy libraries (PyMC, ArviZ, pandas) are imported inside the commands, so ``--help`` answers at once.
Errors end in one line in the command line's words and exit code 2; an interrupt ends in one line and exit
code 130, leaving every earlier output as it was (files are written whole or not at all).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .errors import OutputPathError, UsageError

#: one interval convention for every command: central (equal-tailed) posterior intervals of this mass
INTERVAL = 0.9


# ------------------------------------------------------------------ argument types (errors in flag words)
def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _count(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {least}")
        return value
    parse.__name__ = "whole number"
    return parse


def _fraction(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in (0, 1], e.g. 0.3 for the first 30% of each run")
    return value


def _interval(text: str) -> float:
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in (0, 1), e.g. 0.9 for a 90% interval")
    return value


def _key_values(text: str, flag: str, required: set[str], optional: set[str] = frozenset()) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}; unknown, repeated, empty or missing keys are errors."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: {part!r} is not KEY=VALUE")
        if key in out:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: {key} is given twice")
        if not value:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: {key} is empty")
        out[key] = value
    unknown = set(out) - required - set(optional)
    missing = required - set(out)
    if unknown or missing:
        keys = ",".join(f"{k}=.." for k in sorted(required)) + "".join(f"[,{k}=..]" for k in sorted(optional))
        raise argparse.ArgumentTypeError(
            f"{flag} {text!r}: " + "; ".join(([f"unknown {sorted(unknown)}"] if unknown else [])
                                             + ([f"missing {sorted(missing)}"] if missing else []))
            + f". Give {keys}")
    return out


_YES, _NO = ("yes", "true", "1"), ("no", "false", "0")


def _target(text: str) -> dict:
    """``family=NAME,params=N,tokens=D[,new_family=yes]`` -> dict."""
    out = _key_values(text, "--target", {"family", "params", "tokens"}, {"new_family"})
    target: dict = {"family": out["family"]}
    for key in ("params", "tokens"):
        try:
            target[key] = _positive_float(out[key])
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"--target {text!r}: {key} {exc}") from None
    flag = out.get("new_family", "no").lower()
    if flag not in _YES + _NO:
        raise argparse.ArgumentTypeError(f"--target {text!r}: new_family must be yes or no")
    target["new_family"] = flag in _YES
    return target


def _plan_target(text: str) -> dict:
    """``params=N,tokens=D[,flops=C]`` -> dict."""
    out = _key_values(text, "--target", {"params", "tokens"}, {"flops"})
    try:
        return {k: _positive_float(v) for k, v in out.items()}
    except argparse.ArgumentTypeError as exc:
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


# ------------------------------------------------------------------ talking to people
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and adds each option's default (where it has one) to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and action.option_strings and not action.required
                and default is not None and default is not False and default != []
                and default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _in_cli_words(text: str) -> str:
    """A library message in the command line's words: Python arguments become flags."""
    text = re.sub(r"ScalingData\.from_frame\([^)]*\)", "the column flags (--family, --params, --tokens, --loss, --run)",
                  text)
    text = re.sub(r"fit_downstream\([^)]*\)", "the column flags (--family, --run, --params, --tokens, --task, "
                  "--accuracy, --chance, --task-loss)", text)

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        option = "--" + name.replace("_", "-")
        if value is None or value == "True":
            return option
        return f"{option} {value.strip(chr(39) + chr(34))}"

    def settings(match: re.Match) -> str:  # sampler={'whiten': 'conditional'}: the flags of its settings
        pairs = re.findall(r"'(\w+)': ('[^']*'|[\w.+-]+)", match.group(1))
        return " ".join(flag(re.match(r"(\w+)=(.*)", f"{k}={v}")) for k, v in pairs)

    text = re.sub(r"\b(?:sampler|model)=\{([^}]*)\}", settings, text)
    value = r"=('[^']*'|\"[^\"]*\"|True|[\w.+-]+|\.\.\.)"
    # an argument with an underscore is a Python name wherever it appears; a plain word only before "="
    text = re.sub(rf"\b({'|'.join(_FLAG_NAMES)})\b(?:{value})?", flag, text)
    return re.sub(rf"(?<![\w.'\"-])({'|'.join(_FLAG_WORDS)}){value}", flag, text)


#: Python argument names the library's messages use that are flags of the command line
_FLAG_NAMES = ("loss_kind", "new_family", "target_accept", "until_converged", "min_tokens", "checkpoint_noise")
_FLAG_WORDS = ("whiten", "likelihood", "borrow", "fraction", "draws", "tune", "chains", "run", "family")


class _Messages:
    """Warnings said once each, on stderr, in the command line's words (``--quiet`` keeps them: they matter)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def say(self, text: str, kind: str = "warning") -> None:
        text = _in_cli_words(text)
        if text not in self.seen:
            self.seen.add(text)
            print(f"{kind}: {text}", file=sys.stderr, flush=True)

    def showwarning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.say(str(message))


_MESSAGES = _Messages()


def _progress(quiet: bool) -> None:
    """Phases of the work (compile, sampling, calibration fits, components) on stderr, unless quiet."""
    logger = logging.getLogger("bayes_scaling")
    logger.handlers.clear()
    if not quiet:
        handler = logging.StreamHandler(sys.stderr)
        start = time.perf_counter()

        class Elapsed(logging.Formatter):
            def format(self, record):
                return f"[{time.perf_counter() - start:6.1f} s] {record.getMessage()}"

        handler.setFormatter(Elapsed())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logger.propagate = False


def _show_bar(a: argparse.Namespace) -> bool:
    """nutpie's live progress bar (draws/s, divergences so far) when a person watches the terminal."""
    return not getattr(a, "quiet", False) and sys.stderr.isatty()


# ------------------------------------------------------------------ outputs: checked before any work
def _writable_folder(folder: Path, flag: str) -> None:
    """Raise unless ``folder`` exists as a folder we can write into, or can be created."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputPathError(f"{flag} {folder}: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {folder}: cannot write into {probe} (permission denied); choose a folder "
                              "you can write to")


def _check_out_file(path: Path, flag: str = "--out") -> None:
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'fit.nc'}")
    _writable_folder(path.parent if str(path.parent) else Path("."), flag)


def _check_out_folder(path: Path, flag: str = "--out") -> None:
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file; give a folder for the outputs")
    _writable_folder(path, flag)


def _save(obj, path: Path, what: str) -> Path:
    """Save a finished result; if that fails, save it to a fallback file and say where (never lose it)."""
    try:
        return obj.save(path)
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"bayes_scaling-{what}-{time.strftime('%Y%m%d-%H%M%S')}.nc"
        saved = obj.save(fallback)
        raise OutputPathError(f"could not write {path} ({exc}); the {what} was saved to {saved} instead") from None


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
                   help="the most posterior draws per chain (exactly this many with --no-until-converged)")
    g.add_argument("--tune", type=_count(0), default=default.tune, metavar="N", help="tuning steps per chain")
    g.add_argument("--until-converged", action=argparse.BooleanOptionalAction, default=default.until_converged,
                   help="stop sampling as soon as the draws pass the R-hat and ESS checks (divergences are reported, "
                        "not waited on); --no-until-converged samples all --draws")
    g.add_argument("--chains", type=_count(1), default=default.chains, metavar="N",
                   help="Markov chains, all run at once (each in its own thread, the system sharing the cores)")
    g.add_argument("--target-accept", type=_float, default=default.target_accept, metavar="P",
                   help="NUTS target acceptance in [0.5, 1): higher takes smaller steps and diverges less")
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
    from .inference.config import SamplerConfig
    from .model.config import ModelConfig

    return (ModelConfig(law=a.law, likelihood=a.likelihood, checkpoint_noise=a.checkpoint_noise,
                        extrapolation=None if a.no_extrapolation else "learn", **model),
            SamplerConfig(draws=a.draws, tune=a.tune, chains=a.chains, target_accept=a.target_accept,
                          random_seed=a.random_seed, until_converged=a.until_converged,
                          whiten=False if a.whiten == "none" else a.whiten,
                          engine=a.sampler, backend=a.backend, progressbar=_show_bar(a)))


def _interval_words(interval: float) -> str:
    return f"median [{interval:.0%} central interval]"


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

    from .errors import DataValidationError

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
    fit = bs.fit_downstream(data, method=a.method, law_tail=a.law_tail, burn=a.burn, model=law,
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

    from .storage import write_atomically

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


def _print_table(table, as_json: bool, extra: dict | None = None, legend: str = "") -> None:
    if as_json:
        print(json.dumps(_clean({**(extra or {}), "rows": json.loads(table.to_json(orient="records"))})))
    else:
        for k, v in (extra or {}).items():
            print(f"{k}: {v}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if legend:
            print(legend)


_SUMMARY_LEGEND = "median, lower, upper: {interval:.0%} central interval over the posterior draws; mean: their mean"


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


def _treatment(text: str) -> tuple[str, str]:
    grown, sep, twin = text.partition("=")
    if not sep or not grown.strip() or not twin.strip():
        raise argparse.ArgumentTypeError(f"--treatment needs TREATED=TWIN (e.g. 7b-stacked=7b-scratch), got {text!r}")
    return grown.strip(), twin.strip()


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
        from .storage import file_kind

        kw = {} if a.population is None else {"population": a.population}
        path = Path(a.source)
        opened = bs.open(path)
        if isinstance(opened, bs.PopulationPrior):
            if kw:
                raise UsageError(f"{path} is a population prior already: --population chooses how a fit's families "
                                 "become a prior (bayes-scaling prior FIT.nc --population ... --out PRIOR.nc)")
            prior = opened
        elif isinstance(opened, bs.inference.ScalingFit):
            prior = bs.PopulationPrior.from_fit(opened, draws=a.draws, **kw)
        else:
            raise UsageError(f"{path} is a {file_kind(path)}: bayes-scaling prior takes a fit of "
                             "the loss (bayes-scaling fit ... --out FIT.nc), a prior, or 'published'")
    if a.out is not None:
        path = _save(prior, a.out, "prior")
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {prior.describe()}")
    if a.describe:
        print(prior.summary())
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
    p.add_argument("--random-seed", type=_count(0), default=0, metavar="SEED", help="seed of a rebuild")
    p.add_argument("--draws", type=_count(1), default=4000, metavar="N", help="draws kept in the prior")
    p.add_argument("--population", default=None, metavar="{blend,model,families,mixture}",
                   help="what a new family is like: a Polya-urn blend of the model's population and the fitted "
                        "families (default), the model's population alone, the fitted families alone, or the urn "
                        "kept as a mixture that a borrowed fit averages by evidence (a fit per component)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="where to write the prior (NetCDF)")
    p.set_defaults(func=cmd_prior)

    p = _fit_question(sub, "predict", "posterior predictive loss of one run at one size and token count",
                      cmd_predict, "bayes-scaling predict fit.nc --family c4 --params 7e9 --tokens 2e12",
                      {"family": "the family to predict (a fitted one, or a new one with --new-family)"})
    p.add_argument("--new-family", action="store_true",
                   help="--family names a family the fit has not seen: draw it from the population of families")
    p.add_argument("--unique-tokens", type=_positive_float, default=None, metavar="U",
                   help="distinct tokens the run sees (a fit with --law data_constrained needs it; epochs = D / U)")

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
    p.add_argument("--directions", default="flops,params,ratio",  # bayes_scaling.data.extent.DIRECTIONS
                   help="comma-separated directions to hold out along: flops (compute budgets), params (model "
                        "sizes), ratio (tokens per parameter)")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _progress(getattr(args, "quiet", False))
    warnings.simplefilter("always")  # said once each by _MESSAGES, whatever the place that raised them
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    warnings.showwarning = _MESSAGES.showwarning
    _MESSAGES.seen.clear()
    from .errors import BayesScalingError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: stopped before finishing; files written earlier are as they were", file=sys.stderr)
        return 130
    except (BayesScalingError, FileNotFoundError, ValueError, PermissionError, IsADirectoryError) as exc:
        print(f"error: {_in_cli_words(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
