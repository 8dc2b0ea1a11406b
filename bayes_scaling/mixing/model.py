"""The hierarchical BiMix model in PyMC: domains share population exponents by partial pooling.

Written out (``d`` domain, ``m`` training mixture, ``s`` step, ``r`` the domain's share in the mixture;
the law on its sampling scale, :mod:`bayes_scaling.mixing.law`)::

    mu_p        ~ Normal(m_p, s_p)                    p in (logit_phi, log_a, log_b): population means
    tau_p       ~ HalfNormal(t_p)                     their spread across domains
    theta_d,p   ~ Normal(mu_p, tau_p)                 domain curve shape and exponents
    log_level_d ~ Normal(log median loss_d, 0.5)      each domain's own loss level (not pooled)
    log sigma_d ~ Normal(mu_sigma, tau_sigma)         domain noise sd of log loss, partially pooled
    u_m,d       ~ Normal(0, sigma_mix)                one training run's deviation, shared by its steps
                  (likelihood="student_t": StudentT(nu, 0, sigma_mix), nu ~ Gamma(2, 0.1))
    log y_mds   = log L_d(s, r_md) + u_m,d + e_mds,   e ~ Normal(0, sigma_d)

The predictive of a mixture nobody trained draws a new ``u`` (one run's deviation) on top of the law;
``expected`` leaves it out. A mixture away from every trained one adds the mixture-extrapolation
discrepancy ``Normal(0, kappa Delta^p)`` (``Delta``: its compositional distance from the nearest
trained mixture, ``p = distance_power``) learned by leave-one-mixture-out
(:func:`bayes_scaling.mixing.fit.fit_mixing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..errors import PriorError
from . import law

POOLED = ("logit_phi", "log_a", "log_b")


@dataclass(frozen=True)
class MixingPriors:
    """Population priors: means and scales of the pooled parameters, noise scales."""

    mu_loc: tuple[float, float, float] = (-1.5, np.log(0.5), np.log(0.05))   # phi ~ 0.18, a ~ 0.5, b ~ 0.05
    mu_scale: tuple[float, float, float] = (1.5, 1.0, 1.5)
    tau_scale: tuple[float, float, float] = (1.0, 0.5, 1.0)
    level_scale: float = 0.5
    sigma_loc: float = float(np.log(0.005))
    sigma_loc_scale: float = 1.0
    sigma_spread: float = 0.5
    mix_scale: float = 0.02
    kappa_scale: float = 0.25   # mixture-extrapolation discrepancy: log-loss sd per (decade of distance)^p
    distance_power: float = 2.0  # p: the discrepancy grows as distance^p (2: the law is right to first order)
    nu_alpha: float = 2.0       # nu ~ Gamma(2, 0.1) for Student-t run deviations
    nu_beta: float = 0.1

    def __post_init__(self) -> None:
        for name in ("mu_loc", "mu_scale", "tau_scale"):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (len(POOLED),) or not np.all(np.isfinite(v)):
                raise PriorError(f"priors.{name} must be {len(POOLED)} finite numbers, one per {POOLED}; got {v!r}")
            if name != "mu_loc" and np.any(v <= 0):
                raise PriorError(f"priors.{name} = {tuple(v)}: a scale must be positive")
        for name in ("level_scale", "sigma_loc_scale", "sigma_spread", "mix_scale", "kappa_scale",
                     "distance_power", "nu_alpha", "nu_beta"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise PriorError(f"priors.{name} = {v!r}: must be a positive finite number")
        if not np.isfinite(float(self.sigma_loc)):
            raise PriorError(f"priors.sigma_loc = {self.sigma_loc!r} is not finite")

    def describe(self) -> list[str]:
        out = [f"mu[{p}] ~ Normal({m:.3g}, {s:g}); tau[{p}] ~ HalfNormal({t:g})"
               for p, m, s, t in zip(POOLED, self.mu_loc, self.mu_scale, self.tau_scale)]
        return out + [f"log_level_d ~ Normal(log median loss of d, {self.level_scale:g})",
                      f"mu_sigma ~ Normal({self.sigma_loc:.3g}, {self.sigma_loc_scale:g}); "
                      f"tau_sigma ~ HalfNormal({self.sigma_spread:g})",
                      f"sigma_mix ~ HalfNormal({self.mix_scale:g})",
                      f"kappa ~ HalfNormal({self.kappa_scale:g}) "
                      f"(mixture extrapolation, per (decade of distance from the nearest trained mixture)"
                      f"^{self.distance_power:g})"]


def reference_scales(frame: pd.DataFrame) -> tuple[float, pd.Series]:
    """s0: geometric mean of the steps; r0_d: geometric mean of domain d's shares over the mixtures."""
    s0 = float(np.exp(np.log(frame["step"].unique()).mean()))
    shares = frame.drop_duplicates(["mixture", "domain"]).groupby("domain")["share"]
    r0 = shares.apply(lambda v: float(np.exp(np.log(v).mean())))
    return s0, r0


