"""Experiment grids on a dask LocalCluster: the meta-analysis grid, and its wall time with 1 and 2 workers.

    python benchmarks/grid.py --timing                  # benchmarks/grids/timing.toml with 1, then 2 workers
    python benchmarks/grid.py --config benchmarks/grids/colpret_meta.toml \
        --out benchmarks/results/grid_colpret_meta.nc --figures docs/figures/grid

``--timing`` runs the same grid from scratch once per worker count, one after the other in one
process, after an untimed warm-up run that fills PyTensor's compilation cache, and writes wall times and the cells' results agreement to benchmarks/results/grid_timing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bayes_scaling.grid import SCORES, GridConfig, counts, run_grid


def timing(config_path: str, workers: list[int], out: str) -> None:
    cfg = GridConfig.load(config_path)
    runs, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        # untimed warm-up: the first fits of a session compile the models' C code into PyTensor's disk
        # cache; without it whichever worker count runs first pays for that (measured: 3.1x "speedup")
        t0 = time.perf_counter()
        run_grid(cfg, Path(tmp) / "warmup.nc", workers=max(workers), progress=False)
        warmup = time.perf_counter() - t0
        for n in workers:
            t0 = time.perf_counter()
            ds = run_grid(cfg, Path(tmp) / f"w{n}.nc", workers=n, progress=False)
            wall = time.perf_counter() - t0
            results[n] = ds
            runs.append({"workers": n, "wall_seconds": wall, **counts(ds),
                         "sum_cell_seconds": float(np.nansum(ds["seconds"].to_numpy()))})
            print(f"{n} worker(s): {wall:.0f} s, {counts(ds)}")
    same = all(np.array_equal(results[workers[0]][s].to_numpy(), results[n][s].to_numpy(), equal_nan=True)
               for n in workers[1:] for s in SCORES if s != "seconds")
    res = {"command": f"python benchmarks/grid.py --timing --config {config_path}", "cores": os.cpu_count(),
           "config": cfg.to_dict(), "warmup_seconds": warmup, "runs": runs, "speedup": runs[0]["wall_seconds"] / runs[-1]["wall_seconds"],
           "identical_results": bool(same)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("runs", "speedup", "identical_results")}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="benchmarks/grids/timing.toml")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (timing: 1,2)")
    ap.add_argument("--figures", default=None)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    if a.timing:
        timing(a.config, [int(w) for w in (a.workers or "1,2").split(",")],
               a.out or "benchmarks/results/grid_timing.json")
        return
    ds = run_grid(GridConfig.load(a.config), a.out, workers=int(a.workers) if a.workers else None)
    if a.figures:
        from bayes_scaling.report.grid_figures import write_grid_figures

        print(write_grid_figures(ds, a.figures))


if __name__ == "__main__":
    main()
