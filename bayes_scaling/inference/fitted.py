"""The fitted object: ArviZ InferenceData plus what is needed to rebuild the model.

Groups of ``fit.idata``:

* ``posterior``: ``mu`` (param), ``tau`` (param), ``tau_level`` (loss-level factor spread), ``corr`` (param,
  param_bis), ``theta`` (family, param),
  ``sigma_total``, ``seed_share``, ``sigma_seed``, ``sigma_obs`` (with ``checkpoint_noise="ou"`` also ``ou_length``
  and ``ou_share``), ``kappa`` and ``drift`` (extrapolation discrepancy),
  and the law's natural parameters ``natural`` (family, law_param) and ``population_natural`` (law_param,
  the population median: the law at ``mu``).
* ``sample_stats``: the sampler's statistics (``diverging``, step sizes, tree depths, ...).
* ``log_likelihood``: ``runs`` (run): each run's log density with its seed effect integrated out.
* ``observed_data``: ``loss`` (obs); ``constant_data``: family, run, seed, params, tokens, flops (obs).

The model spec (law, reference scales, priors, families, runs, filters), the sampler settings, the
diagnostics and the extrapolation calibration are stored as JSON attributes of the posterior, so one
NetCDF file holds the whole fit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..data import DropRecord, ScalingData
from ..data.container import OPTIONAL_COLUMNS
from ..data.extent import DIRECTIONS, per_direction
from ..errors import FitFileError
from ..model.checkpoint_noise import run_loglik_numpy as ou_run_loglik_numpy
from ..model.likelihood import run_marginal_loglik, run_sums_numpy
from ..model.config import ModelConfig
from ..model.draws import LawDraws, query_columns
from ..model.population_prior import CONFLICT_P_VALUE, conflict_summary, tails_text
from ..model.spec import ModelSpec
from ..predict import DISCREPANCY_SCALARS, as_dataset, family_theta_draws, posterior_arrays, predict_draws
from ..storage import FIT_MARKS, read_idata, write_netcdf
from .config import SamplerConfig
from .diagnostics import Diagnostics

SPEC_ATTR = FIT_MARKS["fit"]
SAMPLER_ATTR = "bayes_scaling_sampler"
DIAG_ATTR = "bayes_scaling_diagnostics"
EXTRAP_ATTR = "bayes_scaling_extrapolation"
#: the fit's configurations, as :meth:`..model.config.Config.to_json` writes them (with their layout version)
CONFIG_ATTRS = {"model": "bayes_scaling_model_config", "sampler": "bayes_scaling_sampler_config"}


def _natural(post: xr.Dataset, spec: ModelSpec) -> tuple[xr.DataArray, xr.DataArray]:
    law = spec.law_obj
    th = post["theta"]
    nat = law.to_natural({p: th.sel(param=p) for p in law.sampling}, spec.reference, xp=np)
    fam = xr.concat([nat[k].drop_vars("param", errors="ignore") for k in law.natural], dim="law_param")
    fam = fam.assign_coords(law_param=list(law.natural)).transpose("chain", "draw", "family", "law_param")
    mu = post["mu"]
    natp = law.to_natural({p: mu.sel(param=p) for p in law.sampling}, spec.reference, xp=np)
    pop = xr.concat([natp[k].drop_vars("param", errors="ignore") for k in law.natural], dim="law_param")
    pop = pop.assign_coords(law_param=list(law.natural)).transpose("chain", "draw", "law_param")
    return fam, pop


def run_log_likelihood(post: xr.Dataset, data: ScalingData, spec: ModelSpec) -> xr.DataArray:
    """Each run's marginal log density for every posterior draw: (chain, draw, run)."""
    from ..model.hierarchical import OU_GRID, row_residuals

    resid, arr = row_residuals(post, data, spec)
    scales = [post[v].to_numpy()[..., None] for v in ("sigma_seed", "sigma_obs")]
    if spec.checkpoint_noise == "ou":
        grid = {k: arr[f"ou_{k}"] for k in OU_GRID}
        # [:runs]: a single run's grid has an empty padding column (model_arrays), which is no run
        ll = ou_run_loglik_numpy(resid, grid, *scales, post["ou_share"].to_numpy()[..., None],
                                 post["ou_length"].to_numpy()[..., None])[..., :len(spec.runs)]
    else:
        s1, s2 = run_sums_numpy(resid, arr["run_index"], len(spec.runs))
        ll = run_marginal_loglik(s1, s2, arr["n_per_run"], *scales,
                                 nu=post["nu"].to_numpy()[..., None] if "nu" in post else None)
    return xr.DataArray(ll, dims=("chain", "draw", "run"),
                        coords={"chain": post.chain, "draw": post.draw, "run": spec.runs})


