"""The grid's results as an xarray Dataset with one dimension per axis, saved to NetCDF after every cell.

Variables: each score of :data:`~.cells.SCORES` (float, NaN until the cell is done or where it does
not apply) and ``status`` (``""`` until done, then ``"ok"``, ``"not applicable: ..."`` or
``"failed: ..."``). Attributes: the config (JSON) and its fingerprint, the dataset's source, and the
population priors' sources. A results file is only resumed by the config that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..errors import GridResultsMismatchError
from ..storage import write_netcdf
from .cells import SCORES
from .config import AXES, GridConfig

KIND = "bayes_scaling.grid_results"


def empty_results(config: GridConfig, axes: Mapping[str, tuple], source: str = "") -> xr.Dataset:
    """A results Dataset with every cell pending."""
    coords = {a: list(axes[a]) for a in AXES}
    shape = tuple(len(axes[a]) for a in AXES)
    data_vars = {s: (AXES, np.full(shape, np.nan)) for s in SCORES}
    data_vars["status"] = (AXES, np.full(shape, "", dtype=object))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(kind=KIND, config=json.dumps(config.to_dict()), fingerprint=config.fingerprint(),
                    dataset_source=source, populations="{}")
    return ds


def load_results(path: str | Path) -> xr.Dataset:
    """Read a results file fully into memory (the file is closed again)."""
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    if ds.attrs.get("kind") != KIND:
        raise GridResultsMismatchError(f"{path} is not a bayes_scaling grid results file")
    ds["status"] = ds["status"].astype(object).fillna("")
    return ds


def open_or_create(path: str | Path, config: GridConfig, axes: Mapping[str, tuple], source: str = "",
                   restart: bool = False) -> xr.Dataset:
    """The results to continue: the file at ``path`` when it was made by the same config, else new ones."""
    path = Path(path)
    if path.exists() and not restart:
        ds = load_results(path)
        if ds.attrs.get("fingerprint") != config.fingerprint():
            raise GridResultsMismatchError(
                f"{path} was written by a different grid config (fingerprint {ds.attrs.get('fingerprint')} vs "
                f"{config.fingerprint()}); write to a new --out, or pass --restart to discard it")
        return ds
    return empty_results(config, axes, source)


def is_done(ds: xr.Dataset, cell: Mapping[str, Any]) -> bool:
    return bool(ds["status"].sel(cell).item())


def record(ds: xr.Dataset, cell: Mapping[str, Any], scores: Mapping[str, Any]) -> None:
    """Write one cell's scores into ``ds`` (in place)."""
    for s in SCORES:
        ds[s].loc[cell] = float(scores.get(s, np.nan))
    ds["status"].loc[cell] = str(scores["status"])


def save(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically (the old file stays whole if this is interrupted)."""
    return write_netcdf(ds, path)


def counts(ds: xr.Dataset) -> dict[str, int]:
    """How many cells are pending, ok, not applicable and failed."""
    st = ds["status"].to_numpy().ravel().astype(str)
    return {"cells": int(st.size), "pending": int((st == "").sum()), "ok": int((st == "ok").sum()),
            "not_applicable": int(np.char.startswith(st, "not applicable").sum()),
            "failed": int(np.char.startswith(st, "failed").sum())}


def tidy(ds: xr.Dataset) -> "Any":
    """The finished cells as a pandas DataFrame, one row per cell."""
    df = ds.to_dataframe().reset_index()
    return df[df["status"].astype(str) != ""].reset_index(drop=True)
