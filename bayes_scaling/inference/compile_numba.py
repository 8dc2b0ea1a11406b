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
"""

from __future__ import annotations

import dataclasses
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


def _c_logp(logp_fn: Any, user_data: np.ndarray, names: list[str], shared: dict) -> Any:
    """nutpie's C entry point of the log density and gradient, for a parameter vector of any length."""
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    extract = make_extraction_fn(logp_fn, shared, names, user_data.dtype)
    signature = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                                  numba.types.voidptr)

    def logp_numba(dim, x_, out_, logp_, user_data_):
        try:
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = extract(x, user_data_)
            if grad.shape[0] != dim:  # the layout does not match the sampler's vector
                return -1
            logp[()] = logp_val
            out[...] = grad
            if not np.all(np.isfinite(out)):
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001 - nutpie's convention: a code, never an exception through C
            return 1
        return 0

    return _cfunc(logp_numba, signature)


def _c_expand(expand_fn: Any, user_data: np.ndarray, names: list[str], shared: dict) -> Any:
    """nutpie's C entry point of the trace expansion, for vectors of any length."""
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    extract = make_extraction_fn(expand_fn, shared, names, user_data.dtype)
    signature = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.voidptr)

    def expand_numba(dim, expanded, x_, out_, user_data_):
        try:
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (expanded,))
            (values,) = extract(x, user_data_)
            if values.shape[0] != expanded:
                return -1
            out[...] = values
        except Exception:  # noqa: BLE001
            return -2
        return 0

    return _cfunc(expand_numba, signature)


def _cfunc(function: Any, signature: Any) -> Any:
    import numba

    with warnings.catch_warnings():  # nutpie's closures: numba cannot cache them (compile_store does)
        warnings.filterwarnings("ignore", message="Cannot cache compiled function .* as it uses dynamic globals",
                                category=numba.NumbaWarning)
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
    logp = _c_logp(logp_fn.vm.jit_fn, user_data, [v.name for v in logp_fn.get_shared()], shared)
    expand = _c_expand(expand_fn.vm.jit_fn, user_data, [v.name for v in expand_fn.get_shared()], shared)
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
