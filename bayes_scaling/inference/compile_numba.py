"""nutpie's numba-compiled model, with the layout of its parameter vector read at run time.

nutpie (``nutpie.compile_pymc_model``) lays a model's free parameters out in one vector with constant slices
and shapes, so its compiled log density, gradient and trace expansion are specialised to the model's
dimension lengths: a model that differs from a compiled one only in its number of families, runs or rows
would compile again (tens of seconds on 2 cores). Here the free variables' offsets in that vector and their
shapes are shared variables, as PyMC's dimension lengths already are, so they reach the compiled code as
data, like the data containers; the C entry points take the vector's lengths from the sampler instead of
a constant. One compile then serves every dimension length: :func:`for_model` swaps a model's own layout,
dimension lengths, data, coordinates and initial point into a compiled model of the same structure
(:func:`.compile_cache.structure_key` counts these by dtype and rank only).

The C entry points nutpie calls are generated per model (:func:`_entry`) and call PyTensor's graph functions by
their symbol in numba's JIT rather than linking their code in: a linked call makes numba optimise and generate
the whole graph again for each entry point: most of a compile whose graph functions PyTensor has cached
(docs/benchmarks.md, "Where a cold compile goes").
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from math import prod
from typing import Any

import numpy as np

#: the shared variable holding the parameter vector's layout: each free variable's offset in it (and the vector's
#: length), then each free variable's shape; one variable, for every shared variable is a further argument that
#: nutpie's C entry point unpacks, and numba's compile of that unpacking grows with their number
LAYOUT = "__layout"


def swappable_names(model: Any) -> set[str]:
    """The shared variables of ``model`` whose values a compiled model takes at run time: its data containers,
    its dimension lengths and the parameter layout."""
    return {v.name for v in model.data_vars} | set(model.dim_lengths) | {LAYOUT}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each traced variable sits in nutpie's flat vectors: the free variables first (the sampler's
    parameter vector, ``n_dim`` long), then the deterministics and untransformed values (``n_expanded`` in all)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    #: how many of ``names`` are free variables
    n_free: int

    @classmethod
    def of(cls, model: Any) -> "Layout":
        from nutpie.compile_pymc import _compute_shapes

        shapes = _compute_shapes(model)
        free = [model.rvs_to_values[v].name for v in model.free_RVs]
        remaining = [v.name for v in model.unobserved_value_vars if v.name not in set(free)]
        return cls(free + remaining, [tuple(int(s) for s in shapes[n]) for n in free + remaining], len(free))

    @property
    def n_dim(self) -> int:
        return int(sum(prod(s) for s in self.shapes[:self.n_free]))

    @property
    def n_expanded(self) -> int:
        return int(sum(prod(s) for s in self.shapes))

    @property
    def shape_info(self) -> tuple[list[str], list[slice], list[tuple[int, ...]]]:
        """nutpie's (names, slices, shapes) of every traced variable."""
        ends = np.cumsum([prod(s) for s in self.shapes])
        slices = [slice(int(e - prod(s)), int(e)) for e, s in zip(ends, self.shapes)]
        return self.names, slices, self.shapes

    def values(self) -> dict[str, np.ndarray]:
        """The layout's shared variable: the offsets of the free variables and the end, then their shapes."""
        free = self.shapes[:self.n_free]
        return {LAYOUT: np.concatenate([[0], np.cumsum([prod(s) for s in free]), *free]).astype("int64")}


