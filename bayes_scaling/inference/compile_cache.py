"""Compiled models reused across fits of one structure, within a process.

Compiling a model for nutpie costs 10-30 s on 2 cores (graph rewrites, numba, and the ``cfunc`` that
numba will not cache on disk itself; :mod:`.compile_store` does), often more than sampling it: a
borrowed fit of one small model spent 9.6 of its 10 s compiling. Yet most fits in one process share a
structure: the nested leave-out calibration fits inside every ``bs.fit``, the population fits of a
leave-one-family-out evaluation, every borrowed fit of a new family, the cells of a grid, a new zoo with
another number of families. The data enter the model as data containers (``pm.Data``: losses,
standardised inputs, indices, data-scaled prior locations; see :mod:`bayes_scaling.model.hierarchical`),
the dimension lengths as PyMC's shared lengths, and the compiled code reads the parameter vector's layout
at run time (:mod:`.compile_numba`), so one compiled model serves all of them with these swapped in.

A compiled model is reused only when the new model's graph is **the same computation**: its
:func:`structure_key` hashes every operation of the log density and of the variables stored in the trace,
the value of every constant and of every shared variable that is not a data container or a dimension
length, and the dtype and rank of those that are. Anything else that differs (a prior scale, the law, the
likelihood, the non-centred parameters, a constant whose size follows the number of families) gives another
key and a fresh compile. On a hit the data, dimension lengths, layout, initial point function and
coordinates come from the new model. A compiled model is also written to disk and read back by later processes
(:mod:`.compile_store`, ``BAYES_SCALING_COMPILE_CACHE_DIR``). ``BAYES_SCALING_COMPILE_CACHE=0`` turns
both off; :func:`clear` empties this process's cache.

The cache holds numba-compiled models. A model can instead be compiled by PyTensor's JAX backend
(:func:`resolve_backend`): 2-6 s where numba spends 35-60 s on the OU checkpoint noise's Kalman scan,
with the data frozen into the graph, so nothing is reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import pymc as pm

from . import compile_store
from .compile_numba import compile_model, for_model, swappable_names

#: compiled models kept per process (least recently used dropped first)
MAX_ENTRIES = 8
#: nutpie's compile backends: PyTensor's numba (reusable across data sets) or JAX (compiles in seconds)
BACKENDS = ("auto", "numba", "jax")
#: the most rows for which ``"auto"`` compiles a model with a scan by JAX: a new family's one-run update
#: (6-40 rows) takes 8 s with JAX against 40 s with numba; a 10-family population (220 rows) samples
#: 1.5-2x slower with JAX, more than numba's compile costs (docs/benchmarks.md)
JAX_MAX_ROWS = 120

_CACHE: "OrderedDict[str, Any]" = OrderedDict()
_STATS = {"hits": 0, "disk_hits": 0, "misses": 0}

log = logging.getLogger("bayes_scaling")


def enabled() -> bool:
    """False when ``BAYES_SCALING_COMPILE_CACHE`` is ``0``, ``false`` or ``off``."""
    return os.environ.get("BAYES_SCALING_COMPILE_CACHE", "1").strip().lower() not in ("0", "false", "off", "no")


def clear() -> None:
    """Forget every compiled model (and the hit/miss counts)."""
    _CACHE.clear()
    _STATS.update(hits=0, disk_hits=0, misses=0)


def stats() -> dict[str, int]:
    """Hits (in memory, and read from disk), misses and entries of this process's cache."""
    return {**_STATS, "entries": len(_CACHE)}


def _value_digest(value: Any) -> str:
    """A digest of a constant's or shared variable's value (an object's repr, never its address)."""
    data = np.asarray(value)
    if data.dtype == object:  # slices, None and other Python objects: bytes would be their addresses
        return f"object {value!r}"
    data = np.ascontiguousarray(data)
    return f"{data.dtype} {data.shape} {hashlib.sha256(data.tobytes()).hexdigest()}"


