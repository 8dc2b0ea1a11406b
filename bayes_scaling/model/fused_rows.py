"""The rows' part of the log density as one PyTensor Op: the law, each run's marginal likelihood and the gradient.

For Gaussian, independent checkpoint noise the log density's rows are (:mod:`.likelihood`)::

    r_i   = log y_i - log L(theta_family(i); z_i)                 the residual of row i
    S1_j  = sum_i r_i,  S2_j = sum_i r_i^2  over the rows of run j
    ll    = sum_j run_marginal_loglik(S1_j, S2_j, n_j, sigma_seed, sigma_obs)

Built from PyTensor's elementwise operations, a gradient of this part makes a dozen passes over the rows
(gathering each family's parameters, the law's terms, the residual sums, then each of those backwards), and
those passes are 85-88% of a gradient's time on Porian's and the synthetic 40-family set (docs/benchmarks.md).
:class:`RowsLoglik` computes the same quantity and its gradient in three passes: one over the rows (the
law's terms, the residual, the run sums; each term kept), one over the runs, and one more over the rows for
the gradient. Its output also carries the gradient, so that PyTensor's gradient
of the log density reuses it (:meth:`RowsLoglik.L_op`); a log density evaluated without the gradient pays for it
anyway, which the sampler never does.

The law enters through its sampling-scale layout (:func:`law_layout`)::

    L = exp(log_E) + sum_k exp(log_amp_k - exp(log_expo_k) z_k)     over the law's terms k (Law.terms)

summed as :mod:`..laws.forms` sums it; this covers every power-sum law (the Chinchilla and the compute law,
and the same forms declared by a user). Other laws take PyTensor's operations.
Three implementations of one computation: numba for nutpie (:func:`_numba_rows`), numpy for PyMC's own
sampler and the tests (:func:`rows_value_and_grad`), both with the same formulas per run
(:func:`.likelihood.gaussian_run_terms`), and ``jax.numpy`` differentiated by JAX for PyTensor's JAX backend
(:func:`_register_jax`).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ..laws import Law
from . import likelihood
from .likelihood import gaussian_run_terms


#: digest of this module's and the run terms' source: part of :class:`RowsLoglik`'s properties
KERNEL_DIGEST = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (sys.modules[__name__], likelihood))
                               ).hexdigest()[:16]


def law_layout(law: Law) -> dict[str, Any]:
    """Column positions of the constant (``log_E``) and of each term's amplitude and exponent in the law's
    sampling parameters (a power-sum law, :attr:`Law.terms`)."""
    params = list(law.sampling)
    col = (lambda name: params.index(law.sampling_name(name)))
    return {"e_col": col(law.irreducible),
            "amp_cols": tuple(col(amp) for amp, _, _ in law.terms),
            "expo_cols": tuple(col(expo) for _, expo, _ in law.terms)}


def rows_value_and_grad(theta: np.ndarray, sigma_seed: float, sigma_obs: float, log_loss: np.ndarray,
                        z: np.ndarray, family_index: np.ndarray, run_index: np.ndarray, n_per_run: np.ndarray,
                        e_col: int, amp_cols: tuple[int, ...], expo_cols: tuple[int, ...]
                        ) -> tuple[float, np.ndarray, float, float]:
    """The rows' log density and its gradient (theta, sigma_seed, sigma_obs), vectorised in numpy.

    ``theta`` (family, param); ``z`` (term, row): each term's standardised input; the indices per row."""
    th = theta[family_index]
    expo = np.exp(th[:, list(expo_cols)])
    parts = np.exp(np.concatenate([th[:, [e_col]], th[:, list(amp_cols)] - expo * z.T], axis=1))
    loss = parts.sum(axis=1)
    share = parts / loss[:, None]
    resid = log_loss - np.log(loss)
    n_runs = len(n_per_run)
    s1 = np.bincount(run_index, resid, n_runs)
    s2 = np.bincount(run_index, resid**2, n_runs)
    ll, d_s1, d_s2, d_ss2, d_so2 = gaussian_run_terms(s1, s2, np.asarray(n_per_run, float), sigma_seed**2,
                                                      sigma_obs**2)
    d_resid = d_s1[run_index] + 2.0 * resid * np.broadcast_to(d_s2, s1.shape)[run_index]
    d_parts = -d_resid[:, None] * share
    d_rows = np.zeros_like(th)
    d_rows[:, e_col] = d_parts[:, 0]
    d_rows[:, list(amp_cols)] += d_parts[:, 1:]
    d_rows[:, list(expo_cols)] -= d_parts[:, 1:] * expo * z.T
    d_theta = np.stack([np.bincount(family_index, d_rows[:, p], len(theta)) for p in range(theta.shape[1])], axis=1)
    return float(ll.sum()), d_theta, float(d_ss2.sum() * 2 * sigma_seed), float(d_so2.sum() * 2 * sigma_obs)


