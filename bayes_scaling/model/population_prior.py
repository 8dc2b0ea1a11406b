"""A population prior: what a fitted hierarchical model says about a *new* family, saved on its own.

Extracted from a fit as draws of a new family's law parameters in natural units (by default a
Polya-urn blend of the model's LKJ-correlated population and the fitted families themselves; see
:meth:`PopulationPrior.from_fit`), the noise scales (with the correlation length and drift share of
the checkpoint noise when the source fit modelled it, ``checkpoint_noise="ou"``) and the learned
extrapolation discrepancy. Natural units make the prior independent of the
reference scales of the fit it came from; when a new family is fitted, the draws are moved to the
new data's reference scales and moment-matched to a multivariate normal on the sampling scale
(correlations kept), the noise scales to a log-normal total and a Beta seed share, and (OU source
fits) the correlation length to a log-normal and the drift share to a Beta. A new family fitted with
OU checkpoint noise from a prior without them starts both from their default priors.

File format: one small NetCDF file (xarray Dataset, dims ``sample`` and ``law_param``).

>>> prior = bs.PopulationPrior.from_fit(fit)            # doctest: +SKIP
>>> prior.save("population.nc")                           # doctest: +SKIP
>>> new = bs.fit(one_small_model, borrow="population.nc") # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..data.extent import DIRECTIONS, per_direction
from ..data.loaders import bundled_file
from ..errors import FitFileError, PriorError
from ..laws import Law, get_law, sampling_moments
from ..storage import PRIOR_KIND, write_netcdf
from .draws import LawDraws, law_log_loss, query_columns

#: version of the prior file's layout; a file written by a newer layout is refused with what to do
PRIOR_VERSION = 1
#: prior predictive tail probability below which a new family's data conflict with a borrowed prior
CONFLICT_P_VALUE = 1e-3
#: a family identifies its own N-exponent when its model sizes span at least this many decades of parameters
#: (ColPret's c4 and oscar, 2.8B-8.7B, span 0.49: after the 10B-token cut their exponents ran to 1.4-1.8)
MIN_EXPONENT_SPAN_DECADES = 0.5
#: a borrowed N-exponent needs at least this many source families that identify their own
MIN_EXPONENT_SOURCES = 2
#: what a new family is like: the model's population, the fitted families, a Polya-urn blend of both, or the
#: same urn kept as a mixture whose components a borrowed fit weighs by their evidence
POPULATIONS = ("blend", "model", "families", "mixture")
DEFAULT_POPULATION = "blend"
#: the mixture component that is a fresh draw from the model's population
POPULATION_COMPONENT = "(population)"
#: draws per mixture component (each component is moment-matched on its own when a new family is fitted)
MIXTURE_COMPONENT_DRAWS = 1000
#: what ``borrow="published"`` (``--borrow published``) names: the prior shipped with the package
PUBLISHED = "published"
#: sd (log loss) of the loss level a level-free prior leaves to the new family's data, around the level
#: its data put each prior draw at: wide (a factor of 1.65 per sd), so that the data set it
FREE_LEVEL_SD = 0.5
#: the fewest degrees of freedom of a borrowed prior's t (:attr:`PopulationPrior.tail_df`): below 3 its
#: variance, which the moment-matched covariance sets, is not finite
MIN_TAIL_DF = 3.0


def borrowed_scale(entry: dict[str, Any]) -> tuple[float | None, np.ndarray]:
    """A borrowed spec entry's (:meth:`PopulationPrior.as_spec_entry`) distribution of the new family's
    parameters: its t's degrees of freedom (None: normal) and scale matrix, whose covariance is ``entry["cov"]``
    (a t's scale is its covariance times (df - 2) / df)."""
    cov = np.asarray(entry["cov"], float)
    df = entry.get("tail_df")
    return (None, cov) if df is None else (float(df), cov * (float(df) - 2) / float(df))


def borrowed_logpdf(entry: dict[str, Any], theta: np.ndarray) -> np.ndarray:
    """Log density of parameter vectors ``theta`` (draw, param) under a borrowed spec entry."""
    from scipy import stats

    df, scale = borrowed_scale(entry)
    mean = np.asarray(entry["mean"], float)
    if df is None:
        return stats.multivariate_normal(mean, scale).logpdf(theta)
    return stats.multivariate_t(mean, scale, df=df).logpdf(theta)


def tails_text(tails: float | None) -> str:
    """How a discrepancy's tails read in a summary: nothing for normal ones (None or infinite)."""
    if tails is None or not np.isfinite(tails):
        return ""
    return f" with heavier-than-normal tails (variance-gamma, shape {tails:g})"


def tail_df(families: int) -> float:
    """Degrees of freedom of a new family's parameters when the population's spread is known from ``families``
    families: the predictive of one more draw from a normal population whose variance is estimated from F draws
    is a t with F - 1 degrees of freedom."""
    return float(max(families - 1, MIN_TAIL_DF))


@dataclass
class PopulationPrior:
    """Draws of a new family's parameters (natural units) and of the noise and discrepancy scales."""

    law: str
    natural: np.ndarray  # (sample, law_param) in the law's natural order
    sigma_seed: np.ndarray
    sigma_obs: np.ndarray
    kappa: np.ndarray
    drift: np.ndarray
    source: str = ""
    #: log10 of the largest compute of the source families (where their discrepancy starts; None: unknown)
    max_log10_flops: float | None = None
    #: the OU checkpoint noise's correlation length (decades of tokens) and drift share; None when the
    #: source fit had independent checkpoint noise
    ou_length: np.ndarray | None = None
    ou_share: np.ndarray | None = None
    #: decades of parameters spanned by each source family's model sizes (log10 of largest / smallest);
    #: None: unknown (a prior saved before this was recorded)
    size_spans: dict[str, float] | None = None
    #: the discrepancy's growth exponent with distance and the share of it common to all families, per draw
    #: (None: linear growth, nothing shared)
    growth: np.ndarray | None = None
    shared: np.ndarray | None = None
    #: per draw, the mixture component it belongs to (``population="mixture"``: a source family's name or
    #: :data:`POPULATION_COMPONENT`); None: one distribution, moment-matched as a whole
    component: np.ndarray | None = None
    #: the law's declaration when it is not built in (:attr:`ModelSpec.law_definition`)
    law_definition: dict | None = None
    #: True: the prior does not carry the loss level (its families' losses are on other evaluation sets and
    #: tokenizers than a new family's); a borrowed fit puts each draw at the level of the new family's data
    #: and leaves it :data:`FREE_LEVEL_SD` wide (:meth:`as_spec_entry`), and the conflict check asks about
    #: the trend of the losses, not their level
    free_level: bool = False
    #: one record per source family (zoo, family, sizes, tokens, loss, licence); the published prior's table
    provenance: list[dict] | None = None
    #: the published prior's version (None for a prior extracted from a user's fit)
    version: str | None = None
    #: a factor on the spread of the borrowed parameters (their covariance times its square, about their mean):
    #: the published prior's is chosen by calibrating borrowed predictions on its source families; 1 otherwise
    spread_scale: float = 1.0
    #: how the spread scale and discrepancy were chosen: one record per candidate (the published prior)
    calibration: list[dict] | None = None
    #: degrees of freedom of the borrowed parameters' multivariate t (:meth:`as_spec_entry`); None (the default):
    #: normal. A spread estimated from F families is itself uncertain, so a new family drawn from the same
    #: population is t-distributed about their mean with F - 1 degrees of freedom (``from_fit(tails=True)``)
    tail_df: float | None = None
    #: the gamma shape of the borrowed discrepancy's tails (:func:`bayes_scaling.predict.tail_weights`); None: normal.
    #: A calibration on a population where most families extrapolate alike and a few far otherwise (code corpora
    #: among web corpora) chooses a finite one: a narrow centre with tails that reach the outliers
    discrepancy_tails: float | None = None
    #: True: the source fit's discrepancy is a relative error of the whole loss (``ModelConfig(discrepancy_scale=
    #: "loss")``), and so is the borrowed one; False: of the reducible loss
    discrepancy_on_loss: bool = False

    def __post_init__(self) -> None:
        self.kappa, self.drift = per_direction(self.kappa), per_direction(self.drift)
        n = len(self.sigma_seed)
        self.growth = np.ones(n) if self.growth is None else np.asarray(self.growth, dtype=float)
        self.shared = np.zeros(n) if self.shared is None else np.asarray(self.shared, dtype=float)
        if (self.ou_length is None) != (self.ou_share is None):
            raise PriorError("a population prior carries both ou_length and ou_share draws, or neither")
        if self.component is not None:
            self.component = np.asarray(self.component, dtype=str)
            if self.component.shape != self.sigma_seed.shape:
                raise PriorError(f"{self.component.shape[0]} component labels for {self.sigma_seed.shape[0]} draws")

    @property
    def law_obj(self) -> Law:
        return Law.from_dict(self.law_definition) if self.law_definition else get_law(self.law)

    @property
    def is_mixture(self) -> bool:
        return self.component is not None

    @property
    def component_names(self) -> list[str]:
        """A mixture prior's component names, in the order their draws first appear."""
        if self.component is None:
            raise PriorError("this population prior is not a mixture (extract it with population='mixture')")
        return list(dict.fromkeys(self.component.tolist()))

    def components(self) -> dict[str, "PopulationPrior"]:
        """A mixture prior's components, each a prior of its own draws (in the order they first appear)."""
        return {name: self._subset(self.component == name, f"{name}, one component of {self.source}")
                for name in self.component_names}

    def _subset(self, keep: np.ndarray, source: str) -> "PopulationPrior":
        """The draws in ``keep`` as a prior of their own (one distribution: no component labels)."""
        pick = lambda x: None if x is None else x[keep]  # noqa: E731
        return replace(self, natural=self.natural[keep], sigma_seed=self.sigma_seed[keep],
                       sigma_obs=self.sigma_obs[keep], kappa=self.kappa[keep], drift=self.drift[keep],
                       growth=self.growth[keep], shared=self.shared[keep], ou_length=pick(self.ou_length),
                       ou_share=pick(self.ou_share), component=None, source=source)

    @classmethod
    def from_fit(cls, fit: Any, draws: int = 4000, random_seed: int = 0,
                 population: str = DEFAULT_POPULATION, without: str | None = None,
                 tails: bool = False) -> "PopulationPrior":
        """The predictive distribution of a new family's parameters from a fitted :class:`ScalingFit`.

        ``population`` says what a new family is like (see :data:`POPULATIONS`):

        ``"model"``
            the hierarchical model's own predictive: per posterior draw, ``mu`` plus a deviation from the
            LKJ-correlated population (with the loss-level factor). With a handful of families the
            spreads ``tau`` and the correlations are mostly prior, so this is wide and its correlations
            are shrunk towards zero.
        ``"families"``
            the fitted families themselves: per posterior draw, the parameters of one fitted family
            chosen at random (the empirical distribution of the families, with their correlations
            exactly). It cannot imagine a family unlike every fitted one.
        ``"blend"``
            the Polya-urn predictive of a Dirichlet process with concentration 1 (Blackwell and
            MacQueen 1973): with probability 1/(F+1) a new family is a fresh draw from the model's
            population, otherwise it is like one of the F fitted families. The fewer the families, the
            more weight the model's wider population keeps.
        ``"mixture"``
            the same urn kept as a mixture of F+1 components of equal prior weight: the model's population,
            and for each fitted family its parameters with a loss floor ``log_E`` of the new family's own
            (spread: the population's sd of ``log_E``; the guide's transfer assumption, which the ``donor``
            baseline makes with point estimates). A borrowed fit fits each component and weighs them by
            their marginal likelihood (:mod:`bayes_scaling.inference.model_averaging`), so a new family's
            data choose which fitted families it is like.

        Except for ``"mixture"``, the draws are moment-matched to one multivariate normal when a new family
        is fitted, so the choice sets the mean and covariance of the borrowed prior. ``tails=True`` makes it a
        multivariate t with the same covariance and :func:`tail_df` of the families in the urn as its degrees
        of freedom (:attr:`tail_df`; not for a mixture, whose components are each one family's posterior).

        ``without``: a fitted family left out of the urn (``"blend"``, ``"families"``, ``"mixture"``), as if
        it were new: how a borrowed prediction of it is scored
        (:mod:`bayes_scaling.inference.borrow_calibration`). The model's population keeps what the family
        taught its hyperparameters.

        The spread of what is extracted here is the fitted population's; a prior calibrated on the fit's own
        families, as ``bs.fit(..., borrow=fit)`` and ``bayes-scaling prior FIT.nc`` borrow it, is
        :func:`bayes_scaling.priors.calibrated_prior`.
        """
        from ..predict import new_family_theta, posterior_arrays

        if population not in POPULATIONS:
            raise PriorError(f"population must be one of {POPULATIONS}, got {population!r}")
        arrays = posterior_arrays(fit.idata.posterior)
        rng = np.random.default_rng(random_seed)
        theta = new_family_theta(arrays, rng, fit.law.level_vector)  # raises for single-family fits: nothing to borrow
        idx = rng.choice(theta.shape[0], size=min(draws, theta.shape[0]), replace=False)
        families = list(fit.spec.families)
        if without is not None and without not in families:
            raise PriorError(f"without={without!r} is not a family of this fit; it has {families}")
        kept = np.array([i for i, f in enumerate(families) if f != without])
        if len(kept) == 0 and population != "model":
            raise PriorError(f"without={without!r} leaves no fitted family to borrow from")
        n_fam = len(kept)
        component = None
        if population == "mixture":  # every component the same draws of the fit: equal prior weights
            idx = np.tile(idx[:MIXTURE_COMPONENT_DRAWS], n_fam + 1)
            which = np.repeat(np.arange(n_fam + 1), len(idx) // (n_fam + 1))
            own = _own_loss_floor(arrays["theta"][idx, kept[np.minimum(which, n_fam - 1)], :], arrays, idx, fit.law,
                                  rng)
            theta = np.where((which == n_fam)[:, None], theta[idx], own)
            component = np.append(np.asarray(families, dtype=str)[kept], POPULATION_COMPONENT)[which]
        elif population == "model":
            theta = theta[idx]
        else:
            fitted_family = arrays["theta"][idx, kept[rng.integers(0, n_fam, len(idx))], :]
            if population == "families":
                theta = fitted_family
            elif population == "blend":
                fresh = rng.random(len(idx)) < 1.0 / (n_fam + 1)
                theta = np.where(fresh[:, None], theta[idx], fitted_family)
        law = fit.law
        nat = law.to_natural({p: theta[:, k] for k, p in enumerate(law.sampling)}, fit.spec.reference)
        return cls(law=law.name, natural=np.column_stack([nat[k] for k in law.natural]),
                   sigma_seed=arrays["sigma_seed"][idx], sigma_obs=arrays["sigma_obs"][idx],
                   kappa=arrays["kappa"][idx], drift=arrays["drift"][idx], growth=arrays["growth"][idx],
                   shared=arrays["shared"][idx], discrepancy_on_loss=bool(np.any(arrays["on_loss"][idx] > 0)),
                   source=f"{len(fit.spec.families)} families ({population}): {', '.join(fit.spec.families)}",
                   max_log10_flops=max(fit.spec.family_max_log10_flops.values()),
                   size_spans=size_spans(fit.data), component=component, law_definition=fit.spec.law_definition,
                   tail_df=(tail_df(n_fam if population != "model" else len(families))
                            if tails and component is None else None),
                   **{k: arrays[k][idx] for k in ("ou_length", "ou_share") if k in arrays})

    def exponent_support(self, new_span: float) -> dict[str, Any] | None:
        """:func:`exponent_support` of this prior's source families (None when their spans are unknown)."""
        return None if self.size_spans is None else exponent_support(self.size_spans, new_span)

    def family_draws(self) -> LawDraws:
        """What this prior says about a new family before any of its runs is trained: its draws, with the
        discrepancy a borrowed fit gets (:meth:`borrowed_discrepancy`)."""
        law = self.law_obj
        disc = self.borrowed_discrepancy()
        return LawDraws(law=law, natural={k: self.natural[:, i] for i, k in enumerate(law.natural)},
                        sigma_seed=self.sigma_seed, sigma_obs=self.sigma_obs, drift=np.zeros_like(disc["kappa"]),
                        **disc, ou_length=self.ou_length, ou_share=self.ou_share,
                        population_log10_flops=self.max_log10_flops, new_family=True,
                        source=f"borrowed population prior ({self.source})")

    def borrowed_discrepancy(self) -> dict[str, np.ndarray]:
        """The discrepancy of a family that borrows this prior, per draw (``kappa`` per direction, ``growth``,
        ``shared``): how the source families' laws extrapolated beyond their data. Their drift is a trend of
        *their* fitted laws, whose sign need not carry over to a new family's law fitted on a few small models,
        so it widens the new family's discrepancy (``kappa`` and ``|drift|`` together) instead of shifting it."""
        tails = np.full(len(self.sigma_seed), np.inf if self.discrepancy_tails is None else self.discrepancy_tails)
        return {"kappa": np.hypot(self.kappa, self.drift), "growth": self.growth, "shared": self.shared,
                "tails": tails, "on_loss": np.full(len(self.sigma_seed), float(self.discrepancy_on_loss))}

    # ------------------------------------------------------------------ moments for a new fit
    def sampling_moments(self, reference: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the parameters on the sampling scale at ``reference``."""
        law = self.law_obj
        return sampling_moments(law, self.natural_draws(law)[0], reference)

    def supplies(self, law: Law) -> list[str]:
        """The parameters of ``law`` this prior supplies: those its own law declares alike (same transform
        and anchor), and an anchor's exponent only together with the amplitude it anchors (the compute law's
        ``alpha``, an exponent of compute, is not the Chinchilla law's, an exponent of size)."""
        own = {p.name: p for p in self.law_obj.parameters}
        alike = {p.name for p in law.parameters if p.name in own and (p.transform, p.anchor)
                 == (own[p.name].transform, own[p.name].anchor)}
        for p in law.parameters:  # an exponent goes with its amplitude
            if p.anchor and isinstance(p.anchor[1], str) and p.name not in alike:
                alike.discard(p.anchor[1])
        return [p.name for p in law.parameters if p.name in alike]

    def natural_draws(self, law: Law, priors: Any = None, reference: dict[str, float] | None = None,
                      random_seed: int = 0) -> tuple[dict[str, np.ndarray], list[str]]:
        """This prior's draws of ``law``'s natural parameters, and the names it could not supply.

        A parameter the prior does not carry (:meth:`supplies`) is drawn from ``priors`` (a :class:`Priors`
        of ``law``), as a new family's value would be: the population mean's prior widened by the family
        spread, independent of the rest.
        """
        own = {k: self.natural[:, i] for i, k in enumerate(self.law_obj.natural)}
        supplied = self.supplies(law)
        missing = [p.name for p in law.parameters if p.name not in supplied]
        if not supplied:
            raise PriorError(f"the borrowed prior ({self.law} law; parameters {list(self.law_obj.natural)}) supplies "
                             f"none of the {law.name!r} law's parameters {list(law.natural)}; borrow a prior "
                             f"extracted from a fit of the {law.name!r} law")
        if not missing:
            return {k: own[k] for k in law.natural}, []
        if priors is None or reference is None:
            raise PriorError(f"the {law.name!r} law's parameters {missing} are not in this prior; they need the "
                             "fit's own priors and reference scales")
        rng = np.random.default_rng(random_seed)
        n = len(self.sigma_seed)
        theta = {p.sampling: rng.normal(priors.mu[p.sampling]["mu"],
                                        np.hypot(priors.mu[p.sampling]["sigma"], priors.tau[p.sampling].scale), n)
                 for p in law.parameters}
        fresh = law.to_natural(theta, reference)
        return {p.name: own[p.name] if p.name in supplied else fresh[p.name] for p in law.parameters}, missing

    def level_shifts(self, law: Law, natural: dict[str, np.ndarray], observed: dict[str, np.ndarray]) -> np.ndarray:
        """Per draw, the log factor that puts its law at the observed losses' level: the median over the
        observations of log(observed / predicted)."""
        columns = {k: v for k, v in observed.items() if k != "loss"}
        return np.nanmedian(log_residuals(law, natural, columns, observed["loss"]), axis=1)

    def as_spec_entry(self, reference: dict[str, float], *, law: Law | None = None, priors: Any = None,
                      observed: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The borrowed prior of a new family fitted with ``law`` (default: the prior's own) at ``reference``:
        the moments of its parameters on the sampling scale, the noise priors, and the parameters it could
        not supply (drawn from ``priors``). A level-free prior (:attr:`free_level`) needs ``observed`` (the
        new family's ``params``, ``tokens``, ``flops``, further inputs and ``loss``): each draw is moved along
        the law's level direction to the data's level, and that direction is left :data:`FREE_LEVEL_SD` wide."""
        law = law or self.law_obj
        natural, missing = self.natural_draws(law, priors, reference)
        if self.free_level:
            if observed is None:
                raise PriorError("a level-free prior is moved to the new family's level: pass observed=")
            shift = np.exp(self.level_shifts(law, natural, observed))
            levels = {p.name for p in law.parameters if p.level}  # a level parameter scales the whole loss
            natural = {k: v * shift if k in levels else v for k, v in natural.items()}
        mean, cov = sampling_moments(law, natural, reference)
        cov = self.spread_scale**2 * cov
        if self.free_level:
            cov = cov + FREE_LEVEL_SD**2 * np.outer(law.level_vector, law.level_vector)
        return {"mean": mean.tolist(), "cov": cov.tolist(), **self.noise_moments(), "source": self.source,
                "not_supplied": missing, "free_level": self.free_level, "provenance": self.provenance,
                "spread_scale": float(self.spread_scale), "calibrated": self.calibration is not None,
                "tail_df": self.tail_df,
                "discrepancy_kappa": float(np.median(self.borrowed_discrepancy()["kappa"][:, 0])),
                "discrepancy_tails": self.discrepancy_tails, "discrepancy_on_loss": self.discrepancy_on_loss}

    def noise_moments(self) -> dict[str, list[float]]:
        """Moment-matched noise priors: LogNormal (mu, sigma) of sigma_total and Beta (a, b) of the seed
        share; with OU draws also LogNormal of ou_length and Beta of ou_share."""
        total2 = self.sigma_seed**2 + self.sigma_obs**2
        out = {"sigma_total_lognormal": _lognormal_moments(np.sqrt(total2)),
               "seed_share_beta": _beta_moments(self.sigma_seed**2 / total2)}
        if self.ou_length is not None:
            out.update(ou_length_lognormal=_lognormal_moments(self.ou_length),
                       ou_share_beta=_beta_moments(self.ou_share))
        return out

    # ------------------------------------------------------------------ I/O
    def to_dataset(self) -> xr.Dataset:
        law = self.law_obj
        ds = xr.Dataset(
            {"natural": (("sample", "law_param"), self.natural), "sigma_seed": ("sample", self.sigma_seed),
             "sigma_obs": ("sample", self.sigma_obs), "kappa": (("sample", "direction"), self.kappa),
             "drift": (("sample", "direction"), self.drift), "discrepancy_growth": ("sample", self.growth),
             "discrepancy_shared": ("sample", self.shared)},
            coords={"law_param": list(law.natural), "direction": list(DIRECTIONS)})
        if self.ou_length is not None:
            ds["ou_length"] = ("sample", self.ou_length)
            ds["ou_share"] = ("sample", self.ou_share)
        if self.component is not None:
            ds["component"] = ("sample", self.component.astype(str))
        ds.attrs.update(kind=PRIOR_KIND, law=self.law, source=self.source, version=PRIOR_VERSION)
        if self.law_definition:
            ds.attrs["law_definition"] = json.dumps(self.law_definition)
        if self.max_log10_flops is not None:
            ds.attrs["max_log10_flops"] = float(self.max_log10_flops)
        if self.size_spans is not None:
            ds.attrs["size_spans"] = json.dumps(self.size_spans)
        ds.attrs["free_level"] = int(self.free_level)
        if self.provenance is not None:
            ds.attrs["provenance"] = json.dumps(self.provenance)
        if self.version is not None:
            ds.attrs["published_version"] = self.version
        ds.attrs["spread_scale"] = float(self.spread_scale)
        if self.calibration is not None:
            ds.attrs["calibration"] = json.dumps(self.calibration)
        if self.tail_df is not None:
            ds.attrs["tail_df"] = float(self.tail_df)
        if self.discrepancy_tails is not None:
            ds.attrs["discrepancy_tails"] = float(self.discrepancy_tails)
        if self.discrepancy_on_loss:
            ds.attrs["discrepancy_on_loss"] = 1
        return ds

    def save(self, path: str | os.PathLike) -> Path:
        return write_netcdf(self.to_dataset(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PopulationPrior":
        """Read a saved prior (:func:`bayes_scaling.open` reads a fit too, and ``borrow=`` takes either)."""
        path = Path(path)
        if not path.exists():
            raise missing_prior_file(path)
        try:
            opened = xr.open_dataset(path)
        except Exception as exc:  # noqa: BLE001 - any reader error means the same thing to the user
            raise FitFileError(f"{path} is not a readable NetCDF prior or fit ({type(exc).__name__}: {exc}); "
                               "write it again with bayes-scaling prior or fit") from None
        with opened as ds:
            if ds.attrs.get("kind") == PRIOR_KIND:
                if int(ds.attrs.get("version", 1)) > PRIOR_VERSION:
                    raise FitFileError(f"{path} was written by a newer bayes_scaling (prior file version "
                                       f"{ds.attrs['version']}; this version reads up to {PRIOR_VERSION}). Upgrade "
                                       "bayes_scaling (pip install -U bayes_scaling), or extract the prior again "
                                       "with this version (bayes-scaling prior FIT.nc --out PRIOR.nc).")
                ds = ds.load()
                return cls(law=ds.attrs["law"], natural=ds["natural"].to_numpy(),
                           sigma_seed=ds["sigma_seed"].to_numpy(), sigma_obs=ds["sigma_obs"].to_numpy(),
                           kappa=ds["kappa"].to_numpy(), drift=ds["drift"].to_numpy(),
                           growth=ds["discrepancy_growth"].to_numpy() if "discrepancy_growth" in ds else None,
                           shared=ds["discrepancy_shared"].to_numpy() if "discrepancy_shared" in ds else None,
                           source=str(ds.attrs.get("source", "")),
                           max_log10_flops=(float(ds.attrs["max_log10_flops"]) if "max_log10_flops" in ds.attrs
                                            else None),
                           size_spans=json.loads(ds.attrs["size_spans"]) if "size_spans" in ds.attrs else None,
                           component=ds["component"].to_numpy().astype(str) if "component" in ds else None,
                           law_definition=(json.loads(ds.attrs["law_definition"]) if "law_definition" in ds.attrs
                                           else None),
                           free_level=bool(int(ds.attrs.get("free_level", 0))),
                           provenance=json.loads(ds.attrs["provenance"]) if "provenance" in ds.attrs else None,
                           version=ds.attrs.get("published_version"),
                           spread_scale=float(ds.attrs.get("spread_scale", 1.0)),
                           calibration=json.loads(ds.attrs["calibration"]) if "calibration" in ds.attrs else None,
                           tail_df=float(ds.attrs["tail_df"]) if "tail_df" in ds.attrs else None,
                           discrepancy_tails=(float(ds.attrs["discrepancy_tails"])
                                              if "discrepancy_tails" in ds.attrs else None),
                           discrepancy_on_loss=bool(int(ds.attrs.get("discrepancy_on_loss", 0))),
                           **{k: ds[k].to_numpy() for k in ("ou_length", "ou_share") if k in ds})
        raise FitFileError(f"{path} is not a population prior (a fit, or another file): bs.open({str(path)!r}) reads "
                           "any file bayes_scaling writes, PopulationPrior.from_fit(fit) extracts a fit's prior, and "
                           "borrow= takes the fit's file as it is")

    @classmethod
    def published(cls) -> "PopulationPrior":
        """The population prior shipped with the package, fitted on every licence-clean published zoo it
        bundles (:mod:`bayes_scaling.data.zoos`); level-free (:attr:`free_level`). Its families and how it
        was made: :meth:`provenance_table`; rebuilt by ``bayes-scaling prior published --rebuild``."""
        return cls.load(published_prior_path())

    def provenance_table(self) -> pd.DataFrame:
        """One row per source family: zoo, family, model sizes, tokens, loss and licence (empty when this
        prior records none)."""
        return pd.DataFrame(self.provenance or [])

    @classmethod
    def coerce(cls, borrow: Any) -> "PopulationPrior":
        """A PopulationPrior from a prior, the path to a prior, or ``"published"`` (:meth:`published`). A fit is
        not taken here: its prior is calibrated on its families before it is borrowed
        (:func:`bayes_scaling.priors.calibrated_prior`, which ``bs.fit(..., borrow=fit)`` calls)."""
        if isinstance(borrow, PopulationPrior):
            return borrow
        if isinstance(borrow, str) and borrow == PUBLISHED:
            return cls.published()
        if isinstance(borrow, (str, os.PathLike)):
            return cls.load(borrow)
        if hasattr(borrow, "idata") and hasattr(borrow, "spec"):
            raise PriorError("a fit's population prior is calibrated on its families before it is borrowed: "
                             "bs.priors.calibrated_prior(fit), or borrow=fit in bs.fit, which calls it")
        raise PriorError(f"borrow must be a PopulationPrior, a ScalingFit, a path or {PUBLISHED!r}, got "
                         f"{type(borrow).__name__}")

    def conflict(self, params: np.ndarray, tokens: np.ndarray, loss: np.ndarray,
                 flops: np.ndarray | None = None, inputs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """How surprising a new family's observed losses are under this prior (a prior predictive check).

        For each prior draw, the observations' log residuals against that draw's law plus its noise. For a
        prior that carries the loss level, the statistic is their mean: ``log_ratio`` is its median (the
        observed loss over the prior predictive, log scale). For a level-free prior (:attr:`free_level`),
        whose level the new family's data set, it is their trend: the slope of the residuals in log loss
        per decade of compute (``slope``, its median), which needs observations at two budgets or more
        (else ``p_value`` is 1 and ``checked`` False). ``p_value`` is the two-sided tail probability of
        zero under the draws; below :data:`CONFLICT_P_VALUE` (0.001) the family's losses are not like the
        source families': another loss, unit or evaluation (level), or a curve no source family has (trend).
        ``inputs``: the law's further inputs (``unique_tokens``), when it reads any.
        """
        law = self.law_obj
        cols = query_columns(params, tokens, flops, inputs, law)
        resid = log_residuals(law, {k: self.natural[:, i] for i, k in enumerate(law.natural)}, cols, loss)
        rng = np.random.default_rng(0)
        z = rng.standard_normal(len(self.sigma_seed))
        if self.free_level:
            x = np.log10(cols["flops"]) - np.log10(cols["flops"]).mean()
            sxx = float(np.sum(x**2))
            if sxx < 1e-6:  # one budget: a level-free prior has nothing to check
                return {"p_value": 1.0, "slope": float("nan"), "statistic": "trend", "checked": False}
            finite = np.all(np.isfinite(resid), axis=1)
            stat = resid[finite] @ x / sxx - self.sigma_obs[finite] * z[finite] / np.sqrt(sxx)
            key = "slope"
        else:
            stat = np.nanmean(resid, axis=1) - np.hypot(self.sigma_seed, self.sigma_obs) * z
            stat = stat[np.isfinite(stat)]
            key = "log_ratio"
        tail = min(float(np.mean(stat <= 0)), float(np.mean(stat >= 0)))
        return {"p_value": min(1.0, 2 * tail), key: float(np.median(stat)),
                "statistic": "trend" if self.free_level else "level", "checked": True}

    def summary(self) -> str:
        """What the prior holds, for a person: a new family's parameters (median and 90% interval), the noise
        and discrepancy scales, what a borrowed fit takes from it, and (a published prior) its source families."""
        law = self.law_obj
        q = np.quantile(self.natural, [0.05, 0.5, 0.95], axis=0)
        spread = "" if self.spread_scale == 1 else f"; a borrowed fit scales their spread x{self.spread_scale:g} about their mean"
        if self.tail_df is not None:
            spread += f"; a borrowed fit takes them as a multivariate t with {self.tail_df:g} degrees of freedom"
        lines = [self.describe(), "", f"a new family's {law.name} law parameters, the draws (median [90% interval]"
                 f"{spread}):"]
        lines += [f"  {k:>8} {q[1, i]:.4g} [{q[0, i]:.4g}, {q[2, i]:.4g}]" for i, k in enumerate(law.natural)]
        for name, x in (("seed noise sd (log loss)", self.sigma_seed), ("checkpoint noise sd (log loss)", self.sigma_obs),
                        ("discrepancy kappa per decade of compute beyond the data", self.kappa[:, 0])):
            lo, mid, hi = np.quantile(x, [0.05, 0.5, 0.95])
            lines.append(f"  {name}: {mid:.3g} [{lo:.3g}, {hi:.3g}]")
        if self.calibration:
            best = next((r for r in self.calibration if r.get("chosen")), None) or min(self.calibration,
                                                                                     key=lambda r: r["crps"])
            groups = f" of {best['groups']} {'zoos' if self.version else 'families'}, each counted once"
            lines += ["", f"calibrated on {best['tasks']} borrowing tasks{groups} (a source family's smallest model, or "
                      f"two smallest, borrowing it; its largest predicted): the parameters' spread x{self.spread_scale:g}, "
                      f"a discrepancy of {best['kappa']:g} per decade of distance{tails_text(best.get('tails'))}; "
                      f"there, median ARE {best['median_are']:.1%}, 90% "
                      f"coverage {best['cover90']:.0%}, median 90% width {best['width90']:.0%} of the loss"]
        if self.free_level:
            lines += ["", "carried to a new family: the exponents, the shape of the curve (how E, A and B relate), the "
                      "seed and checkpoint noise relative to the loss, and the extrapolation discrepancy. Not carried: "
                      "the loss level (E, A and B scaled together), which a borrowed fit takes from the new family's "
                      "data, since losses on other evaluation sets and tokenizers are not comparable."]
        tab = self.provenance_table()
        if not tab.empty:
            shown = tab.assign(params=[f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(tab["min_params"], tab["max_params"])],
                               tokens=[f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(tab["min_tokens"], tab["max_tokens"])])
            lines += ["", f"source families ({len(tab)}):",
                      shown[["zoo", "family", "runs", "sizes", "params", "tokens", "rows"]].to_string(index=False),
                      "", "zoos:"]
            for zoo, g in tab.groupby("zoo", sort=False):
                r = g.iloc[0]
                lines.append(f"  {zoo}: {r['loss']}; {r['licence']}; {r['source']}")
        return "\n".join(lines)

    def describe(self) -> str:
        law = self.law_obj
        med = np.median(self.natural, axis=0)
        parts = ", ".join(f"{k}~{v:.3g}" for k, v in zip(law.natural, med))
        if self.ou_length is not None:
            parts += (f"; checkpoint drift: ou_length~{np.median(self.ou_length):.3g} decades, "
                      f"ou_share~{np.median(self.ou_share):.3g}")
        if self.component is not None:
            parts += f"; a mixture of {len(self.component_names)} components"
        if self.free_level:
            parts += "; the loss level is left to the new family's data"
        name = f"published population prior {self.version}" if self.version else "population prior"
        return f"{name} ({self.source}): {parts}; {len(self.sigma_seed)} draws"


def log_residuals(law: Law, natural: dict[str, np.ndarray], columns: dict[str, np.ndarray],
                  loss: np.ndarray) -> np.ndarray:
    """log(observed / predicted) of each draw's law (``natural``: draws per parameter) at each observation
    (``columns``: the law's inputs per point), (draw, point); NaN or inf where a draw's law is not finite."""
    return np.log(np.asarray(loss, float))[None, :] - law_log_loss(law, natural, columns)


def published_prior() -> PopulationPrior:
    """The population prior shipped with the package (:meth:`PopulationPrior.published`); borrow it with
    ``bs.fit(one_family, borrow="published")`` or ``bayes-scaling fit ... --borrow published``."""
    return PopulationPrior.published()


def missing_prior_file(path: str | os.PathLike) -> FitFileError:
    """The error for a prior or fit file that is not there: what may be passed instead."""
    return FitFileError(f"{path}: no such file; pass a population prior or a fit saved by bayes_scaling, or "
                        f"{PUBLISHED!r} for the prior shipped with the package")


def published_prior_path() -> Path:
    """Where the published prior is shipped inside the package."""
    return bundled_file("published_prior", "published_prior.nc")


def conflict_summary(conflict: dict[str, Any]) -> str:
    """A prior-data conflict (:meth:`PopulationPrior.conflict`) in a few words."""
    tail = f"prior predictive tail probability {conflict['p_value']:.1g}"
    if conflict.get("statistic") == "trend":
        return (f"this family's log loss falls {-conflict['slope']:+.3f} per decade of compute faster than the "
                f"borrowed prior allows ({tail})")
    return f"this family's losses are {np.exp(conflict['log_ratio']):.3g}x what the borrowed prior predicts ({tail})"


def conflict_message(conflict: dict[str, Any], source: str) -> str:
    """The warning of a prior-data conflict: what was found, what it means, what to do."""
    if conflict.get("statistic") == "trend":
        meaning = ("its curve is unlike every source family's (another quantity, or runs still in warm-up?). The fit "
                   "goes on, but its extrapolation rests on a prior that does not describe this family.")
    else:
        meaning = ("its loss is probably another quantity, unit or evaluation than those families'. The fit goes on, "
                   "but its extrapolation rests on a prior that does not describe this family; borrow from families "
                   "with comparable losses, or from the level-free published prior (borrow='published').")
    return f"prior-data conflict with the borrowed population prior ({source}): {conflict_summary(conflict)}; {meaning}"


def _own_loss_floor(theta: np.ndarray, arrays: dict[str, np.ndarray], idx: np.ndarray, law: Any,
                    rng: np.random.Generator) -> np.ndarray:
    """Fitted families' draws with a ``log_E`` of the new family's own: each moved by the population's sd
    of ``log_E`` (its family spread and the loss-level factor's share of it) at the same posterior draw."""
    if not law.irreducible:
        raise PriorError(f"population='mixture' gives a new family its own loss floor (the irreducible loss); the "
                         f"{law.name!r} law declares none (Law(..., irreducible=NAME))")
    i_e = list(law.sampling).index(law.sampling_name(law.irreducible))
    var = arrays["tau"][idx, i_e] ** 2
    if "tau_level" in arrays:
        var = var + arrays["tau_level"][idx] ** 2 * law.level_vector[i_e] ** 2
    out = theta.copy()
    out[:, i_e] += np.sqrt(var) * rng.standard_normal(len(idx))
    return out


def exponent_support(source_spans: dict[str, float], new_span: float) -> dict[str, Any] | None:
    """Whether a new family whose sizes span ``new_span`` decades borrows a poorly identified N-exponent.

    A family whose model sizes span less than :data:`MIN_EXPONENT_SPAN_DECADES` cannot identify its
    own N-exponent: its data leave it to the prior, or let it run away to fit a misspecified curve.
    When the new family is such a family, its exponent is the borrowed one, and that exponent is
    only as good as the source families that identify theirs (``source_spans``: decades per source
    family, :func:`size_spans`). Returns ``None`` when the new family identifies its own exponent or at
    least :data:`MIN_EXPONENT_SOURCES` sources do, else a dict with ``identifying`` (the sources that
    do), ``spans`` (every source's span), ``new_span`` and the two thresholds.
    """
    if new_span >= MIN_EXPONENT_SPAN_DECADES:
        return None
    identifying = sorted(f for f, s in source_spans.items() if s >= MIN_EXPONENT_SPAN_DECADES)
    if len(identifying) >= MIN_EXPONENT_SOURCES:
        return None
    return {"identifying": identifying, "spans": dict(source_spans), "new_span": float(new_span),
            "min_span": MIN_EXPONENT_SPAN_DECADES, "min_sources": MIN_EXPONENT_SOURCES}


def size_spans(data: Any) -> dict[str, float]:
    """Decades of parameters spanned by each family's model sizes in ``data`` (a :class:`ScalingData`)."""
    ov = data.overview()
    return {str(f): float(np.log10(hi / lo)) for f, hi, lo in zip(ov.index, ov["max_params"], ov["min_params"])}


def _lognormal_moments(x: np.ndarray) -> list[float]:
    """(mu, sigma) of a log-normal matched to positive draws, sigma kept at least 0.05."""
    log_x = np.log(x)
    return [float(log_x.mean()), max(float(log_x.std()), 0.05)]


def _beta_moments(x: np.ndarray) -> list[float]:
    """Beta (a, b) matched to draws in (0, 1), kept proper and not razor-thin (a + b - 1 >= 2)."""
    share = np.clip(x, 1e-4, 1 - 1e-4)
    m, v = float(share.mean()), float(share.var())
    common = max(m * (1 - m) / max(v, 1e-8) - 1, 2.0)
    return [m * common, (1 - m) * common]