def _op_signature(op: Any) -> str:
    inner = getattr(op, "inner_outputs", None)
    if inner is not None:  # Scan (the OU checkpoint noise's Kalman filter), OpFromGraph: hash the inner graph
        settings = tuple((a, repr(getattr(op, a))) for a in ("info", "truncate_gradient", "name", "mode")
                         if hasattr(op, a))
        return f"{type(op).__module__}.{type(op).__name__}{settings}[{_graph_digest(op.inner_inputs, inner, set())}]"
    props = getattr(op, "__props__", None)
    if props is None:  # an op without declared properties is only ever equal to itself
        return f"{type(op).__module__}.{type(op).__name__}@{id(op)}"
    return f"{type(op).__module__}.{type(op).__name__}{tuple((p, repr(getattr(op, p))) for p in props)}"


def _graph_digest(leading: list, outputs: list, data_names: set) -> str:
    """A hash of the computation from the graph's inputs to ``outputs``; ``leading`` inputs are numbered first
    (an inner graph's positional inputs), data containers named in ``data_names`` count by dtype and rank only."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant

    try:  # pytensor >= 2.36 moved the traversal helpers
        from pytensor.graph.traversal import graph_inputs, io_toposort
    except ImportError:  # pragma: no cover - older pytensor
        from pytensor.graph.basic import graph_inputs, io_toposort

    first = set(leading)
    inputs = list(leading) + [v for v in graph_inputs(outputs) if v not in first]
    ids: dict[Any, int] = {}
    h = hashlib.sha256()

    def name(var: Any) -> int:
        if var not in ids:
            ids[var] = len(ids)
        return ids[var]

    for var in inputs:
        if isinstance(var, Constant):
            desc = f"const {var.type} {_value_digest(var.data)}"
        elif isinstance(var, SharedVariable) and var.name in data_names:
            desc = f"data {var.name} {var.type.dtype} {var.type.ndim}"
        elif isinstance(var, SharedVariable):
            desc = f"shared {var.name} {var.type} {_value_digest(var.get_value())}"
        else:
            desc = f"input {var.name} {var.type}"
        h.update(f"{name(var)}={desc};".encode())
    for node in io_toposort(inputs, outputs):
        ins = ",".join(str(name(v)) for v in node.inputs)
        outs = ",".join(str(name(v)) for v in node.outputs)
        h.update(f"{_op_signature(node.op)}({ins})->{outs};".encode())
    h.update(("outputs " + ",".join(str(name(v)) for v in outputs)).encode())
    return h.hexdigest()


def structure_key(model: pm.Model) -> str:
    """A hash of everything in ``model``'s log density and traced variables except the values of its data
    containers and dimension lengths (:func:`.compile_numba.swappable_names`)."""
    outputs = [model.logp(), *model.unobserved_value_vars]
    h = hashlib.sha256(_graph_digest([], outputs, swappable_names(model)).encode())
    h.update(("free " + ",".join(f"{v.name}" for v in model.value_vars)).encode())
    return h.hexdigest()


def jax_available() -> bool:
    """True when JAX is installed (``pip install bayes_scaling[jax]``)."""
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def _compile_jax(model: pm.Model, initial_points: dict, jitter_rvs: set | None) -> Any:
    """nutpie's model through PyTensor's JAX backend, with XLA's compile done here rather than in the first draw.

    The data are frozen into the graph (JAX wants static shapes), so nothing is reused across data sets;
    the whole compile takes seconds where numba's takes tens of seconds (the OU scan: 35-60 s)."""
    import nutpie
    from pymc.model.transform.optimization import freeze_dims_and_data

    frozen = freeze_dims_and_data(model)  # a new model: its variables are new objects, found again by name
    jitter = None if jitter_rvs is None else {frozen[v.name] for v in jitter_rvs}
    compiled = nutpie.compile_pymc_model(frozen, backend="jax", gradient_backend="jax", freeze_model=False,
                                         initial_points=initial_points, jitter_rvs=jitter)
    x0 = np.asarray(compiled._make_initial_points(0), dtype="float64")
    compiled._make_logp_func()(x0, **compiled._shared_data)  # trace and compile the log density + gradient
    compiled._make_expand_func(0, 0, 0)(x0, **compiled._shared_data)  # and the traced variables
    return compiled


def has_scan(model: pm.Model) -> bool:
    """True when ``model``'s log density holds a ``Scan`` (the OU checkpoint noise's Kalman filter)."""
    from pytensor.scan.op import Scan

    try:  # pytensor >= 2.36 moved the traversal helpers
        from pytensor.graph.traversal import applys_between
    except ImportError:  # pragma: no cover - older pytensor
        from pytensor.graph.basic import applys_between

    logp = model.logp()
    return any(isinstance(node.op, Scan) for node in applys_between(model.value_vars, [logp]))