class RowsLoglik(Op):
    """``(ll, d ll / d theta, d ll / d sigma_seed, d ll / d sigma_obs)`` of the rows (module docstring).

    Inputs: ``theta`` (family, param), ``sigma_seed``, ``sigma_obs`` (scalars), ``log_loss`` (row), ``z``
    (term, row), ``family_index``, ``run_index`` (row, integers) and ``n_per_run`` (run). Only the first
    output is meant to be used; the others are its gradient, returned by :meth:`L_op`.
    """

    __props__ = ("e_col", "amp_cols", "expo_cols", "kernel")

    def __init__(self, e_col: int, amp_cols: tuple[int, ...], expo_cols: tuple[int, ...], kernel: str = ""):
        self.e_col = int(e_col)
        self.amp_cols = tuple(int(c) for c in amp_cols)
        self.expo_cols = tuple(int(c) for c in expo_cols)
        # the source of the kernels: a compiled model stored on disk is keyed by its graph's ops and their
        # properties (:mod:`..inference.compile_cache`), so editing the kernels must change this property
        self.kernel = kernel or KERNEL_DIGEST

    def make_node(self, theta, sigma_seed, sigma_obs, log_loss, z, family_index, run_index, n_per_run) -> Apply:
        floats = (theta, sigma_seed, sigma_obs, log_loss, z, n_per_run)
        theta, sigma_seed, sigma_obs, log_loss, z, n_per_run = (pt.cast(pt.as_tensor_variable(x), "float64")
                                                                for x in floats)
        family_index, run_index = (pt.cast(pt.as_tensor_variable(x), "int64") for x in (family_index, run_index))
        if theta.ndim != 2 or z.ndim != 2 or sigma_seed.ndim or sigma_obs.ndim:
            raise TypeError("RowsLoglik takes theta (family, param), z (term, row) and scalar noise scales")
        inputs = [theta, sigma_seed, sigma_obs, log_loss, z, family_index, run_index, n_per_run]
        outputs = [pt.dscalar("rows_loglik"), pt.dmatrix("d_theta"), pt.dscalar("d_sigma_seed"),
                   pt.dscalar("d_sigma_obs")]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage) -> None:
        theta, ss, so, y, z, fam, run, n_run = inputs
        ll, d_theta, d_ss, d_so = rows_value_and_grad(theta, float(ss), float(so), y, z, fam, run, n_run,
                                                      self.e_col, self.amp_cols, self.expo_cols)
        for store, value in zip(output_storage, (np.asarray(ll), d_theta, np.asarray(d_ss), np.asarray(d_so))):
            store[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [(), shapes[0], (), ()]

    def connection_pattern(self, node):
        connected = [True, True, True] + [False] * 5
        return [[c] * 4 for c in connected]

    def L_op(self, inputs, outputs, output_grads):
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("RowsLoglik has a first derivative only (its gradient outputs are not "
                                      "differentiable)")
        g = output_grads[0]
        return [g * outputs[1], g * outputs[2], g * outputs[3]] + [DisconnectedType()() for _ in range(5)]


def rows_loglik(law: Law, theta, sigma_seed, sigma_obs, log_loss, z: list, family_index, run_index, n_per_run):
    """The rows' log density (a scalar variable) of ``law``; ``z`` lists each term's standardised input."""
    return RowsLoglik(**law_layout(law))(theta, sigma_seed, sigma_obs, log_loss, pt.stack(z, axis=0), family_index,
                                        run_index, n_per_run)[0]


def _register_numba() -> None:
    """Teach PyTensor's numba backend (nutpie's) :class:`RowsLoglik` as the loops of :func:`_numba_rows`."""
    from pytensor.link.numba.dispatch import basic as numba_basic

    @numba_basic.register_funcify_default_op_cache_key(RowsLoglik)
    def numba_funcify_rows_loglik(op, node=None, **kwargs):
        return _numba_rows(op.e_col, op.amp_cols, op.expo_cols, numba_basic.numba_njit), 1


def _numba_rows(e_col: int, amp_cols: tuple[int, ...], expo_cols: tuple[int, ...], njit) -> Any:
    """The numba kernel of :class:`RowsLoglik` for one law layout (the columns are compile-time constants)."""
    n_terms = len(amp_cols)
    run_terms = njit(gaussian_run_terms)

    @njit
    def rows_loglik(theta, sigma_seed, sigma_obs, log_loss, z, family_index, run_index, n_per_run):
        n_fam, n_par = theta.shape
        n_rows = log_loss.shape[0]
        n_runs = n_per_run.shape[0]
        floor = np.empty(n_fam)  # E per family
        expo = np.empty((n_fam, n_terms))
        for f in range(n_fam):
            floor[f] = np.exp(theta[f, e_col])
            for k in range(n_terms):
                expo[f, k] = np.exp(theta[f, expo_cols[k]])
        term = np.empty((n_rows, n_terms))  # each term's value, then its share of the loss
        inv_loss = np.empty(n_rows)
        resid = np.empty(n_rows)
        s1 = np.zeros(n_runs)
        s2 = np.zeros(n_runs)
        for i in range(n_rows):
            f = family_index[i]
            loss = floor[f]
            for k in range(n_terms):
                e = np.exp(theta[f, amp_cols[k]] - expo[f, k] * z[k, i])
                term[i, k] = e
                loss += e
            inv = 1.0 / loss
            inv_loss[i] = inv
            r = log_loss[i] - np.log(loss)
            resid[i] = r
            j = run_index[i]
            s1[j] += r
            s2[j] += r * r
        ss = sigma_seed[()]
        so = sigma_obs[()]
        ll = 0.0
        d_ss2 = 0.0
        d_so2 = 0.0
        d_s1 = np.empty(n_runs)
        d_s2 = np.empty(n_runs)
        for j in range(n_runs):
            lj, a, b, c, d = run_terms(s1[j], s2[j], n_per_run[j], ss * ss, so * so)
            ll += lj
            d_s1[j] = a
            d_s2[j] = b
            d_ss2 += c
            d_so2 += d
        d_theta = np.zeros((n_fam, n_par))
        for i in range(n_rows):
            f = family_index[i]
            j = run_index[i]
            g = (d_s1[j] + 2.0 * resid[i] * d_s2[j]) * inv_loss[i]  # d ll / d loss_i, negated
            d_theta[f, e_col] -= g * floor[f]
            for k in range(n_terms):
                q = g * term[i, k]
                d_theta[f, amp_cols[k]] -= q
                d_theta[f, expo_cols[k]] += q * expo[f, k] * z[k, i]
        return np.array(ll), d_theta, np.array(2.0 * ss * d_ss2), np.array(2.0 * so * d_so2)

    return rows_loglik


def _register_jax() -> None:
    """Teach PyTensor's JAX backend :class:`RowsLoglik`: the same density in ``jax.numpy``, its gradient by JAX."""
    try:
        import jax
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # JAX is optional (bayes_scaling[jax])
        return

    @jax_funcify.register(RowsLoglik)
    def jax_funcify_rows_loglik(op, **kwargs):
        import jax.numpy as jnp

        def density(theta, sigma_seed, sigma_obs, log_loss, z, family_index, run_index, n_per_run):
            th = theta[family_index]
            loss = jnp.exp(th[:, op.e_col])
            for k, (amp, expo) in enumerate(zip(op.amp_cols, op.expo_cols)):
                loss = loss + jnp.exp(th[:, amp] - jnp.exp(th[:, expo]) * z[k])
            resid = log_loss - jnp.log(loss)
            n_runs = n_per_run.shape[0]
            s1 = jax.ops.segment_sum(resid, run_index, num_segments=n_runs)
            s2 = jax.ops.segment_sum(resid**2, run_index, num_segments=n_runs)
            return likelihood.run_marginal_loglik(s1, s2, n_per_run, sigma_seed, sigma_obs, xp=jnp).sum()

        value_and_grad = jax.value_and_grad(density, argnums=(0, 1, 2))

        def rows_loglik(*inputs):
            value, (d_theta, d_ss, d_so) = value_and_grad(*inputs)
            return value, d_theta, d_ss, d_so

        return rows_loglik


_register_numba()
_register_jax()
