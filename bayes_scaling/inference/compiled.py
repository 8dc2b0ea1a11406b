"""A model spec's PyMC model, ready to sample: built, started, compiled, sampled.

:class:`CompiledModel` holds the four steps every sampler of the scaling-law model goes through:

1. **build** (:meth:`CompiledModel.build`): :func:`..model.hierarchical.build_model`, with the family layer
   whitened as asked (:func:`.parameterisation.family_whitening`);
2. **initial values** (:func:`.initial.initial_values`): the families' penalised least-squares estimates
   (``u = 0`` in whitened coordinates);
3. **compile** (:meth:`CompiledModel.compile`): nutpie's compiled model, reused through
   :mod:`.compile_cache` by every model of the same structure;
4. **sample** (:meth:`CompiledModel.sample`, :func:`.sampling.run_nuts`), or, for another data set of the
   same design, :meth:`CompiledModel.sample_data` (the compiled model with the new losses and whitening
   swapped in, no new compile).

``bs.fit`` and its calibration fits (:mod:`.run`), the mixture prior's component fits (which are fits,
:mod:`.model_averaging`), the approximate fit (:mod:`.approximate`, steps 1-2) and simulation-based
calibration (:mod:`..evaluate.sbc`, every simulation through :meth:`CompiledModel.sample_data`) all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import arviz as az
import numpy as np
import pymc as pm

from ..data import ScalingData
from ..model import ModelSpec, build_model
from ..model.hierarchical import whitening_updates, whitens
from .initial import family_point_estimates, initial_values
from .parameterisation import family_whitening
from .sampling import jittered, nutpie_settings, run_nuts, sample_nutpie

#: the whitening of a centred family layer that ``whiten=True`` means and ``whiten="auto"`` starts from:
#: ``"conditional"`` samples synthetic zoos of 20 and 40 families faster but compiles longer and diverged on
#: Porian, ColPret and a real zoo of 36 families where this one converged (docs/benchmarks.md)
DEFAULT_WHITENING = "fixed"


@dataclass
class CompiledModel:
    """``spec``'s model of ``data`` with its initial values and (once :meth:`compile` ran) nutpie's compile."""

    data: ScalingData
    spec: ModelSpec
    model: pm.Model
    initvals: dict[str, np.ndarray]
    #: the family layer's whitening (:func:`.parameterisation.family_whitening`); None: not whitened
    whitening: dict | None = None
    #: nutpie's compiled model and where it came from (:func:`.compile_cache.compile_nutpie`), after :meth:`compile`
    compiled: Any = field(default=None, repr=False)
    compile_source: str | None = None

    @classmethod
    def build(cls, data: ScalingData, spec: ModelSpec, estimates: np.ndarray | None = None, *,
              whiten: bool | str = True, fused: bool = True) -> "CompiledModel":
        """Steps 1 and 2: the model and its initial values.

        ``whiten``: whiten a centred family layer of several families: True or ``"auto"`` for
        :data:`DEFAULT_WHITENING`, or a mode of ``WHITENING_MODES``; False: not.
        ``estimates``: :func:`.initial.family_point_estimates` of ``data`` and ``spec`` when already computed.
        ``fused``: the rows' likelihood as one kernel (:mod:`..model.fused_rows`); False for PyTensor's JAX backend.
        """
        whitening = None
        if whiten and whitens(spec):
            estimates = family_point_estimates(data, spec) if estimates is None else estimates
            whitening = family_whitening(data, spec, estimates, DEFAULT_WHITENING if whiten in (True, "auto") else whiten)
        return cls(data, spec, build_model(data, spec, whitening, fused=fused),
                   initial_values(data, spec, estimates, whitening), whitening)

    @property
    def whitened(self) -> str | None:
        """The whitening's mode (``"fixed"``, ``"conditional"``), or None."""
        return None if self.whitening is None else self.whitening["mode"]

    def compile(self, backend: str = "numba") -> "CompiledModel":
        """Step 3: nutpie's compiled model (the noise and correlation parameters jittered at the start); self."""
        from .compile_cache import compile_nutpie

        self.compiled, self.compile_source, _ = compile_nutpie(self.model, self.initvals, jittered(self.model), backend=backend)
        return self

    def sample(self, *, stop: Callable[[az.InferenceData, int], str | None] | None = None,
               **settings: Any) -> tuple[az.InferenceData, dict]:
        """Step 4: NUTS on this model (:func:`.sampling.run_nuts`, which compiles through the same cache);
        ``settings``: :meth:`.config.SamplerConfig.nuts_settings`."""
        return run_nuts(self.model, self.initvals, stop=stop, **settings)

    def sample_data(self, data: ScalingData, *, seed: int, draws: int, tune: int, chains: int,
                    target_accept: float) -> az.InferenceData:
        """Step 4 for another data set of this design (the same rows, other losses): the compiled model with
        ``data``'s losses, and its own whitening, swapped in; ``u = 0`` then starts at ``data``'s own estimates."""
        if self.compiled is None:
            self.compile()
        updates = {"log_loss_obs": np.log(data.frame["loss"].to_numpy())}
        if self.whitening is not None:
            updates.update(whitening_updates(family_whitening(data, self.spec, mode=self.whitened)))
        return sample_nutpie(self.compiled.with_data(**updates), seed=seed,
                             **nutpie_settings(draws=draws, tune=tune, chains=chains, target_accept=target_accept))