def _rows(model: pm.Model) -> int:
    """The model's rows (its ``obs`` dimension); read off the shared length, not evaluated (a compile)."""
    length = model.dim_lengths.get("obs")
    if length is None:
        return 0
    return int(length.get_value() if hasattr(length, "get_value") else length.eval())


def resolve_backend(requested: str, model: pm.Model, key: str | None) -> str:
    """The backend a fit compiles with: ``"numba"`` or ``"jax"``.

    ``"auto"`` picks by measured cost (docs/benchmarks.md, "Two compile backends"). numba's
    gradient is faster than JAX's (which nutpie calls back through Python, holding the GIL), but numba
    compiles in 10-20 s, and in 35-60 s a model with a ``Scan`` (``checkpoint_noise="ou"``), where JAX takes
    2-6 s. So: numba when this process already holds the model compiled for the same
    structure (a hit costs nothing); JAX, when installed, for a model with a ``Scan`` and at most
    ``JAX_MAX_ROWS`` rows, where sampling is short and the compile is the whole cost (a new family's
    update from one small model); numba otherwise.
    """
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {requested!r}")
    if requested == "jax" and not jax_available():
        raise ImportError("backend 'jax' was requested but JAX is not installed (pip install 'bayes_scaling[jax]')")
    if requested != "auto":
        return requested
    if key is not None and (key in _CACHE or compile_store.stored(key)):
        return "numba"
    if jax_available() and _rows(model) <= JAX_MAX_ROWS and has_scan(model):
        return "jax"
    return "numba"


#: from this many fits of one structure in a row (a mixture prior's components), ``"auto"`` means numba
REPEATED_FITS_NUMBA = 3


def backend_for_fits(requested: str, n_fits: int) -> str:
    """The backend of ``n_fits`` fits of one model structure in a row (a mixture prior's components).

    ``"auto"`` (:func:`resolve_backend`) weighs the compile of one fit, and so gives a small OU model to
    JAX. With several fits of one structure, numba compiles once and every later fit reuses the model
    (this process's cache, then the disk), where JAX compiles each fit anew and samples several times
    slower: Gemstone's one-model OU updates took 1.0-1.7 s each with a reused numba model against
    8.7-14.6 s with JAX (docs/benchmarks.md). Without the compile cache there is nothing to
    reuse and ``requested`` stands.
    """
    if requested == "auto" and n_fits >= REPEATED_FITS_NUMBA and enabled():
        return "numba"
    return requested


def compile_nutpie(model: pm.Model, initial_points: dict, jitter_rvs: set | None = None,
                   backend: str = "auto") -> tuple[Any, str, str]:
    """nutpie's compiled ``model``, reusing a compiled model of the same structure.

    Returns (compiled, where it came from, backend used). Where: ``"memory"`` (this process's cache),
    ``"disk"`` (:mod:`.compile_store`, compiled by an earlier process) or ``"compiled"`` (a fresh compile,
    then kept in both). See :func:`resolve_backend` for ``backend``."""
    key = structure_key(model) if enabled() else None
    which = resolve_backend(backend, model, key)
    if which == "jax":
        return _compile_jax(model, initial_points, jitter_rvs), "compiled", "jax"
    if key is None:
        return compile_model(model, initial_points, jitter_rvs), "compiled", "numba"
    cached = _CACHE.get(key)
    if cached is not None:
        _STATS["hits"] += 1
        _CACHE.move_to_end(key)
        return for_model(cached, model, initial_points, jitter_rvs), "memory", "numba"
    compiled = compile_store.load(key, model, initial_points, jitter_rvs)
    source = "disk"
    if compiled is None:
        _STATS["misses"] += 1
        log.info("compiling the model with numba (a new structure; later fits of it reuse the compile)")
        compiled = compile_model(model, initial_points, jitter_rvs)
        compile_store.save(key, compiled, model)
        source = "compiled"
    else:
        _STATS["disk_hits"] += 1
    _CACHE[key] = compiled
    while len(_CACHE) > MAX_ENTRIES:
        _CACHE.popitem(last=False)
    return compiled, source, "numba"
