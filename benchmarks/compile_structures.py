"""What a model costs to compile when only its number of families differs: nutpie's layout against ours.

nutpie's ``compile_pymc_model`` lays the free parameters out with constant slices and shapes, so each number of
families compiles its graph functions again; bayes_scaling's compile (:mod:`bayes_scaling.inference.compile_numba`)
reads the layout and the dimension lengths at run time, so one compile serves every count. For each count of
``--families`` in turn (synthetic zoos, the default Chinchilla model), in one process: nutpie's compile, then
bayes_scaling's (its compile cache on, the disk store in a new temporary folder: the first count compiles,
later ones reuse it). Prints, per compile, its seconds, where the model came from, the numba functions built
(numba's compile events) and how many of them, at the outermost level, are graph functions
(``numba_funcified_fgraph``). PyTensor's own cache is as the machine has it and holds the graph functions of
every count nutpie compiled before: choose counts the machine has not compiled.

    .venv/bin/python benchmarks/compile_structures.py --families 11,12,13

Prints JSON lines. Run it alone: the figures are wall seconds on a shared machine otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="11,12,13", help="family counts, compiled in this order")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    os.environ["BAYES_SCALING_COMPILE_CACHE"] = "1"
    os.environ["BAYES_SCALING_COMPILE_CACHE_DIR"] = tempfile.mkdtemp(prefix="compile_structures_")
    import numpy as np
    import nutpie
    from numba.core import event

    import bayes_scaling as bs
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
    from bayes_scaling.inference.compile_cache import compile_nutpie
    from bayes_scaling.inference.initial import initial_values
    from bayes_scaling.model import ModelSpec, build_model
    from compile_profile import compile_listener  # this folder's compile profile

    for seed, families in enumerate(int(c) for c in args.families.split(",")):
        rng = np.random.default_rng(seed)
        frame = simulate_runs(simulate_family_parameters(families, rng), rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=5)
        data = bs.ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss",
                                         run="run")
        spec = ModelSpec.from_data(data, "chinchilla")
        model = build_model(data, spec)
        start = initial_values(data, spec)
        compilers = {"nutpie": lambda: (nutpie.compile_pymc_model(model, initial_points=start), "compiled"),
                     "bayes_scaling": lambda: compile_nutpie(model, start, backend="numba")[:2]}
        for layout, compile_it in compilers.items():
            compiles = compile_listener()
            t = time.perf_counter()
            with event.install_listener("numba:compile", compiles):
                _, source = compile_it()
            print(json.dumps({"families": families, "layout": layout, "source": source,
                              "seconds": round(time.perf_counter() - t, 1), "numba_functions": len(compiles.done),
                              "graph_functions": sum(name == "numba_funcified_fgraph" for name, _ in compiles.done),
                              "cores": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
