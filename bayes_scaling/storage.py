"""NetCDF files of fits and priors: one writer, one InferenceData reader, and :func:`file_kind`, the one place that
tells the kinds of file apart by the mark each writer leaves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import FitFileError
from .interrupts import check as check_interrupt

#: the ``kind`` attribute of a population prior's dataset
PRIOR_KIND = "bayes_scaling.population_prior"
#: the posterior group's attribute that marks each kind of fit (it holds the fit's spec or metadata)
FIT_MARKS = {"downstream fit": "bayes_scaling_downstream", "fit": "bayes_scaling_spec",
             "mixing fit": "bayes_scaling_mixing"}


def write_netcdf(obj: Any, path: str | os.PathLike) -> Path:
    """Write an InferenceData or xarray Dataset to ``path`` (parent folders created); return the path.

    Atomic: the file is written beside ``path`` and renamed over it, so a crash or kill while writing
    leaves the previous file whole (the experiment grid rewrites its results after every cell).
    """
    with _replacing(path) as tmp:
        obj.to_netcdf(str(tmp))
    return Path(path)


def write_atomically(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` whole or not at all (a temporary file beside
    it, then renamed over it): an interrupted write leaves the earlier file as it was."""
    with _replacing(path) as tmp:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return Path(path)


@contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (parent folders created) that replaces ``path`` when the block ends
    without an error, and is removed in any case."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        check_interrupt()  # a Ctrl-C swallowed before or during the write leaves the earlier file as it was
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_idata(path: str | os.PathLike, what: str = "fit"):
    """Read an InferenceData fully into memory; a missing file raises FileNotFoundError, a bad one FitFileError."""
    import arviz as az

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} file at {path}")
    try:
        idata = az.from_netcdf(str(path))
        idata.load() if hasattr(idata, "load") else None
    except Exception as exc:  # noqa: BLE001 - any reader error means the same thing to the user
        raise FitFileError(f"{path} is not a readable NetCDF {what}: {exc}") from exc
    return idata


def file_kind(path: str | os.PathLike) -> str:
    """``"prior"``, ``"fit"``, ``"mixing fit"`` or ``"downstream fit"``: what a file bayes_scaling wrote holds.

    A downstream fit also stores its step-1 loss fit, in groups of their own; its own mark decides."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"{path}: no such file")
    try:
        with xr.open_dataset(path) as ds:
            if ds.attrs.get("kind") == PRIOR_KIND:
                return "prior"
        with xr.open_dataset(path, group="posterior") as post:
            marks = set(post.attrs)
    except (OSError, ValueError, KeyError) as exc:
        raise FitFileError(f"{path} is not a readable file bayes_scaling wrote (no population prior, and no posterior "
                           f"group it can read: {type(exc).__name__}: {exc}); write it again with bayes-scaling "
                           "fit or prior") from None
    for kind, mark in FIT_MARKS.items():
        if mark in marks:
            return kind
    raise FitFileError(f"{path} has a posterior but was not written by bayes_scaling (it is not a fit, a prior, a "
                       "mixing fit or a downstream fit)")