def _functions(model: Any) -> tuple[Any, Any]:
    """The log density with its gradient, and the trace expansion, of ``model`` as PyTensor numba functions of
    one parameter vector whose layout is read from shared variables."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc

    from .stable_cache_keys import install

    install()  # the same graph, so the same keys in PyTensor's disk cache, in every process
    value_vars = [model.rvs_to_values[v] for v in model.free_RVs]
    logp = model.logp()
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = pytensor.graph.rewrite_graph(logp, include=rewrites)
    grad = pt.concatenate([pt.as_tensor(g, allow_xtensor_conversion=True).ravel()
                           for g in pytensor.gradient.grad(logp, value_vars)])

    joined = pt.TensorType("float64", shape=(None,))(name="_unconstrained_point")
    ranks = [var.type.ndim for var in value_vars]
    layout = pytensor.shared(np.zeros(len(value_vars) + 1 + sum(ranks), dtype="int64"), name=LAYOUT)
    replacements = {}
    start = len(value_vars) + 1  # where the shapes begin
    for i, var in enumerate(value_vars):
        shape = layout[start:start + ranks[i]]
        start += ranks[i]
        piece = joined[layout[i]:layout[i + 1]].reshape(shape, ndim=ranks[i]).astype(var.dtype)
        replacements[var] = pt.specify_shape(piece, var.type.shape)  # the value variable's own type
    logp, grad = pytensor.clone_replace([logp, grad], replacements)
    with model:
        logp_fn = compile_pymc((joined,), (logp, grad), mode="NUMBA")

    free = {v.name for v in value_vars}
    remaining = [v for v in model.unobserved_value_vars if v.name not in free]
    expanded = pt.concatenate([joined, *[pt.as_tensor(v, allow_xtensor_conversion=True).ravel() for v in remaining]])
    (expanded,) = pytensor.clone_replace([expanded], replacements)
    with model:
        expand_fn = compile_pymc((joined,), [expanded], mode="NUMBA")
    return logp_fn, expand_fn


def _graph(fn: Any, shared: dict[str, np.ndarray]) -> tuple[Any, tuple, bool]:
    """numba's compile result of the PyTensor function ``fn`` for the arrays a C entry point passes it (the
    parameter vector, then ``fn``'s shared variables in its order, each C-contiguous), the numba types it was
    compiled for, and whether those are one tuple of the arrays (PyTensor's graph function takes ``*args``, the
    form it caches on disk) rather than the arrays themselves."""
    import inspect

    import numba
    from numba import types

    arrays = [types.Array(types.float64, 1, "C")]
    arrays += [types.Array(numba.from_dtype(shared[v.name].dtype), shared[v.name].ndim, "C") for v in fn.get_shared()]
    dispatcher = fn.vm.jit_fn
    packed = bool(dispatcher.py_func.__code__.co_flags & inspect.CO_VARARGS)
    signature = (types.StarArgTuple(arrays),) if packed else tuple(arrays)
    dispatcher.compile(signature)  # from numba's disk cache (PyTensor's) where the graph was compiled before
    return dispatcher.overloads[signature], signature, packed


def _caller(graph: Any, signature: tuple, packed: bool) -> Any:
    """An intrinsic calling the compiled ``graph`` (compiled for the numba types ``signature``: one tuple of
    the arrays where ``packed``) with a tuple of its arguments, by its symbol and in numba's own calling
    convention; it returns (whether the call succeeded, the graph's outputs). The caller is then compiled and
    optimised alone: calling the graph function directly would link its code into the caller's and optimise
    and generate all of it again (most of a compile whose graph is in PyTensor's cache). Both run in numba's
    one JIT engine, which resolves the symbol; :mod:`.compile_store` keeps the graph's code beside the
    caller's and loads it first. An exception inside the graph (an integer division by zero at an extreme
    parameter value) comes back as a failed status, as a ``try`` block would catch it, and nothing is printed."""
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    returns, symbol = graph.signature.return_type, graph.fndesc.llvm_func_name

    @intrinsic
    def call(typingctx, arguments):
        def codegen(context, builder, sig, args):
            values = [builder.extract_value(args[0], i) for i in range(len(arguments))]
            if packed:
                values = [context.make_tuple(builder, signature[0], values)]
            function = cgutils.get_or_insert_function(
                builder.module, context.call_conv.get_function_type(returns, list(signature)), symbol)
            status, out = context.call_conv.call_function(builder, function, returns, list(signature), values)
            return context.make_tuple(builder, sig.return_type, [builder.not_(status.is_error), out])

        return types.Tuple((types.boolean, returns))(arguments), codegen

    return call


@functools.cache
def _pointers() -> tuple[Any, Any]:
    """Intrinsics: an address as a void pointer; a void pointer as a pointer to 64-bit words."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def as_voidptr(typingctx, address):
        return types.voidptr(address), lambda context, builder, sig, args: builder.inttoptr(args[0], cgutils.voidptr_t)

    @intrinsic
    def as_words(typingctx, pointer):
        return types.CPointer(types.uint64)(pointer), \
            lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64).as_pointer())

    return as_voidptr, as_words


