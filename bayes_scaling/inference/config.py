"""How a fit samples, as one object: :class:`SamplerConfig` (NUTS settings and the speed options).

It is the ``sampler=`` of ``bs.fit``, written into the fit file beside the model's configuration
(:class:`~bayes_scaling.model.config.ModelConfig`); see :mod:`bayes_scaling.model.config` for what every
configuration shares.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import ConfigError
from ..model.config import Config
from .compile_cache import BACKENDS
from .parameterisation import WHITENING_MODES

ENGINES = ("auto", "nutpie", "pymc")


@dataclasses.dataclass(frozen=True)
class SamplerConfig(Config):
    """NUTS settings and the speed options; every field has a default, so ``SamplerConfig()`` is the default.

    Parameters
    ----------
    draws, tune, chains:
        The draws per chain (the budget; see ``until_converged``), the tuning steps per chain, and the
        number of chains (2000, 1000, 4).
    target_accept:
        NUTS's target acceptance rate, in [0.5, 1): higher takes smaller steps and diverges less (0.98; with
        ``whiten="auto"`` a run that diverged is sampled again at 0.995, then 0.999).
    random_seed:
        Seeds the chains, the jitter of their starts and every draw made after sampling (0).
    until_converged:
        True (default): sampling stops as soon as the draws so far pass the convergence checks of
        ``fit.diagnostics`` (R-hat <= 1.01, bulk and tail ESS >= 400 on the population parameters and noise
        scales), asked every few seconds once each chain has 200 draws (nutpie only). At ``draws`` it stops
        unless the draws are on course to pass by twice ``draws`` (no divergence, R-hat passing, each ESS
        grown in proportion to the draws reaching 400): then it goes on, up to twice ``draws``
        (:func:`.run.on_course`). Divergences, which more draws of the same chains cannot remove, do not keep
        it sampling.
        False: sample ``draws`` per chain. The calibration fits of the learned discrepancy sample by the same
        rule within the same ``draws`` (without it, at most 500 draws each).
    whiten:
        How a centred family layer of several families is parameterised for sampling; every choice is an
        exact reparameterisation, the posterior is the same (:func:`.parameterisation.family_whitening`).
        ``"auto"`` (default): the fixed whitening, switched to the conditional one when the fixed run's draws
        show the population spread mixing too slowly to pass the checks within ``draws``; the run that passes
        more checks is kept; a kept run with divergent transitions is sampled again with a smaller step
        (``target_accept`` raised to 0.995, and to 0.999 if a divergence is left; :func:`.run.smaller_step`),
        the better run kept each time, and a run that a smaller step will replace stops at its first
        divergence where its draws are read as it samples (:func:`.run.stop_rule`); the fit's calibration
        fits begin with the whitening and the step it kept (:func:`.run.inherited_start`). Also for a
        fit of one family, which has no family layer to whiten. ``fit.sampler_info["parameterisation"]`` and
        the fit's notes say what was chosen and why (:func:`.run.choose_whitening`). Any other value is the
        expert's choice: sampled as given, nothing switched. ``"fixed"`` (or True): each family's parameters
        through an affine map from its own Laplace approximation, which removes their strong within-family
        correlations. ``"conditional"``: that map combined with the sampled population prior at every step.
        False: the family parameters themselves. Recorded in ``fit.sampler_info["whitened"]``.
    noncentering:
        None (default): every family parameter centred. ``"auto"``: non-centre the family values of each
        parameter the families' data identify weakly relative to the population spread
        (:mod:`.parameterisation`); or ``{param: degree}``, 1 non-centred, a degree in (0, 1) partially.
    engine:
        The NUTS implementation: ``"auto"`` (default: nutpie when installed, else PyMC), ``"nutpie"`` or
        ``"pymc"`` (the command line's ``--sampler``).
    backend:
        nutpie's compile backend: ``"auto"`` (default: reuse a model this process compiled with numba for the
        same structure; else JAX, when installed, for a small model with the OU checkpoint noise; else numba),
        ``"numba"`` or ``"jax"`` (:func:`.compile_cache.resolve_backend`).
    fused:
        True (default): with the normal likelihood and independent checkpoint noise, the rows' log density and
        its gradient are one numba kernel (:mod:`bayes_scaling.model.fused_rows`); False builds PyTensor's
        elementwise graph (``backend="jax"`` always does). Recorded in ``fit.sampler_info["fused_rows"]``.
    progressbar:
        Show the sampler's progress bar (False).
    """

    argument: ClassVar[str] = "sampler"

    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.98
    random_seed: int = 0
    until_converged: bool = True
    whiten: bool | str = "auto"
    noncentering: Mapping[str, float] | str | None = None
    engine: str = "auto"
    backend: str = "auto"
    fused: bool = True
    progressbar: bool = False

    def __post_init__(self) -> None:
        for name, least in (("draws", 1), ("tune", 0), ("chains", 1), ("random_seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.target_accept, bool) or not isinstance(self.target_accept, (int, float)) \
                or not 0.5 <= float(self.target_accept) < 1.0:
            raise ConfigError(f"target_accept must lie in [0.5, 1), got {self.target_accept!r} (higher: smaller "
                              "steps, fewer divergences)")
        for name in ("until_converged", "fused", "progressbar"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (isinstance(self.whiten, bool) or self.whiten in ("auto",) + WHITENING_MODES):
            raise ConfigError(f"whiten must be 'auto', True, False or one of {WHITENING_MODES}, got {self.whiten!r}")
        nc = self.noncentering
        if isinstance(nc, Mapping):
            bad = {k: v for k, v in nc.items() if not (isinstance(v, (int, float)) and 0 <= v <= 1)}
            if bad:
                raise ConfigError(f"noncentering degrees must lie in [0, 1] (1: non-centred), got {bad!r}")
            object.__setattr__(self, "noncentering", dict(nc))
        elif nc not in (None, "auto"):
            raise ConfigError(f"noncentering must be None, 'auto' or {{param: degree}}, got {nc!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    def nuts_settings(self) -> dict[str, Any]:
        """The settings :func:`.sampling.run_nuts` takes."""
        return dict(draws=self.draws, tune=self.tune, chains=self.chains, random_seed=self.random_seed,
                    target_accept=self.target_accept, sampler=self.engine, backend=self.backend,
                    progressbar=self.progressbar)

    def shorter(self, most: int) -> "SamplerConfig":
        """At most ``most`` draws and tuning steps (a fit inside another), unless sampling until converged."""
        if self.until_converged:
            return self
        return self.replace(draws=min(self.draws, most), tune=min(self.tune, most))
