"""The default fit, cold: time to a converged posterior with no sampler options, beside the previous default.

Each fit runs in a new Python process with empty compile caches (``XDG_CACHE_HOME``, ``NUMBA_CACHE_DIR`` and
PyTensor's ``base_compiledir``, which holds its numba cache, pointed at a new temporary folder), so every figure
includes the imports, the data and every compile, as a fresh machine's first fit does. ``--pytensor-cache kept``
leaves PyTensor's own folder as it is: a later process on a machine that has compiled these operations before.
Per dataset, one process per configuration, in turn (never two at once):

``default``   ``bs.SamplerConfig()``: sampling until converged within 2,000 draws per chain, and the family
              layer's parameterisation chosen from the draws (``whiten="auto"``).
``previous``  the default before that: 1,000 draws per chain, no stop rule, the fixed whitening
              (``SamplerConfig(draws=1000, until_converged=False, whiten="fixed")``).

The model is the default but for ``extrapolation=None``: the learned discrepancy's calibration fits are fits
of the same kind on part of the data, a further cost that depends on the zoo's shape, not on the sampler.
``--model default`` fits the default model itself, calibration fits included (``bayes-scaling fit`` with no
options), and records each calibration fit's checks and how it was sampled; ``--tag`` labels the rows (to
run the same command with another version of the package on ``PYTHONPATH``, side by side).
Each process writes one JSON line: wall seconds from start to exit, the fit's own seconds (compile and
sampling, every run of the parameterisation choice included), the checks (divergences, R-hat, bulk and tail
ESS over the population parameters and noise scales), the parameterisation kept and every run tried, and the
posterior means and 90% widths of the population means (to compare the two configurations where both
converge).

Usage::

    .venv/bin/python benchmarks/default_fit.py --out benchmarks/results/default_fit.jsonl   # about 60 min
    .venv/bin/python benchmarks/default_fit.py --datasets kempner,synthetic40 --configs default --out /tmp/d.jsonl
    .venv/bin/python benchmarks/default_fit.py --datasets gemstone --configs default --model default \
        --pytensor-cache kept --out /tmp/d.jsonl   # the whole default fit, its calibration fits included
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: every real zoo in the shared data (dense checkpoint logs thinned to 12 per run, as the backtest does), the
#: four real sets pooled into one zoo of 36 families, and the guide's synthetic shape at three family counts
DATASETS = ("kempner", "porian", "colpret", "gemstone", "olmo", "datablations", "olmo_ladder", "misfitting",
            "synthetic10", "synthetic40", "pooled_real", "synthetic100")
CONFIGS = {"default": {}, "previous": {"draws": 1000, "until_converged": False, "whiten": "fixed"}}


def load(name: str):
    import bayes_scaling as bs
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs

    sys.path.insert(0, str(HERE))
    if name.startswith("synthetic"):  # the guide's shape: 6 sizes x 10 checkpoints per family, seed effects
        rng = np.random.default_rng(0)
        fams = simulate_family_parameters(int(name.removeprefix("synthetic")), rng)
        df = simulate_runs(fams, rng, sizes=(2e7, 5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=10)
        return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                         run="run", seed="seed", source=name)
    if name == "pooled_real":
        from sampling import pooled_real

        return pooled_real()
    if name == "colpret":
        from bayes_scaling.grid.config import DATASETS as GRID_DATASETS

        return GRID_DATASETS["colpret"]()
    from backtest import ZOOS

    return ZOOS[name]()


#: ``--model``: the model each fit samples
MODELS = {"none": {"extrapolation": None}, "default": {}}


def child(name: str, config: str, started: float, model: str = "none", tag: str | None = None) -> dict:
    """One fit in this (new) process; ``started``: when the parent launched it (wall time includes imports)."""
    import warnings

    import bayes_scaling as bs
    from bayes_scaling.errors import SamplingWarning

    data = load(name)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # the diagnostics are recorded below
        fit = bs.fit(data, MODELS[model], CONFIGS[config])
    t1 = time.time()
    d, info = fit.diagnostics, fit.sampler_info
    mu = fit.idata.posterior["mu"]
    q = mu.quantile([0.05, 0.95], dim=("chain", "draw"))
    choice = info.get("parameterisation") or {}
    splits = [r for r in fit.extrapolation.get("splits", []) if "inner_diagnostics" in r]
    calibration = {} if model == "none" else {
        "calibration_fits": len(splits),
        "calibration_converged": sum(not r["inner_diagnostics"]["problems"] for r in splits),
        "calibration_sampled": [{"split": f"{r['direction']} {r['depth']}", **r.get("inner_sampling", {}),
                                 "problems": r["inner_diagnostics"]["problems"]} for r in splits],
        "discrepancy": {k: v for k, v in fit.extrapolation.items()
                        if k.startswith(("kappa_", "drift_")) and isinstance(v, dict)}}
    return {"dataset": name, "config": config, "model": model, **({"tag": tag} if tag else {}),
            **calibration, "families": len(data.families), "rows": len(data),
            "pytensor_cache": os.environ.get("BAYES_SCALING_PYTENSOR_CACHE", "empty"),
            "wall_seconds": round(time.time() - started, 1), "fit_seconds": round(t1 - t0, 1),
            "compile_seconds": round(sum(t["compile_seconds"] for t in choice["tried"]) if choice
                                     else info["compile_seconds"], 1),
            "sampling_seconds": round(info.get("sampling_seconds_all_runs", info["sampling_seconds"]), 1),
            "draws_kept": info["draws"], "whitening": info.get("whitened"), "reason": choice.get("reason"),
            "tried": choice.get("tried"), "divergences": d.divergences, "max_rhat": round(d.max_rhat, 4),
            "min_ess_bulk": round(d.min_ess_bulk), "min_ess_tail": round(d.min_ess_tail), "converged": d.ok,
            "mu_mean": {str(p): round(float(v), 4) for p, v in zip(mu["param"].values, mu.mean(("chain", "draw")))},
            "mu_width90": {str(p): round(float(v), 4) for p, v in zip(mu["param"].values,
                                                                       q.sel(quantile=0.95) - q.sel(quantile=0.05))}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--configs", default="default,previous")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a fit counts as not converged")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, one per fit, appended")
    ap.add_argument("--pytensor-cache", choices=("empty", "kept"), default="empty",
                    help="PyTensor's numba cache: a new empty folder per fit (default), or the machine's own")
    ap.add_argument("--model", choices=tuple(MODELS), default="none",
                    help="none: extrapolation=None (default); default: the default model, calibration fits included")
    ap.add_argument("--tag", help="a label stored in each row (e.g. the version of the package on PYTHONPATH)")
    ap.add_argument("--child", nargs=3, metavar=("DATASET", "CONFIG", "STARTED"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        record = child(a.child[0], a.child[1], float(a.child[2]), a.model, a.tag)
        with open(a.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        return 0
    for name in a.datasets.split(","):
        for config in a.configs.split(","):
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "XDG_CACHE_HOME": cache, "NUMBA_CACHE_DIR": cache,
                       "BAYES_SCALING_PYTENSOR_CACHE": a.pytensor_cache}
                if a.pytensor_cache == "empty":
                    env["PYTENSOR_FLAGS"] = f"base_compiledir={cache}/pytensor"
                else:
                    env.pop("PYTENSOR_FLAGS", None)
                started = time.time()
                try:
                    subprocess.run([sys.executable, __file__, "--out", str(a.out), "--model", a.model,
                                    *(["--tag", a.tag] if a.tag else []), "--child", name, config, repr(started)],
                                   env=env, check=True, timeout=a.timeout)
                except subprocess.TimeoutExpired:
                    with open(a.out, "a") as fh:
                        fh.write(json.dumps({"dataset": name, "config": config, "model": a.model,
                                             **({"tag": a.tag} if a.tag else {}), "converged": False,
                                             "wall_seconds": a.timeout, "timed_out": True}) + "\n")
            print(f"{name} {config}: {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