#: the C entry points' signatures (nutpie's) and the lines that follow the call of the graph function
_LOGP = ("logp", "dim, x_, out_, logp_, user_data_", """\
    ok, outputs = call(({arguments},))
    if not ok:  # nutpie's code for an exception: a recoverable error, like a non-finite density
        return 1
    value, grad = outputs
    if grad.shape[0] != dim:
        return -1
    logp = numba.carray(logp_, ())
    logp[()] = value
    out = numba.carray(out_, (dim,))
    out[...] = grad
    if not np.all(np.isfinite(out)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0""")
_EXPAND = ("expand", "dim, expanded, x_, out_, user_data_", """\
    ok, outputs = call(({arguments},))
    if not ok:
        return -2
    (values,) = outputs
    if values.shape[0] != expanded:
        return -1
    out = numba.carray(out_, (expanded,))
    out[...] = values
    return 0""")


def _entry(fn: Any, kind: tuple[str, str, str], user_data: np.ndarray, shared: dict[str, np.ndarray],
           n_free: int) -> Any:
    """nutpie's C entry point (``kind``: :data:`_LOGP` or :data:`_EXPAND`) of the PyTensor function ``fn``,
    for a parameter vector of any length: reads each shared variable's address, size and shape from nutpie's
    ``user_data`` record, refuses a vector whose length is not the layout's, and calls the graph function.

    Nothing in it raises, so it has no ``try`` block (numba's liveness analysis of one around these lines takes
    tens of seconds): an exception inside the graph function is a failed status of the call (:func:`_caller`),
    returned as nutpie's error code."""
    import numba

    graph, graph_signature, packed = _graph(fn, shared)
    record = user_data.dtype["shared"]
    if any(record[part][name].base.itemsize != 8 for part in ("data", "size", "shape") for name in record[part].names):
        raise TypeError(f"nutpie's user data holds words that are not 64-bit ({record}); this compile reads 64-bit")

    def word(part: str, name: str) -> int:  # where a field of the record starts, in 64-bit words
        return (record.fields[part][1] + record[part].fields[name][1]) // 8

    names = [v.name for v in fn.get_shared()]
    lines = []
    for i, name in enumerate(names):
        shape = "".join(f"u[{word('shape', name) + j}], " for j in range(shared[name].ndim))
        lines.append(f"    s{i} = numba.carray(as_voidptr(u[{word('data', name)}]), ({shape}), dtype{i})")
    if LAYOUT in names:  # a vector of another length would make the graph's slices fail inside it
        lines.append(f"    if s{names.index(LAYOUT)}[{n_free}] != dim:\n        return -1")
    label, arguments, tail = kind
    source = "\n".join([
        f"def {label}_entry({arguments}):",
        f"    u = numba.carray(as_words(user_data_), ({user_data.dtype.itemsize // 8},))",
        "    x = numba.carray(x_, (dim,))", *lines,
        tail.format(arguments=", ".join(["x", *(f"s{i}" for i in range(len(names)))]))])
    as_voidptr, as_words = _pointers()
    namespace = {"__name__": __name__, "numba": numba, "np": np, "as_voidptr": as_voidptr, "as_words": as_words,
                 "call": _caller(graph, graph_signature, packed),
                 **{f"dtype{i}": shared[n].dtype for i, n in enumerate(names)}}
    exec(compile(source, f"<bayes_scaling {label} entry>", "exec"), namespace)  # noqa: S102 - our own source
    u64, f64 = numba.types.uint64, numba.types.CPointer(numba.types.double)
    signature = (numba.types.int64(u64, f64, f64, f64, numba.types.voidptr) if label == "logp"
                 else numba.types.int64(u64, u64, f64, f64, numba.types.voidptr))
    entry = _cfunc(namespace[f"{label}_entry"], signature)
    entry.graph, entry.graph_source = graph, (fn.vm.jit_fn, graph_signature)  # its code must outlive the entry
    return entry


def graph_code(entry: Any) -> tuple:
    """The machine code of the graph function an entry point of :func:`_entry` calls, serialised as numba's
    cache serialises it (for :mod:`.compile_store`)."""
    library = entry.graph.library
    try:
        return library.serialize_using_object_code()
    except RuntimeError:  # read back from numba's disk cache: its object code went to the JIT, the file has it
        dispatcher, signature = entry.graph_source
        cache = dispatcher._cache
        payload = cache._cache_file.load(cache._index_key(signature, library.codegen))
        if payload is None:
            raise
        return payload[0]


