"""Run an experiment grid on a dask.distributed cluster, saving after every cell, resumable.

>>> from bayes_scaling.grid import GridConfig, run_grid
>>> ds = run_grid(GridConfig.load("grid.toml"), "results.nc", workers=2)       # doctest: +SKIP

Scheduling: the population fits that ``borrowed`` cells need (one per held-out family and
early-checkpoint cut) are submitted first, at a higher priority; each borrowed cell waits for its
prior, every other cell runs as soon as a worker is free. The data are scattered to the workers
once. The client writes each result into the results Dataset as it arrives and rewrites the NetCDF
file atomically, so an interrupted run loses at most the cells that were running. On the next run
with the same config, finished cells are skipped and finished population priors are read from the
cache folder ``RESULTS.nc.priors/`` instead of being refitted.

A cell whose fit cannot run (the filters leave nothing, k too large) is recorded with its reason and
not retried. A cell that dies for another reason (a worker lost, a bug) stays pending, is listed
loudly at the end (:class:`GridRunError`), and reruns next time.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import xarray as xr

from ..errors import BayesScalingError
from ..model import PopulationPrior
from . import store
from .cells import population_prior, run_cell
from .config import GridConfig


class GridRunError(BayesScalingError, RuntimeError):
    """Some cells raised an unexpected error; they stay pending and rerun when the grid is resumed."""


@contextmanager
def cluster_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A dask.distributed Client: to ``scheduler`` (``tcp://HOST:PORT`` or a scheduler file), else a LocalCluster
    of ``workers`` single-threaded worker processes (default: one per core)."""
    distributed = require_distributed()
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if scheduler:
        kwargs = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        with Client(**kwargs) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        yield client


def require_distributed() -> Any:
    """The ``distributed`` module, or an ImportError that says how to install the grid's optional extra."""
    try:
        import distributed
    except ImportError:
        raise ImportError("the experiment grid runs its cells on Dask, which is not installed: "
                          "pip install 'bayes_scaling[grid]' (dask and distributed)") from None
    return distributed


def _prior_key(heldout: str, min_tokens: float) -> str:
    return hashlib.sha256(f"{heldout}|{float(min_tokens)!r}".encode()).hexdigest()[:16]


def run_grid(config: GridConfig, out: str | Path, *, scheduler: str | None = None, workers: int | None = None,
             restart: bool = False, progress: bool = True,
             log: Callable[[str], None] | None = None) -> xr.Dataset:
    """Run every pending cell of ``config``; returns the results Dataset (also saved at ``out``)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out)
    data = config.load_data()
    axes = config.resolved_axes(data)
    ds = store.open_or_create(out, config, axes, data.source, restart=restart)
    store.save(ds, out)
    todo = [c for c in config.cells(axes) if not store.is_done(ds, c)]
    c0 = store.counts(ds)
    log(f"grid {out}: {c0['cells']} cells, {c0['cells'] - c0['pending']} already done, {len(todo)} to run")
    if not todo:
        return ds
    cache = Path(str(out) + ".priors")
    settings = config.fit
    t0 = time.perf_counter()
    errors: list[str] = []
    with cluster_client(scheduler, workers) as client:
        data_f = client.scatter(data, broadcast=True)
        priors: dict[tuple, Any] = {}
        fresh: dict[Any, tuple] = {}
        for c in todo:
            key = (c["heldout"], c["min_tokens"])
            if c["prior"] != "borrowed" or key in priors:
                continue
            path = cache / f"{_prior_key(*key)}.nc"
            if path.exists():
                priors[key] = client.scatter(PopulationPrior.load(path))
            else:
                fut = client.submit(population_prior, data_f, key[0], key[1], settings, pure=False, priority=10)
                priors[key], fresh[fut] = fut, key
        cells = {client.submit(run_cell, data_f, c, settings,
                               priors[(c["heldout"], c["min_tokens"])] if c["prior"] == "borrowed" else None,
                               pure=False): c for c in todo}
        as_completed = require_distributed().as_completed

        bar = _progress(len(todo), progress)
        for fut in as_completed(list(fresh) + list(cells)):
            if fut in fresh:
                key = fresh[fut]
                if fut.status == "finished":
                    fut.result().save(cache / f"{_prior_key(*key)}.nc")
                else:
                    errors.append(f"population fit without {key[0]} (min_tokens={key[1]:g}): {fut.exception()!r}")
                continue
            cell = cells[fut]
            try:
                scores = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported below; the cell stays pending
                errors.append(f"{cell}: {exc!r}")
                log(f"cell {cell} raised {exc!r}; it stays pending")
            else:
                store.record(ds, cell, scores)
                store.save(ds, out)
            bar.update(1)
        bar.close()
    c1 = store.counts(ds)
    log(f"grid {out}: ran {len(todo)} cells in {time.perf_counter() - t0:.0f} s; ok {c1['ok']}, not applicable "
        f"{c1['not_applicable']}, failed {c1['failed']}, pending {c1['pending']}")
    if errors:
        raise GridRunError(f"{len(errors)} task(s) raised and stay pending (rerun the same command to retry them):\n"
                           + "\n".join(errors[:20]))
    return ds


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="grid cells", unit="cell", disable=not enabled, file=sys.stderr)
