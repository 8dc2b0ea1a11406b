"""What a new structure costs to compile when only its number of families differs.

Compiles the default Chinchilla model of synthetic zoos in one process, in this order: ``--families``
families, the same count with other data (the same structure: nutpie's wrapper only), then each further
count. Prints, per compile, its seconds, the numba functions it built (numba's compile events) and how many of
them, at the outermost level, are graph functions (``numba_funcified_fgraph``: the log density and gradient,
the point functions), which are specialised to the dimension lengths. bayes_scaling's compiled-model cache and
store are off, so every model is compiled; PyTensor's own cache is as the machine has it, and holds the graph
functions of every family count compiled before: choose counts the machine has not compiled.

    BAYES_SCALING_COMPILE_CACHE=0 .venv/bin/python benchmarks/compile_structures.py --families 8,9

Prints JSON lines. Run it alone: the figures are wall seconds on a shared machine otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="5,7", help="family counts, the first compiled twice (default 5,7)")
    args = parser.parse_args()
    if os.environ.get("BAYES_SCALING_COMPILE_CACHE") != "0":
        parser.error("set BAYES_SCALING_COMPILE_CACHE=0: a model read back from the cache is not compiled")
    warnings.simplefilter("ignore")
    import numpy as np
    import nutpie
    from numba.core import event

    import bayes_scaling as bs
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
    from bayes_scaling.inference.initial import initial_values
    from bayes_scaling.model import ModelSpec, build_model
    from compile_profile import compile_listener  # this folder's compile profile

    counts = [int(c) for c in args.families.split(",")]
    plan = [(counts[0], 0, "first"), (counts[0], 1, "same structure, other data")]
    plan += [(n, 2 + i, "other number of families") for i, n in enumerate(counts[1:])]
    for families, seed, what in plan:
        rng = np.random.default_rng(seed)
        frame = simulate_runs(simulate_family_parameters(families, rng), rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=5)
        data = bs.ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss",
                                         run="run")
        spec = ModelSpec.from_data(data, "chinchilla")
        model = build_model(data, spec)
        compiles = compile_listener()
        t = time.perf_counter()
        with event.install_listener("numba:compile", compiles):
            nutpie.compile_pymc_model(model, initial_points=initial_values(data, spec))
        print(json.dumps({"families": families, "compile": what, "seconds": round(time.perf_counter() - t, 1),
                          "numba_functions": len(compiles.done),
                          "graph_functions": sum(name == "numba_funcified_fgraph" for name, _ in compiles.done),
                          "cores": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