def _cfunc(function: Any, signature: Any) -> Any:
    import numba

    with warnings.catch_warnings():  # generated source: numba cannot cache it (compile_store does)
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature)(function)


def compile_model(model: Any, initial_points: dict, jitter_rvs: set | None) -> Any:
    """nutpie's compiled ``model`` (a ``CompiledPyMCModel``), by numba, serving every dimension length."""
    from nutpie.compile_pymc import make_user_data

    logp_fn, expand_fn = _functions(model)
    shared_vars = {}
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if shared_vars.setdefault(var.name, var) is not var:
            raise ValueError(f"the model has two shared variables named {var.name!r}; nutpie needs unique names")
    shared = {name: np.array(var.get_value(), order="C", copy=True) for name, var in shared_vars.items()}
    user_data = make_user_data(shared_vars, shared)
    n_free = len(model.free_RVs)
    logp = _entry(logp_fn, _LOGP, user_data, shared, n_free)
    expand = _entry(expand_fn, _EXPAND, user_data, shared, n_free)
    return assemble(logp, expand, shared, model, initial_points, jitter_rvs, logp_fn=logp_fn, expand_fn=expand_fn)


def assemble(logp: Any, expand: Any, shared: dict[str, np.ndarray], model: Any, initial_points: dict,
             jitter_rvs: set | None, *, logp_fn: Any = None, expand_fn: Any = None) -> Any:
    """nutpie's ``CompiledPyMCModel`` of the C entry points ``logp`` and ``expand`` with the shared variables'
    values ``shared`` (those ``model`` swaps in may be placeholders of the right rank), set up for ``model``."""
    from nutpie.compile_pymc import CompiledPyMCModel, make_user_data

    for value in shared.values():  # nutpie's contract: the code reads these through pointers, never writes them
        value.flags.writeable = False
    compiled = CompiledPyMCModel(
        _n_dim=0, dims=None, _coords=None, _shapes={}, compiled_logp_func=logp, compiled_expand_func=expand,
        initial_point_func=None, shared_data=shared, user_data=make_user_data(shared, shared), n_expanded=0,
        shape_info=([], [], []), logp_func=logp_fn, expand_func=expand_fn)
    return for_model(compiled, model, initial_points, jitter_rvs)


def for_model(compiled: Any, model: Any, initial_points: dict, jitter_rvs: set | None) -> Any:
    """``compiled`` (of ``model``'s structure) with ``model``'s layout, dimension lengths, data, coordinates and
    initial point swapped in."""
    from nutpie.compile_pymc import _prepare_dims_and_coords

    layout = Layout.of(model)
    values = {v.name: v.get_value() for v in model.data_vars}
    values.update({name: length.get_value() for name, length in model.dim_lengths.items()
                   if hasattr(length, "get_value")})
    values.update(layout.values())
    updated = compiled.with_data(**{k: v for k, v in values.items() if k in compiled.shared_data})
    shape_info = layout.shape_info
    dims, coords = _prepare_dims_and_coords(model, shape_info)
    updated = dataclasses.replace(updated, _n_dim=layout.n_dim, n_expanded=layout.n_expanded, shape_info=shape_info,
                                  _shapes=dict(zip(layout.names, layout.shapes)), dims=dims, _coords=coords)
    return dataclasses.replace(updated, initial_point_func=initial_point_function(model, layout, initial_points,
                                                                                  jitter_rvs))


def initial_point_function(model: Any, layout: Layout, initial_points: dict, jitter_rvs: set | None):
    """nutpie's flat initial point function for ``model``."""
    from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper, _wrap_with_lock
    from pymc.initial_point import make_initial_point_fn

    if jitter_rvs is None:  # nutpie's default: jitter every free variable
        jitter_rvs = set(model.free_RVs)
    fn = make_initial_point_fn(model=model, overrides=initial_points, default_strategy="support_point",
                               jitter_rvs=jitter_rvs, return_transformed=True)
    return _rv_dict_to_flat_array_wrapper(_wrap_with_lock(fn), names=layout.names[:layout.n_free],
                                          shapes=layout.shapes[:layout.n_free])
