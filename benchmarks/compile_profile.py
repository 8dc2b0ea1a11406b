"""Where the compile time of the hierarchical model goes, and one log density + gradient.

Compiles the bundled Porian model twice in one process (the first pays numba's start-up) as every fit does
(:func:`bayes_scaling.inference.compile_numba.compile_model`, the compile cache and store aside), or with
``--layout nutpie`` as ``nutpie.compile_pymc_model`` does (the parameter layout fixed in the code), and splits
each compile into PyTensor's graph work (``compile_numba._functions`` or nutpie's ``_make_functions``:
rewrites, numba funcify, PyTensor's own disk cache) and numba's part: the graph functions (compiled, or read
from PyTensor's numba cache) and the ``cfunc`` of the C entry points nutpie calls (nutpie's links the graph
functions into each entry point and optimises the whole module again; bayes_scaling's calls them by symbol),
counts the numba functions each compile builds (numba's compile events) and the seconds
of the log density's graph function among them, then times one log density + gradient through the
compiled C function pointer.

    .venv/bin/python benchmarks/compile_profile.py
    NUMBA_OPT=0 .venv/bin/python benchmarks/compile_profile.py     # LLVM optimisation level 0
    NUMBA_DEBUG_CACHE=1 .venv/bin/python benchmarks/compile_profile.py   # PyTensor's numba cache hits
    .venv/bin/python benchmarks/compile_profile.py --layout nutpie       # nutpie's own compile
    .venv/bin/python benchmarks/compile_profile.py --whiten conditional --likelihood student_t --keys pytensor

``--whiten`` and ``--likelihood`` pick the model (the unwhitened Gaussian one by default); ``--keys pytensor``
compiles without :mod:`bayes_scaling.inference.stable_cache_keys` (PyTensor's own cache keys, which differ
between processes for the conditional whitening and are none for the Student-t likelihood), to compare what a
later process reads back from PyTensor's disk cache.

A machine that has never compiled the model (the first process after installing): point every compile
cache at an empty folder,

    rm -rf /tmp/cold && XDG_CACHE_HOME=/tmp/cold PYTENSOR_FLAGS=base_compiledir=/tmp/cold/pytensor \
        NUMBA_CACHE_DIR=/tmp/cold/numba .venv/bin/python benchmarks/compile_profile.py

Prints JSON (one line). Run it alone: the figures are wall seconds on a shared machine otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings


def compile_listener():
    """A listener of numba's compile events: ``done`` holds (name, seconds) of every function compiled, the
    name given at the outermost level only (a function compiled inside another's compile is unnamed)."""
    from numba.core import event  # imported here: main() times the imports

    class Compiles(event.Listener):
        def __init__(self):
            self.open, self.done = [], []

        def on_start(self, ev):
            self.open.append(time.perf_counter())

        def on_end(self, ev):
            name = getattr(getattr(ev.data.get("dispatcher"), "py_func", None), "__name__", "")
            seconds = time.perf_counter() - self.open.pop()
            self.done.append((name if not self.open else "", seconds))

    return Compiles()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=("bayes_scaling", "nutpie"), default="bayes_scaling",
                        help="whose compile: bayes_scaling's (the layout read at run time) or nutpie's")
    parser.add_argument("--whiten", choices=("none", "fixed", "conditional"), default="none",
                        help="the family layer's whitening (none: the model as PyMC writes it)")
    parser.add_argument("--likelihood", choices=("normal", "student_t"), default="normal")
    parser.add_argument("--keys", choices=("stable", "pytensor"), default="stable",
                        help="PyTensor's cache keys as bayes_scaling mends them, or PyTensor's own")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    import numba
    import nutpie.compile_pymc as nutpie_compile
    from numba.core import event

    import bayes_scaling as bs
    from bayes_scaling.inference import compile_numba, stable_cache_keys
    from bayes_scaling.inference.compiled import CompiledModel
    from bayes_scaling.inference.initial import initial_values
    from bayes_scaling.model import ModelSpec, build_model

    out: dict = {"layout": args.layout, "import_seconds": time.perf_counter() - t0, "cores": os.cpu_count(),
                 "numba_opt": os.environ.get("NUMBA_OPT", "3 (default)"), "whiten": args.whiten,
                 "likelihood": args.likelihood, "keys": args.keys}
    if args.keys == "pytensor":
        stable_cache_keys.install = lambda: None
    data = bs.load_bundled("porian")
    spec = ModelSpec.from_data(data, "chinchilla", likelihood=args.likelihood)
    if args.whiten == "none":
        model, initial = build_model(data, spec), initial_values(data, spec)
    else:
        built = CompiledModel.build(data, spec, whiten=args.whiten)
        model, initial = built.model, built.initvals
    parts: list[tuple[str, float]] = []
    owner, name = (compile_numba, "_functions") if args.layout == "bayes_scaling" else (nutpie_compile, "_make_functions")
    make_functions, cfunc = getattr(owner, name), numba.cfunc

    def timed(part, function):  # ``function``, its seconds added to ``part``
        def run(*a, **k):
            t = time.perf_counter()
            r = function(*a, **k)
            parts.append((part, time.perf_counter() - t))
            return r
        return run

    def timed_cfunc(sig, **kw):
        return timed("cfunc", cfunc(sig, **kw))

    graph_function = compile_numba._graph
    # bayes_scaling compiles (or reads back) a graph function outside the entry point's cfunc: numba's part too
    timed_graph, timed_make = timed("cfunc", graph_function), timed("graph", make_functions)

    numba.cfunc = timed_cfunc
    compile_numba._graph = timed_graph
    setattr(owner, name, timed_make)
    try:
        for label in ("first", "second"):
            parts.clear()
            compiles = compile_listener()
            t = time.perf_counter()
            with event.install_listener("numba:compile", compiles):
                if args.layout == "nutpie":
                    compiled = nutpie_compile.compile_pymc_model(model, initial_points=initial)
                else:
                    compiled = compile_numba.compile_model(model, initial, None)
            out[f"{label}_compile_seconds"] = time.perf_counter() - t
            out[f"{label}_graph_seconds"] = sum(s for k, s in parts if k == "graph")
            out[f"{label}_cfunc_seconds"] = sum(s for k, s in parts if k == "cfunc")
            out[f"{label}_numba_functions"] = len(compiles.done)
            out[f"{label}_fgraph_function_seconds"] = sum(s for n, s in compiles.done if n == "numba_funcified_fgraph")
    finally:
        numba.cfunc, compile_numba._graph = cfunc, graph_function
        setattr(owner, name, make_functions)
    from sampling import nutpie_gradient_call  # this folder's sampling benchmark

    call, _, _ = nutpie_gradient_call(compiled)
    call()
    reps = 2000
    t = time.perf_counter()
    for _ in range(reps):
        call()
    out["logp_grad_ms"] = (time.perf_counter() - t) / reps * 1e3
    out["rows"], out["dim"] = len(data), int(compiled.n_dim)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
