"""Types of the command line's arguments: each turns a flag's text into a value or says, in the flag's words, what is wrong."""

from __future__ import annotations

import argparse
import math



#: one interval convention for every command: central (equal-tailed) posterior intervals of this mass
INTERVAL = 0.9


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


def _link_checkpoints(text: str) -> int | str:
    if text in ("auto", "all"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 'all' or 'auto'") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 2 (a run's first and last checkpoints)")
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


def _treatment(text: str) -> tuple[str, str]:
    grown, sep, twin = text.partition("=")
    if not sep or not grown.strip() or not twin.strip():
        raise argparse.ArgumentTypeError(f"--treatment needs TREATED=TWIN (e.g. 7b-stacked=7b-scratch), got {text!r}")
    return grown.strip(), twin.strip()
