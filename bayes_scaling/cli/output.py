"""Where the command line writes: output paths checked before any work, files written whole, tables printed as text or JSON."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from ..errors import OutputPathError

from .values import _clean


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


def _interval_words(interval: float) -> str:
    return f"median [{interval:.0%} central interval]"


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
