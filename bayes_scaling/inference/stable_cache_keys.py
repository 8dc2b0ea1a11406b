"""PyTensor's numba disk cache, made to serve the next process: the same model, the same cache keys.

PyTensor keeps each operation's numba function, and each whole graph function, on disk under a key made of
the operations and constants of the graph. A new process that builds the same model finds them there and
skips numba's compile (about 7 s instead of a minute; docs/benchmarks.md, "Where a cold compile goes"). Two
things in PyTensor 2.38 defeat that for the models bayes_scaling builds, so :func:`install` mends them
before a model is compiled (:mod:`.compile_numba`):

- ``pytensor.tensor.extra_ops.broadcast_shape_iter`` gathers the symbolic lengths that a broadcast must
  check for equality in a ``set`` and chains its ``Assert`` s in that set's order: the order of object ids,
  which changes from process to process. A graph whose lengths are read at run time (the parameter layout and
  the dimension lengths are data, :mod:`.compile_numba`) carries such checks, so its rewritten graph, and with
  it the graph function's key, would differ in every process: the conditional whitening's log density
  would be compiled again each time (39 s against 13). The replacement is the same function whose collections keep
  the order in which the lengths come.
- digamma (``Psi``: the gradient of the Student-t likelihood with respect to its degrees of freedom) is
  compiled as a call through a pointer to scipy's Cython function, and a pointer cannot be kept on disk, so
  PyTensor caches neither it nor any graph containing it. It is registered here as a numba function
  (:func:`digamma`) with a cache key.

Both change how a graph is compiled, not what it computes (digamma agrees with scipy's to about 1e-15).
"""

from __future__ import annotations

import functools
import math
import types

import numpy as np
from numba.extending import register_jitable

#: whether :func:`install` has run in this process
_installed = False


class _OrderedSet(dict):
    """The part of ``set`` that ``broadcast_shape_iter`` uses, iterated in insertion order."""

    def add(self, item) -> None:
        self[item] = None


@register_jitable  # callable from Python and from numba-compiled code
def _digamma_positive(x: float) -> float:
    """digamma of x > 0: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series
    ln x - 1/(2x) - sum B_2k / (2k x^2k) to k = 7 (its next term is below 1e-16 there)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (
        -1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return result + math.log(x) - 0.5 / x + series


def digamma(x: float) -> float:
    """The digamma function with scipy's values at its poles: -inf at +0, +inf at -0, nan at the negative
    integers and at -inf; reflection psi(x) = psi(1 - x) - pi / tan(pi x) below 0."""
    if math.isnan(x) or x == -math.inf:
        return math.nan
    if x == 0.0:
        return math.copysign(math.inf, -x)
    if x < 0.0:
        # tan has period pi: x less its nearest integer (exact), as pi x loses digits for large |x|
        fraction = x - np.floor(x + 0.5)
        if fraction == 0.0:
            return math.nan
        return _digamma_positive(1.0 - x) - math.pi / math.tan(math.pi * fraction)
    return _digamma_positive(x)


def _register_digamma() -> None:
    import numba
    from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key
    from pytensor.link.numba.dispatch.scalar import scalar_op_cache_key
    from pytensor.scalar.math import Psi

    jitted = numba.njit(digamma)  # IEEE semantics (no fastmath): the poles' infinities and nans are values here

    @register_funcify_and_cache_key(Psi)
    def numba_funcify_Psi(op, node, **kwargs):  # PyTensor's dispatch signature
        return jitted, scalar_op_cache_key(op, implementation="bayes_scaling.digamma")


def _ordered_broadcast_shapes() -> None:
    import pytensor.tensor.extra_ops as extra_ops

    function = extra_ops.broadcast_shape_iter
    if "set" not in function.__code__.co_names:  # a PyTensor without the set: nothing to mend
        return
    ordered = types.FunctionType(function.__code__, {**function.__globals__, "set": _OrderedSet}, function.__name__,
                                 function.__defaults__, function.__closure__)
    ordered.__kwdefaults__ = function.__kwdefaults__
    extra_ops.broadcast_shape_iter = functools.update_wrapper(ordered, function)


def install() -> None:
    """Mend both in this process (once; every later call does nothing)."""
    global _installed
    if _installed:
        return
    _ordered_broadcast_shapes()
    _register_digamma()
    _installed = True