def build_idata(idata: az.InferenceData, data: ScalingData, spec: ModelSpec, sampler_info: dict,
                diag: Diagnostics) -> az.InferenceData:
    post = idata.posterior.copy()
    fam, pop = _natural(post, spec)
    post["natural"] = fam
    post["population_natural"] = pop
    post.attrs = {SPEC_ATTR: spec.to_json(), SAMPLER_ATTR: json.dumps(sampler_info),
                  DIAG_ATTR: json.dumps(diag.to_dict())}
    df = data.frame
    obs = np.arange(len(df))
    const = xr.Dataset(
        {c: ("obs", df[c].to_numpy(dtype=str if c in ("family", "run", "seed") else float))
         for c in ("family", "run", "seed", "params", "tokens", "flops", *OPTIONAL_COLUMNS) if c in df},
        coords={"obs": obs})
    observed = xr.Dataset({"loss": ("obs", df["loss"].to_numpy(dtype=float))}, coords={"obs": obs})
    loglik = xr.Dataset({"runs": run_log_likelihood(post, data, spec)})
    stats = idata.sample_stats
    stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.InferenceData(posterior=post, sample_stats=stats, log_likelihood=loglik,
                                observed_data=observed, constant_data=const)


class ScalingFit:
    """A fitted hierarchical scaling law.

    Examples
    --------
    >>> fit = bs.fit(data)                                   # doctest: +SKIP
    >>> fit.summary()["parameters"]["alpha"]                 # doctest: +SKIP
    >>> fit.predict(family="fineweb-100b", params=7e9, tokens=2e12)   # doctest: +SKIP
    >>> fit.save("fit.nc"); bs.open("fit.nc")                # doctest: +SKIP
    """

    def __init__(self, idata: az.InferenceData, spec: ModelSpec | None = None):
        self.idata = idata
        if spec is None:
            try:
                spec = ModelSpec.from_json(idata.posterior.attrs[SPEC_ATTR])
            except KeyError:
                raise FitFileError("this InferenceData was not written by bayes_scaling (no model spec)") from None
        self.spec = spec

    # ------------------------------------------------------------------ stored facts
    @property
    def law(self):
        return self.spec.law_obj

    @property
    def families(self) -> list[str]:
        return list(self.spec.families)

    @property
    def sampler_info(self) -> dict:
        return json.loads(self.idata.posterior.attrs[SAMPLER_ATTR])

    @property
    def diagnostics(self) -> Diagnostics:
        return Diagnostics(**json.loads(self.idata.posterior.attrs[DIAG_ATTR]))

    @property
    def extrapolation(self) -> dict:
        return json.loads(self.idata.posterior.attrs.get(EXTRAP_ATTR, '{"mode": "none"}'))

    @property
    def data(self) -> ScalingData:
        """The (filtered) data the model was fitted to, rebuilt from the stored groups."""
        c = self.idata.constant_data
        frame = pd.DataFrame({k: c[k].to_numpy() for k in ("family", "run", "seed", "params", "tokens", "flops")})
        frame["loss"] = self.idata.observed_data["loss"].to_numpy()
        frame = frame[["family", "run", "seed", "params", "tokens", "flops", "loss"]]
        for k in OPTIONAL_COLUMNS:
            if k in c:
                frame[k] = c[k].to_numpy()
        for k in ("family", "run", "seed"):
            frame[k] = frame[k].astype(str)
        return ScalingData(frame=frame, dropped=tuple(DropRecord(**d) for d in self.spec.filters),
                           source=self.spec.source, assumptions=tuple(self.spec.assumptions))

    @property
    def mixture_weights(self) -> dict[str, float] | None:
        """A fit borrowed from a mixture prior: each component's posterior weight, heaviest first (else None)."""
        weights = self.extrapolation.get("mixture_weights")
        return None if weights is None else dict(sorted(weights.items(), key=lambda kv: -kv[1]))

    def with_extrapolation(self, kappa: np.ndarray, info: dict, drift: np.ndarray | None = None,
                           growth: np.ndarray | None = None, shared: np.ndarray | None = None,
                           tails: np.ndarray | None = None, on_loss: np.ndarray | None = None) -> "ScalingFit":
        """This fit with draws of the extrapolation discrepancy (:mod:`bayes_scaling.predict`), as a new fit: its
        scale ``kappa`` and direction ``drift`` per direction of :data:`~bayes_scaling.data.extent.DIRECTIONS`
        (sample, direction), or of the compute direction alone (sample,); its ``growth`` with distance (default
        linear, 1), the ``shared`` share of it common to every family (default 0) and the gamma shape of its
        ``tails`` (default infinite: normal); ``on_loss`` 1 where it is a relative error of the whole loss, 0 (the
        default) of the reducible loss (:func:`bayes_scaling.predict.with_discrepancy`). ``info``: how it was learned
        (``fit.extrapolation``)."""
        post = self.idata.posterior.copy()
        shape = (post.sizes["chain"], post.sizes["draw"])
        coords = {"direction": list(DIRECTIONS)}
        for name, value in (("kappa", kappa), ("drift", np.zeros(shape[0] * shape[1]) if drift is None else drift)):
            post[name] = xr.DataArray(per_direction(value).reshape(shape + (len(DIRECTIONS),)),
                                      dims=("chain", "draw", "direction"), coords=coords)
        values = {"growth": growth, "shared": shared, "tails": tails, "on_loss": on_loss}
        for name, key, default in DISCREPANCY_SCALARS:
            value = values[key]
            v = np.full(shape, default) if value is None else np.asarray(value, dtype=float).reshape(shape)
            if (key == "tails" and np.all(np.isinf(v))) or (key == "on_loss" and not np.any(v)):
                # normal tails, a discrepancy of the reducible loss: nothing stored (absent reads as either)
                post = post.drop_vars(name, errors="ignore")
                continue
            post[name] = (("chain", "draw"), v)
        post.attrs = {**post.attrs, EXTRAP_ATTR: json.dumps(info)}
        return self._with_posterior(post)

    def with_discrepancy(self, draws: dict[str, np.ndarray], info: dict) -> "ScalingFit":
        """:meth:`with_extrapolation` from a dict of the discrepancy's draws (``kappa`` and any of ``drift``,
        ``growth``, ``shared``, ``tails``, ``on_loss``), as :func:`bayes_scaling.predict.discrepancy_arrays` and the
        nested leave-out return them."""
        return self.with_extrapolation(draws["kappa"], info, **{k: draws.get(k) for k in
                                                                ("drift", "growth", "shared", "tails", "on_loss")})

    def with_configs(self, model: ModelConfig, sampler: SamplerConfig) -> "ScalingFit":
        """This fit with the configurations it was made with, as a new fit (saved with it; ``model_config``)."""
        post = self.idata.posterior.copy()
        post.attrs = {**post.attrs, **{CONFIG_ATTRS[cfg.argument]: cfg.to_json() for cfg in (model, sampler)}}
        return self._with_posterior(post)

    def with_likelihood_choice(self, choice: dict) -> "ScalingFit":
        """This fit with how ``likelihood="auto"`` chose its likelihood, as a new fit (in the spec, saved with it)."""
        spec = dataclasses.replace(self.spec, likelihood_choice=choice)
        post = self.idata.posterior.copy()
        post.attrs = {**post.attrs, SPEC_ATTR: spec.to_json()}
        return self._with_posterior(post, spec)

    def _with_posterior(self, post: xr.Dataset, spec: ModelSpec | None = None) -> "ScalingFit":
        groups = {g: getattr(self.idata, g) for g in self.idata.groups()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            idata = az.InferenceData(**{**groups, "posterior": post})
        return ScalingFit(idata, self.spec if spec is None else spec)

    @property
    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` this fit was made with (``bs.fit(..., model=fit.model_config)`` refits it)."""
        return self._config(ModelConfig)

    @property
    def sampler_config(self) -> SamplerConfig:
        """The :class:`SamplerConfig` this fit was sampled with."""
        return self._config(SamplerConfig)

    def _config(self, kind: type) -> Any:
        text = self.idata.posterior.attrs.get(CONFIG_ATTRS[kind.argument])
        if text is None:
            raise FitFileError(f"this fit stores no {kind.argument} configuration (it was not made by bs.fit, or by "
                               "a version before configurations were stored): refit it to record one")
        if kind is ModelConfig and json.loads(text).get("law") is not None:  # the spec holds the law itself
            return kind.from_json(text, source="this fit", law=self.law)
        return kind.from_json(text, source="this fit")

    # ------------------------------------------------------------------ prediction
    def predict(self, family: str | Any, params: Any, tokens: Any, flops: Any | None = None, *,
                inputs: Mapping[str, Any] | None = None, interval: float = 0.9, keep_draws: bool = False,
                random_seed: int = 0, new_family: bool = False) -> xr.Dataset:
        """Posterior predictive loss at (family, params, tokens) points (see :mod:`bayes_scaling.predict`).

        ``family`` is one name for every point or one per point. ``new_family=True`` predicts a family the
        fit has not seen, drawn from the population of families; without it, such a name raises
        :class:`~bayes_scaling.errors.UnknownFamilyError` naming the closest fitted families. Points far
        beyond the data raise an :class:`~bayes_scaling.errors.ExtrapolationWarning`. ``inputs``: the law's
        further inputs by name, e.g. ``{"unique_tokens": 2e10}`` for the data-constrained law. A fit of data
        with unique tokens measures a prediction's epochs beyond its data from ``unique_tokens`` whatever the
        law reads; without it, a point is trained on data seen once.
        """
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        cols = query_columns(params, tokens, flops, inputs, self.law)
        fam = np.asarray(family, dtype=object)
        if fam.ndim == 0:
            fam = np.full(len(cols["params"]), fam.item(), dtype=object)
        if len(fam) != len(cols["params"]):
            raise ValueError(f"{len(fam)} family names for {len(cols['params'])} points")
        arrays = posterior_arrays(self.idata.posterior)
        res, new_mask = predict_draws(self.law, arrays, self.spec.families, self.spec.reference,
                                      self.spec.extents, fam.astype(str), cols,
                                      rng=np.random.default_rng(random_seed), interval=interval,
                                      keep_draws=keep_draws, new_family=new_family)
        return as_dataset(res, fam.astype(str), cols, new_mask, interval)

    def family_draws(self, family: str, *, new_family: bool = False, random_seed: int = 0) -> LawDraws:
        """Posterior draws of one family's law in natural units (E, A, alpha, ...), with its noise and
        discrepancy, as one :class:`~bayes_scaling.model.draws.LawDraws`.

        ``new_family=True``: a family the fit has not seen, drawn from the population. Draws of different
        families share the posterior draw index, so functions of two families' parameters (a loss difference,
        a speedup) keep their posterior correlation.
        """
        arrays = posterior_arrays(self.idata.posterior)
        theta, new = family_theta_draws(arrays, self.spec.families, family, np.random.default_rng(random_seed),
                                        self.law.level_vector, new_family=new_family)
        nat = self.law.to_natural({p: theta[:, k] for k, p in enumerate(self.law.sampling)}, self.spec.reference)
        flops = self.spec.family_max_log10_flops
        return LawDraws(law=self.law, natural=nat, sigma_seed=arrays["sigma_seed"], sigma_obs=arrays["sigma_obs"],
                        **{k: arrays.get(k) for k in ("kappa", "drift", "growth", "shared", "tails", "on_loss",
                                                        "ou_length", "ou_share")},
                        observed_log10_flops=None if new else flops.get(family),
                        population_log10_flops=max(flops.values()), new_family=bool(new),
                        source=f"{'population predictive of a new family' if new else 'posterior of ' + repr(family)} "
                               f"({len(self.families)}-family fit)")

    def law_draws(self, family: str, *, new_family: bool = False, random_seed: int = 0) -> xr.Dataset:
        """:meth:`family_draws`' law parameters over ``sample`` (attributes ``family``, ``new_family``)."""
        ds = self.family_draws(family, new_family=new_family, random_seed=random_seed).to_dataset()
        ds.attrs["family"] = family
        return ds

    def fitted_curve(self, interval: float = 0.9) -> xr.Dataset:
        """Predictive at every observed row (for posterior predictive checks and plots)."""
        df = self.data.frame
        return self.predict(df["family"].to_numpy(), df["params"].to_numpy(), df["tokens"].to_numpy(),
                            df["flops"].to_numpy(), inputs={c: df[c].to_numpy() for c in self.law.further_inputs},
                            interval=interval)

    # ------------------------------------------------------------------ summaries
    def parameter_table(self, interval: float = 0.9) -> pd.DataFrame:
        """Natural-unit parameters: median and interval, population and per family (long format)."""
        post = self.idata.posterior
        lo, hi = (1 - interval) / 2, (1 + interval) / 2
        rows = []

        def add(level: str, name: str, da: xr.DataArray) -> None:
            q = da.quantile([0.5, lo, hi], dim=("chain", "draw")).to_numpy()
            rows.append({"level": level, "parameter": name, "median": float(q[0]), "lower": float(q[1]),
                         "upper": float(q[2])})

        for p in self.law.natural:
            add("population", p, post["population_natural"].sel(law_param=p))
        for f in self.spec.families:
            for p in self.law.natural:
                add(f, p, post["natural"].sel(family=f, law_param=p))
        for s in ("tau_level", "sigma_seed", "sigma_obs", "ou_length", "ou_share", "kappa", "drift",
                  "discrepancy_growth", "discrepancy_shared", "discrepancy_tails", "nu"):
            if s not in post:
                continue
            if "direction" in post[s].dims:
                for d in post[s]["direction"].to_numpy():
                    add("noise", f"{s}[{d}]", post[s].sel(direction=d))
            else:
                add("noise", s, post[s])
        return pd.DataFrame(rows)

    def summary(self, interval: float = 0.9) -> dict:
        """Diagnostics and parameters as one JSON-ready dict (the CLI's ``summary --json``)."""
        d = self.diagnostics
        tab = self.parameter_table(interval)

        def block(level: str) -> dict:
            sub = tab[tab["level"] == level]
            return {r.parameter: {"median": r.median, "lower": r.lower, "upper": r.upper} for r in sub.itertuples()}

        params: dict[str, Any] = block("population")
        params["families"] = {f: block(f) for f in self.spec.families}
        noise = block("noise")
        params.update(noise)
        info = self.sampler_info
        return {
            "law": self.law.one_line, "likelihood": self.spec.likelihood,
            "checkpoint_noise": self.spec.checkpoint_noise,
            "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail, "chains": d.chains, "draws": d.draws,
            "sampling_seconds": d.sampling_seconds, "compile_seconds": info.get("compile_seconds"),
            "sampler": info.get("sampler"), "problems": d.problems, "interval": interval,
            "parameters": params, "sigma_seed": noise.get("sigma_seed"), "sigma_obs": noise.get("sigma_obs"),
            "extrapolation": self.extrapolation, "notes": self.notes(),
            "filters": self.spec.filters, "reference": self.spec.reference,
        }

    def notes(self) -> list[str]:
        """Plain-language caveats about what the data could and could not identify."""
        out = [f"assumed: {a}" for a in self.spec.assumptions]
        chosen = self.sampler_info.get("parameterisation")
        if chosen:
            out.append(f"sampled with {chosen['reason']}")
        out += self._run_notes()
        rt = self.data.run_table()
        for fam, g in rt.groupby("family"):
            if g["params"].nunique() == 1 and "params" in self.law.inputs:
                out.append(f"family {fam!r} has a single model size: its N-term (A, alpha) is carried by the "
                           "prior/population, not identified by its own data")
        if (rt["checkpoints"] == 1).all():
            out.append("every run has one observation: only the total noise is identified; the split into "
                       "seed noise and checkpoint noise follows the prior")
        if self.spec.borrowed is not None:
            bor = self.spec.borrowed
            out.append("parameters and noise scales have a borrowed population prior (" + bor.get("source", "")
                       + "); what this family's data cannot identify comes from those families")
            if bor.get("free_level"):
                out.append("the loss level is this family's own: the borrowed prior carries the shape of the curve, "
                           "not its level (losses on other evaluation sets and tokenizers are not comparable)")
            if bor.get("tail_df") is not None:
                out.append(f"the borrowed parameters are t-distributed about their population's mean ({bor['tail_df']:g} "
                           "degrees of freedom: one fewer than its families), since a spread known from a few families "
                           "is itself uncertain; with the covariance of the population's draws")
            if bor.get("calibrated"):
                out.append(f"the borrowed prior's spread (x{bor['spread_scale']:g} of its source population's) and "
                           f"discrepancy ({bor['discrepancy_kappa']:g} per decade of distance from this family's data"
                           f"{tails_text(bor.get('discrepancy_tails'))}) "
                           "were calibrated on its source families' own borrowed predictions, each fitted on its "
                           "smallest model or two and scored at its largest")
            sizes = int(self.data.frame["params"].nunique())
            if bor.get("spread_scale", 1.0) < 1 and sizes > 2:
                out.append(f"the borrowed prior's spread was narrowed x{bor['spread_scale']:g} by a calibration on "
                           f"families with one or two model sizes; this family has {sizes}, whose data may identify "
                           "what that prior holds nearly fixed: compare with a fit of your own zoo")
            if bor.get("not_supplied"):
                out.append(f"the borrowed prior does not carry {', '.join(bor['not_supplied'])} (not parameters of "
                           "its law): their priors are this law's defaults, widened by the family spread")
        elif len(self.spec.families) == 1:
            out.append("single family: no family-to-family spread is learned, so new families cannot be predicted")
        ex = self.extrapolation
        weights = self.mixture_weights
        if weights:
            out.append(f"the borrowed prior is a mixture of {len(weights)} components averaged by their evidence: "
                       "this family's data make it most like "
                       + ", ".join(f"{n} ({w:.0%})" for n, w in list(weights.items())[:3]))
        pdc = ex.get("prior_data_conflict")
        if pdc and pdc["p_value"] < CONFLICT_P_VALUE:
            out.append(f"prior-data conflict: {conflict_summary(pdc)}; its predictions rest on a prior that does "
                       "not describe it")
        weak = ex.get("weak_borrowed_exponent")
        if weak:
            out.append(f"weakly supported borrowed N-exponent: this family's sizes span {weak['new_span']:.2f} decades "
                       f"of parameters, too few to identify its N-exponent, and only {len(weak['identifying'])} of the "
                       f"prior's source families span at least {weak['min_span']}: the borrowed exponent, and its "
                       "spread, come from families that barely identify their own, so extrapolation in N leans on "
                       "the population prior's defaults")
        if ex.get("inner_problems"):
            out.append(f"{len(ex['inner_problems'])} extrapolation calibration fit(s) did not converge: "
                       + "; ".join(ex["inner_problems"]))
        if ex.get("mode") == "learn" and ex.get("tails") is not None:
            out.append(f"the extrapolation discrepancy{tails_text(ex['tails'])}: its calibration's held-out runs, "
                       "most close to the law and a few far from it, are predicted better by it than by a normal of "
                       "the same variance (a narrower central interval, a wider 99% one)")
        if ex.get("mode") == "learn" and ex.get("pooling") == "directions":
            scales = ", ".join(f"{d} {ex[f'kappa_{d}']['median']:.3g}" for d in ex.get("directions", [])
                               if f"kappa_{d}" in ex)
            out.append(f"the extrapolation discrepancy's scale is shared by the directions (partially pooled); "
                       f"kappa per decade, median: {scales}")
        if ex.get("mode") == "learn" and ex.get("scale") == "loss":
            out.append("the extrapolation discrepancy is a relative error of the whole loss, learned from the held-out "
                       "runs' log-loss residuals (where it lowers the loss, the part above E shrinks instead)")
        if ex.get("mode") == "learn" and not ex.get("calibrated", False):
            out.append("extrapolation discrepancy could not be calibrated: " + ex.get("note", ""))
        return out

    def _run_notes(self) -> list[str]:
        """What the runs say about the likelihood: the Student-t's down-weighted runs, or the normal's
        outliers, and how ``likelihood="auto"`` chose."""
        from .outliers import describe_runs, outlier_table

        table = outlier_table(self)
        if table is None:
            return []
        choice = self.spec.likelihood_choice
        out = []
        if self.spec.likelihood == "student_t":
            why = f" ({choice['reason']})" if choice else ""
            low = table["downweighted"].sum()
            out.append(f"robust (Student-t) likelihood{why}: " + (
                f"it down-weights {low} run(s) below half weight: {describe_runs(table, 'downweighted')}" if low
                else "no run is down-weighted below half weight"))
        elif table["outlier"].any():
            out.append(f"{int(table['outlier'].sum())} run(s) are outliers under the normal likelihood and pull "
                       f"the law towards them: {describe_runs(table, 'outlier')}; likelihood='auto' or 'student_t' "
                       "would down-weight them")
        return out

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the whole fit to one NetCDF file."""
        return write_netcdf(self.idata, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScalingFit":
        """Read a fit written by :meth:`save`."""
        idata = read_idata(path, "fit")
        if "posterior" not in idata.groups() or SPEC_ATTR not in idata.posterior.attrs:
            raise FitFileError(f"{path} was not written by bayes_scaling (no model spec in its posterior)")
        return cls(idata)

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"<ScalingFit law={self.law.name!r} families={len(self.spec.families)} runs={len(self.spec.runs)} "
                f"draws={d.chains}x{d.draws} divergences={d.divergences} max_rhat={d.max_rhat:.3f}>")


def load(path: str | os.PathLike) -> ScalingFit:
    """Load a fit saved with :meth:`ScalingFit.save`."""
    return ScalingFit.load(path)
