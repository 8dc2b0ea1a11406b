"""What the command line says: help formatting, errors and warnings in its own words (flags, not keyword arguments), each warning once, and progress."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time



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
_FLAG_NAMES = ("loss_kind", "new_family", "target_accept", "until_converged", "min_tokens", "checkpoint_noise",
               "link_checkpoints")


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
