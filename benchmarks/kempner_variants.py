"""Kempner sweep: sampler settings and parameterisations side by side (extrapolation term off).

    python benchmarks/kempner_variants.py --out benchmarks/results/kempner_variants.json [--timeout 300]

Each variant runs in its own process with a wall-clock limit; one that exceeds it is recorded as such.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import warnings
from pathlib import Path

VARIANTS = {
    "centred, target_accept 0.95": dict(target_accept=0.95, noncentering=None),
    "centred, target_accept 0.98": dict(target_accept=0.98, noncentering=None),
    "centred, target_accept 0.99": dict(target_accept=0.99, noncentering=None),
    "chosen from the data ('auto'), 0.98": dict(target_accept=0.98, noncentering="auto"),
    "block non-centred log_beta, 0.95": dict(target_accept=0.95, noncentering={"log_beta": 1.0}),
    "block non-centred exponents, 0.95": dict(target_accept=0.95, noncentering={"log_alpha": 1.0, "log_beta": 1.0}),
}


def _run(kwargs: dict, queue: mp.Queue) -> None:
    warnings.simplefilter("ignore")
    import bayes_scaling as bs
    from bayes_scaling.data import load_kempner

    t = time.perf_counter()
    f = bs.fit(load_kempner(), dict(extrapolation=None), kwargs)
    d = f.diagnostics
    queue.put({"wall_seconds": time.perf_counter() - t, "divergences": d.divergences, "max_rhat": d.max_rhat,
               "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail,
               "sampling_seconds": d.sampling_seconds, "worst": d.worst})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/kempner_variants.json")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    res = {"cores": os.cpu_count(), "timeout_seconds": a.timeout}
    for name, kwargs in VARIANTS.items():
        q: mp.Queue = mp.Queue()
        p = mp.Process(target=_run, args=(kwargs, q))
        p.start()
        p.join(a.timeout)
        if p.is_alive():
            p.terminate()
            res[name] = {"timed_out": True}
        else:
            res[name] = q.get()
        print(name, json.dumps(res[name], default=float), flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
