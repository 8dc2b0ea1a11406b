"""NetCDF files of fits and priors: one writer and one InferenceData reader for every saved object."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import FitFileError


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
