"""Fitting the hierarchical BiMix model and predicting the per-domain loss of any mixture.

>>> data = bs.data.load_bimix("pile")                                          # doctest: +SKIP
>>> mfit = bs.mixing.fit_mixing(data.select(["SE", "JE", "CE", "VNE"]))               # doctest: +SKIP
>>> mfit.predict(data.proportions().loc["DoReMi"], steps=[1e5, 2e5])           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ConfigError, FitFileError
from ..inference.config import SamplerConfig
from ..inference.diagnostics import Diagnostics, diagnose, warn_if_problems
from ..inference.extrapolation import grid_discrepancy_posterior, predictive_moments
from ..inference.sampling import run_nuts
from ..predict import sample_count
from ..storage import FIT_MARKS, read_idata, write_netcdf
from . import law
from .data import MixingData, shares_from
from .model import MixingPriors, build_mixing_model, reference_scales

MIXING_VARS = ("mu", "tau", "pooled", "log_level", "mu_sigma", "tau_sigma", "sigma", "sigma_mix", "nu", "kappa")
#: population-level variables whose convergence is checked
MIXING_CHECKED = ["mu", "tau", "mu_sigma", "tau_sigma", "sigma_mix", "nu"]
_ATTR = FIT_MARKS["mixing fit"]


def mixture_distance(shares: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """Compositional distance of each mixture from the nearest trained mixture, in decades of share.

    ``shares``: (M, domain), ``trained``: (K, domain), rows summing to one. Each mixture becomes its
    centred log10 shares (``log10 r_d - mean_d log10 r_d``, the centred log-ratio of compositional data
    analysis); the distance between two mixtures is the root mean square difference of those over the
    domains (the Aitchison distance / sqrt(D)): 0.3 means the shares differ by a factor 2 on a typical
    domain, relative to the rest. Returns the smallest distance to any trained mixture, (M,); 0 for a
    trained mixture.
    """
    def clr(r: np.ndarray) -> np.ndarray:
        lr = np.log10(np.asarray(r, dtype=float))
        return lr - lr.mean(axis=-1, keepdims=True)

    a, b = clr(np.atleast_2d(shares)), clr(np.atleast_2d(trained))
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"mixtures over {a.shape[-1]} domains cannot be compared with trained ones over {b.shape[-1]}")
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).mean(axis=-1)).min(axis=1)


def _sample(data: MixingData, priors: MixingPriors, settings: dict,
            likelihood: str = "normal") -> tuple[az.InferenceData, dict, Diagnostics]:
    frame = data.frame
    s0, r0 = reference_scales(frame)
    model = build_mixing_model(frame, data.domains, s0, r0, priors, likelihood)
    init = {"mu": np.array(priors.mu_loc), "sigma_mix": np.array(priors.mix_scale / 2),
            "mu_sigma": np.array(priors.sigma_loc), "log_sigma": np.full(len(data.domains), priors.sigma_loc),
            "pooled": np.tile(np.array(priors.mu_loc), (len(data.domains), 1))}
    idata, info = run_nuts(model, init, keep_vars=MIXING_VARS, jitter_vars=None,
                           **settings)
    diag = diagnose(idata, MIXING_CHECKED, info["sampling_seconds"])
    trained = frame.drop_duplicates(["mixture", "domain"]).groupby("domain")["share"].agg(["min", "max"])
    meta = {"domains": data.domains, "mixtures": data.mixtures, "s0": s0, "r0": r0.loc[data.domains].tolist(),
            "share_min": trained["min"].loc[data.domains].tolist(), "share_max": trained["max"].loc[data.domains].tolist(),
            "train_shares": data.proportions().loc[data.mixtures, data.domains].to_numpy().tolist(),
            "source": data.source, "priors": asdict(priors), "sampler": info, "diagnostics": diag.to_dict(),
            "extrapolation": {"mode": "none"}, "likelihood": likelihood}
    idata.posterior.attrs[_ATTR] = json.dumps(meta)
    idata.add_groups(observed_data=xr.Dataset({k: ("obs", frame[k].to_numpy()) for k in frame.columns}))
    return idata, info, diag


def calibrate_mixture_extrapolation(data: MixingData, priors: MixingPriors, settings: dict, size: int,
                                    rng: np.random.Generator,
                                    likelihood: str = "normal") -> tuple[np.ndarray, dict]:
    """Draws of kappa, the mixture-extrapolation discrepancy's scale, by leave-one-mixture-out (see
    :class:`MixingFit`).

    Each training mixture in turn is left out, the model is refitted to the others, and every domain's
    curve of the left-out mixture is predicted: its log-loss residual against the inner one-run
    predictive's centre, that predictive's variance (both robust under the Student-t likelihood:
    :func:`~bayes_scaling.inference.extrapolation.predictive_moments`), and the left-out mixture's
    distance ``Delta`` from the others (:func:`mixture_distance`) raised to ``priors.distance_power`` go
    into the grid posterior of
    :func:`bayes_scaling.inference.extrapolation.grid_discrepancy_posterior` (one curve counts once). The
    info records the log marginal likelihood of the residuals for p = 1 and p = 2 (and the chosen p),
    so a fit says whether its data support the power it used.
    """
    power = priors.distance_power
    props = data.proportions()
    resid, var, dist, weight, inner_diag, distances = [], [], [], [], [], {}
    for m in data.mixtures:
        inner = MixingFit(_sample(data.select([x for x in data.mixtures if x != m]), priors, settings, likelihood)[0])
        inner_diag.append(inner.diagnostics.problems)
        obs = data.frame[data.frame["mixture"] == m]
        steps = np.sort(obs["step"].unique())
        draws = np.log(inner.loss_draws(props.loc[m], steps, extrapolate=False)["run"]
                       .isel(mixture=0).to_numpy())  # (sample, domain, step)
        d_idx = np.array([inner.domains.index(d) for d in obs["domain"]])
        t_idx = np.searchsorted(steps, obs["step"].to_numpy())
        dr = draws[:, d_idx, t_idx]
        centre, v = predictive_moments(dr, robust=likelihood == "student_t")
        resid.append(np.log(obs["loss"].to_numpy()) - centre)
        var.append(v)
        distances[m] = float(inner.mixture_distance(props.loc[m])[0])
        dist.append(np.full(len(obs), distances[m]))
        weight.append(np.full(len(obs), 1.0 / len(steps)))  # one (mixture, domain) curve counts once
    resid, var, dist, weight = map(np.concatenate, (resid, var, dist, weight))
    # centred: the distance has no direction (mixtures leave the trained ones every which way), so the
    # sign of the law's error along one departure says nothing of its sign along another
    evidence = {}
    for q in sorted({1.0, 2.0, float(power)}):  # how well each growth law explains the residuals
        k, _, evidence[f"p={q:g}"] = grid_discrepancy_posterior(resid, var, dist ** q, weight, priors.kappa_scale,
                                                                None, size, rng, return_evidence=True)
        if q == power:
            kappa = k
    info = {"mode": "learn", "holdout": f"leave-one-mixture-out over {data.mixtures}",
            "distance": "RMS difference of centred log10 shares from the nearest trained mixture (decades)",
            "distance_power": power, "heldout_distances": distances, "log_evidence": evidence,
            "kappa_median": float(np.median(kappa)),
            "inner_problems": sorted({p for probs in inner_diag for p in probs})}
    if not any(distances.values()):
        info["note"] = "every held-out mixture equals another one: kappa keeps its prior"
    return kappa, info


#: the settings of a ``SamplerConfig`` the BiMix fit uses; the others (whitening, non-centring, backend, fused
#: rows, sampling until converged) belong to the scaling-law model
MIXING_SAMPLER_SETTINGS = ("draws", "tune", "chains", "target_accept", "random_seed", "engine", "progressbar")
#: the BiMix fit's sampler unless ``sampler=`` says otherwise: it samples every draw (it has no stop rule)
MIXING_SAMPLER = SamplerConfig(draws=1000)


def fit_mixing(data: MixingData, *, priors: MixingPriors | None = None, likelihood: str = "normal",
               extrapolation: bool = True, inner_draws: int = 400,
               sampler: SamplerConfig | dict | None = None) -> "MixingFit":
    """Fit the hierarchical BiMix law to every (mixture, domain, step) row of ``data``.

    ``likelihood``: "normal" run deviations, or "student_t" (heavy-tailed: a few (mixture, domain) curves
    far off the law; nu is learned). ``extrapolation``: learn the mixture-extrapolation discrepancy by
    leave-one-mixture-out (one inner fit per training mixture, ``inner_draws`` draws and tuning steps on 2
    chains; needs >= 3 mixtures). ``sampler``: a :class:`~bayes_scaling.SamplerConfig` (or a dict of the
    settings that differ from ``MIXING_SAMPLER``'s, 1,000 draws per chain) as in :func:`bayes_scaling.fit`,
    of which the BiMix fit uses ``MIXING_SAMPLER_SETTINGS``.
    Sampling problems (divergences, R-hat > 1.01, ESS < 400) are raised as ``SamplingWarning``.
    """
    nuts = MIXING_SAMPLER.merged(sampler)
    unused = sorted(k for k, v in nuts.changed().items() if k not in MIXING_SAMPLER_SETTINGS)
    if unused:
        raise ConfigError(f"fit_mixing does not use the sampler setting(s) {unused} (they belong to the scaling-law "
                          f"model); it uses {list(MIXING_SAMPLER_SETTINGS)}")
    priors = priors or MixingPriors()
    settings = nuts.nuts_settings()
    idata, info, diag = _sample(data, priors, settings, likelihood)
    warn_if_problems(diag, "fit_mixing")
    fit = MixingFit(idata)
    if extrapolation:
        if len(data.mixtures) < 3:
            raise ValueError(f"learning the mixture-extrapolation term needs >= 3 training mixtures, got "
                             f"{data.mixtures}; pass extrapolation=False to predict without it")
        inner = dict(settings, draws=inner_draws, tune=inner_draws, chains=2)
        size = sample_count(idata.posterior)
        kappa, ex = calibrate_mixture_extrapolation(data, priors, inner, size,
                                                    np.random.default_rng(nuts.random_seed + 7), likelihood)
        fit.set_extrapolation(kappa, ex)
    return fit


class MixingFit:
    """A fitted hierarchical BiMix law: natural parameters, predictions for any mixture, NetCDF I/O."""

    def __init__(self, idata: az.InferenceData):
        if _ATTR not in idata.posterior.attrs:
            raise FitFileError("this InferenceData is not a bayes_scaling mixing fit")
        self.idata = idata
        self.meta = json.loads(idata.posterior.attrs[_ATTR])

    @property
    def domains(self) -> list[str]:
        return list(self.meta["domains"])

    @property
    def extrapolation(self) -> dict:
        return dict(self.meta.get("extrapolation", {"mode": "none"}))

    def set_extrapolation(self, kappa: np.ndarray, info: dict) -> None:
        """Store draws of the mixture-extrapolation discrepancy's scale kappa (per (decade of distance)^p)."""
        post = self.idata.posterior
        post["kappa"] = (("chain", "draw"), np.asarray(kappa, dtype=float).reshape(post.sizes["chain"],
                                                                                     post.sizes["draw"]))
        self.meta["extrapolation"] = info
        post.attrs[_ATTR] = json.dumps(self.meta)

    @property
    def diagnostics(self) -> Diagnostics:
        return Diagnostics(**self.meta["diagnostics"])

    @property
    def data(self) -> MixingData:
        obs = self.idata.observed_data
        frame = pd.DataFrame({k: obs[k].to_numpy() for k in obs.data_vars})
        for k in ("mixture", "domain"):
            frame[k] = frame[k].astype(str)
        return MixingData(frame=frame, source=self.meta["source"])

    def _theta(self) -> np.ndarray:
        """Sampling-scale draws (sample, domain, param) in the order of law.MIXING_PARAMS."""
        post = self.idata.posterior
        pooled = post["pooled"].stack(sample=("chain", "draw")).transpose("sample", "domain", "pooled_param")
        level = post["log_level"].stack(sample=("chain", "draw")).transpose("sample", "domain")
        return np.concatenate([level.to_numpy()[..., None], pooled.to_numpy()], axis=-1)

    def natural(self) -> xr.Dataset:
        """Draws of (AB, CB, a, b) per domain, L = (AB s^-a + CB) r^-b."""
        th = self._theta()
        nat = law.to_natural({p: th[..., k] for k, p in enumerate(law.MIXING_PARAMS)}, self.meta["s0"],
                             np.asarray(self.meta["r0"])[None, :])
        return xr.Dataset({k: (("sample", "domain"), np.asarray(v)) for k, v in nat.items()},
                          coords={"domain": self.domains, "sample": np.arange(th.shape[0])})

    def _share_table(self, shares: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """Mixtures as a (mixture x domain) table and its (M, D) share array in the fit's domain order."""
        table = shares.to_frame().T if isinstance(shares, pd.Series) else (
            shares if isinstance(shares, pd.DataFrame) else pd.DataFrame([shares], index=["mixture"]))
        r = np.stack([shares_from(row.to_dict(), self.domains) for _, row in table.iterrows()])
        return table, r

    def _trained_shares(self) -> np.ndarray:
        """(trained mixture, domain) shares of the mixtures this fit was trained on."""
        trained = self.meta.get("train_shares")
        if trained is None:  # saved before the trained shares were recorded
            return self.data.proportions().loc[self.meta["mixtures"], self.domains].to_numpy()
        return np.asarray(trained)

    def mixture_distance(self, shares: Any) -> np.ndarray:
        """Distance of each mixture from the nearest mixture this fit was trained on (decades; see
        :func:`mixture_distance`). ``shares``: {domain: share}, a Series or a (mixture x domain) DataFrame."""
        return mixture_distance(self._share_table(shares)[1], self._trained_shares())

    def loss_draws(self, shares: Any, steps: Any, *, random_seed: int = 0, extrapolate: bool = True) -> xr.Dataset:
        """Draws of ``expected`` (the law) and ``run`` (one training run: + its deviation and noise) loss.

        ``shares``: the mixture as {domain: share} (every fitted domain, summing to one) or a 2-D
        (mixture x domain) DataFrame. Returns a Dataset over (sample, mixture, domain, step).
        A mixture away from every trained one adds the learned mixture-extrapolation discrepancy
        ``Normal(0, kappa Delta^p)`` (Delta: :meth:`mixture_distance`, p: the priors'
        ``distance_power``), drawn once per (mixture, domain) and shared by its steps;
        ``extrapolate=False`` leaves it out.
        """
        table, r = self._share_table(shares)  # (M, D)
        steps = np.atleast_1d(np.asarray(steps, dtype=float))
        if np.any(~np.isfinite(steps)) or np.any(steps <= 0):
            raise ValueError("steps must be positive and finite")
        th = self._theta()  # (S, D, P)
        theta = {p: th[:, None, :, k, None] for k, p in enumerate(law.MIXING_PARAMS)}  # (S, 1, D, 1)
        x_step = np.log(steps / self.meta["s0"])[None, None, None, :]
        x_share = np.log(r / np.asarray(self.meta["r0"])[None, :])[None, :, :, None]
        log_mu = law.log_loss(theta, x_step, x_share)  # (S, M, D, T)
        post = self.idata.posterior
        rng = np.random.default_rng(random_seed)
        s_mix = post["sigma_mix"].stack(sample=("chain", "draw")).to_numpy()[:, None, None, None]
        sigma = post["sigma"].stack(sample=("chain", "draw")).transpose("sample", "domain").to_numpy()[:, None, :, None]
        shape = log_mu.shape
        if extrapolate and "kappa" in post:
            if "distance_power" not in self.extrapolation:
                raise FitFileError("this mixing fit was saved by a version whose extrapolation term measured share "
                                   "ranges; refit it, or predict with extrapolate=False")
            d = (mixture_distance(r, self._trained_shares()) ** self.extrapolation["distance_power"])[None, :, None, None]
            kappa = post["kappa"].stack(sample=("chain", "draw")).to_numpy()[:, None, None, None]
            log_mu = log_mu + kappa * d * rng.standard_normal(shape[:3] + (1,))
        u = s_mix * rng.standard_normal(shape[:3] + (1,))
        if "nu" in post:  # Student-t run deviations
            nu = post["nu"].stack(sample=("chain", "draw")).to_numpy()[:, None, None, None]
            u = u * np.sqrt(nu / rng.chisquare(np.broadcast_to(nu, u.shape)))
        e = sigma * rng.standard_normal(shape)
        dims = ("sample", "mixture", "domain", "step")
        coords = {"sample": np.arange(shape[0]), "mixture": [str(i) for i in table.index], "domain": self.domains,
                  "step": steps}
        return xr.Dataset({"expected": (dims, np.exp(log_mu)), "run": (dims, np.exp(log_mu + u + e))}, coords=coords)

    def predict(self, shares: Any, steps: Any, *, interval: float = 0.9, random_seed: int = 0) -> xr.Dataset:
        """Median and interval of the expected and one-run loss per (mixture, domain, step)."""
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        draws = self.loss_draws(shares, steps, random_seed=random_seed)
        lo, hi = (1 - interval) / 2, (1 + interval) / 2
        out = {}
        for kind in ("expected", "run"):
            q = draws[kind].quantile([0.5, lo, hi], dim="sample")
            out[f"{kind}_median"], out[f"{kind}_lower"], out[f"{kind}_upper"] = (
                q.isel(quantile=k).drop_vars("quantile") for k in range(3))
        ds = xr.Dataset(out)
        ds.attrs.update(interval=interval)
        return ds

    def parameter_table(self, interval: float = 0.9) -> pd.DataFrame:
        """Per-domain natural parameters and noise: median and interval (long format)."""
        nat = self.natural()
        lo, hi = (1 - interval) / 2, (1 + interval) / 2
        rows = []
        sigma = self.idata.posterior["sigma"].stack(sample=("chain", "draw"))
        for d in self.domains:
            for k in ("AB", "CB", "a", "b"):
                q = np.quantile(nat[k].sel(domain=d).to_numpy(), [0.5, lo, hi])
                rows.append({"domain": d, "parameter": k, "median": q[0], "lower": q[1], "upper": q[2]})
            q = np.quantile(sigma.sel(domain=d).to_numpy(), [0.5, lo, hi])
            rows.append({"domain": d, "parameter": "sigma", "median": q[0], "lower": q[1], "upper": q[2]})
        return pd.DataFrame(rows)

    def save(self, path: str | os.PathLike) -> Path:
        return write_netcdf(self.idata, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MixingFit":
        return cls(read_idata(path, "mixing fit"))

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"<MixingFit domains={len(self.domains)} mixtures={self.meta['mixtures']} draws={d.chains}x{d.draws} "
                f"divergences={d.divergences} max_rhat={d.max_rhat:.3f}>")