MIXING_LIKELIHOODS = ("normal", "student_t")


def build_mixing_model(frame: pd.DataFrame, domains: list[str], s0: float, r0: pd.Series,
                       priors: MixingPriors = MixingPriors(), likelihood: str = "normal") -> pm.Model:
    """The PyMC model of ``frame`` (columns mixture, domain, step, share, loss).

    ``likelihood``: distribution of a run's deviation u ("normal", or "student_t" with nu ~ Gamma).
    """
    if likelihood not in MIXING_LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {MIXING_LIKELIHOODS}, got {likelihood!r}")
    mixtures = list(dict.fromkeys(frame["mixture"]))
    d_idx = frame["domain"].map({d: i for i, d in enumerate(domains)}).to_numpy()
    m_idx = frame["mixture"].map({m: i for i, m in enumerate(mixtures)}).to_numpy()
    x_step = np.log(frame["step"].to_numpy() / s0)
    x_share = np.log(frame["share"].to_numpy() / r0.loc[domains].to_numpy()[d_idx])
    y = np.log(frame["loss"].to_numpy())
    level0 = frame.groupby("domain")["loss"].median().loc[domains].map(np.log).to_numpy()
    coords = {"domain": domains, "mixture": mixtures, "pooled_param": list(POOLED), "obs": np.arange(len(frame))}
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", np.array(priors.mu_loc), np.array(priors.mu_scale), dims="pooled_param")
        tau = pm.HalfNormal("tau", np.array(priors.tau_scale), dims="pooled_param")
        # centred: every domain has 20+ points per mixture, so the data, not the population, pin down
        # each domain's parameters, run deviations and noise (the non-centred form mixed badly here)
        pooled = pm.Normal("pooled", mu, tau, dims=("domain", "pooled_param"))
        log_level = pm.Normal("log_level", level0, priors.level_scale, dims="domain")
        mu_sigma = pm.Normal("mu_sigma", priors.sigma_loc, priors.sigma_loc_scale)
        tau_sigma = pm.HalfNormal("tau_sigma", priors.sigma_spread)
        log_sigma = pm.Normal("log_sigma", mu_sigma, tau_sigma, dims="domain")
        sigma = pm.Deterministic("sigma", pt.exp(log_sigma), dims="domain")
        sigma_mix = pm.HalfNormal("sigma_mix", priors.mix_scale)
        if likelihood == "student_t":  # heavy-tailed run deviations: a few curves far off the law
            nu = pm.Gamma("nu", priors.nu_alpha, priors.nu_beta)
            u = pm.StudentT("u", nu=nu, mu=0.0, sigma=sigma_mix, dims=("mixture", "domain"))
        else:
            u = pm.Normal("u", 0.0, sigma_mix, dims=("mixture", "domain"))
        theta = {"log_level": log_level[d_idx], "logit_phi": pooled[d_idx, 0], "log_a": pooled[d_idx, 1],
                 "log_b": pooled[d_idx, 2]}
        mean = law.log_loss(theta, x_step, x_share, xp=pt) + u[m_idx, d_idx]
        pm.Normal("log_loss", mean, sigma[d_idx], observed=y, dims="obs")
    return model
