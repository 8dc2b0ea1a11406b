"""``fit_downstream``: task accuracy forecast in two steps, size and data -> task loss -> accuracy.

Step 1 fits the task loss of every (family, task) pair with the hierarchical scaling law of :func:`.fit.fit`
(the pairs are its families: pooled, with seed and checkpoint noise and the extrapolation discrepancy
learned by nested leave-out), on each run's final stretch of checkpoints (:meth:`TaskData.law_rows`).
Step 2 fits the link from task loss to accuracy (:mod:`bayes_scaling.model.accuracy_link`), bounded below
by the task's chance accuracy, on every checkpoint past warm-up. A forecast pushes the step-1 predictive
draws of the task loss through the step-2 posterior draws of the link, then adds one evaluation's noise:
the uncertainty of both steps is carried, draw by draw.

Without a task-loss column the first step is a latent law fitted from the accuracies themselves
(``kind="latent"``); ``method="direct"`` fits accuracy against compute in one step, for comparison.

A task whose accuracy never rises above its floor (chance, or the flat level its data sit at) in the fitted
range is forecast **at that floor**: a sigmoid fitted to a flat stretch does not know where the rise would
start, and extrapolating one the data never showed would be a guess dressed as a forecast. "Rises" means the
fitted gain over the floor at the task's best observed point exceeds one evaluation's noise with posterior
probability 0.95 (:data:`RISE_PROBABILITY`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..data import ScalingData
from ..data.tasks import TaskData
from ..errors import FitFileError, SamplingWarning, UnknownFamilyError
from ..laws.accuracy import latent_difficulty, sigmoid
from ..model.config import ModelConfig
from ..model.accuracy_link import LATENT_VARS, LINK_VARS, build_link_model, latent_reference, link_x, standardisation
from ..model.draws import query_columns
from ..predict import closest_names, sample_count
from ..storage import FIT_MARKS, read_idata, write_netcdf
from .config import SamplerConfig
from .diagnostics import diagnose
from .fitted import ScalingFit
from .link_extrapolation import (DISTANCE_INPUT, LINK_DEPTHS, distance_below, held_out_runs, kappa_posterior,
                                 logit_curve, run_spread, sigmoid_curve, split_residuals, with_discrepancy)
from .sampling import run_nuts

log = logging.getLogger("bayes_scaling")

DOWNSTREAM_VERSION = 1
SPEC_ATTR = FIT_MARKS["downstream fit"]
METHODS = ("two_step", "direct")
#: a task shows its rise above chance when P(gain at its best observed point > one evaluation's noise) >= this
RISE_PROBABILITY = 0.95
#: defaults of the rows each step is fitted on (shares of a run's final tokens)
LAW_TAIL = 0.1
BURN = 0.1
#: checkpoints per run and task a latent link is fitted on by default (``link_checkpoints="auto"``): its cost
#: grows with every checkpoint, while a run's checkpoints share its seed effect and a dozen well-spread ones
#: carry its curve (the number the evaluation protocols thin to)
LATENT_CHECKPOINTS = 12
_LAW_PREFIX = "law_"


def _summary(draws: np.ndarray, interval: float) -> dict[str, np.ndarray]:
    """Median and central interval over the draws (axis 0)."""
    return dict(zip(("median", "lower", "upper"), np.quantile(draws, [0.5, (1 - interval) / 2, (1 + interval) / 2],
                                                              axis=0)))


def _pair_name(family: str, task: str) -> str:
    return f"{family}:{task}"


def fit_downstream(frame: pd.DataFrame | TaskData, *, family: str | None = "family", run: str = "run",
                   params: str = "params", tokens: str = "tokens", task: str = "task", accuracy: str = "accuracy",
                   chance: str = "chance", task_loss: str | None = None, method: str = "two_step",
                   law_tail: float = LAW_TAIL, burn: float = BURN, link_checkpoints: int | str | None = "auto",
                   model: ModelConfig | dict | None = None,
                   sampler: SamplerConfig | dict | None = None) -> "DownstreamFit":
    """Fit the downstream accuracy of every task (and family) in ``frame``; see the module docstring.

    Parameters
    ----------
    frame:
        One row per checkpoint and task (a long table), or a :class:`~bayes_scaling.data.tasks.TaskData`.
    family, run, params, tokens, task, accuracy, chance, task_loss:
        Column names. ``chance`` holds each task's random-guess accuracy; ``task_loss`` (optional) its loss
        (bits per byte of the right answer, or the cross-entropy over the choices). ``family=None``: one family.
    method:
        ``"two_step"`` (default): (N, D) -> task loss -> accuracy (a latent task loss without ``task_loss``);
        ``"direct"``: accuracy against compute 6ND in one step.
    law_tail, burn:
        The task-loss law is fitted on each run's checkpoints in its last ``law_tail`` share of tokens, the
        link on every checkpoint past the first ``burn`` share.
    link_checkpoints:
        At most this many checkpoints of each run and task for the link, evenly spread in log tokens;
        ``"all"`` (or ``None``): every one; ``"auto"`` (default): every one when the task loss or compute is
        observed, at most :data:`LATENT_CHECKPOINTS` for a latent task loss (whose cost grows fast with the
        checkpoints). The fit's notes say how many were kept.
    model:
        The step-1 task-loss law's :class:`~bayes_scaling.ModelConfig` (or a dict of its settings), as in
        :func:`bayes_scaling.fit`: e.g. ``{"extrapolation": None}`` to skip the nested leave-out, or
        ``{"likelihood": "student_t"}``.
    sampler:
        The :class:`~bayes_scaling.SamplerConfig` of both steps (draws, tune, chains, random_seed,
        progressbar; the link keeps its own target acceptance, 0.99).
    """
    law_model, nuts = ModelConfig.coerce(model), SamplerConfig.coerce(sampler)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    for name, v in (("law_tail", law_tail), ("burn", burn)):
        if not 0 <= v < 1 or (name == "law_tail" and v == 0):
            raise ValueError(f"{name} must be a share of a run's tokens in (0, 1), got {v!r}")
    if not (link_checkpoints is None or link_checkpoints in ("auto", "all")
            or (isinstance(link_checkpoints, (int, np.integer)) and not isinstance(link_checkpoints, bool)
                and link_checkpoints >= 2)):
        raise ValueError(f"link_checkpoints must be an integer >= 2, 'all' or 'auto', got {link_checkpoints!r}")
    data = frame if isinstance(frame, TaskData) else TaskData.from_frame(
        frame, family=family, run=run, params=params, tokens=tokens, task=task, accuracy=accuracy, chance=chance,
        task_loss=task_loss)
    kind = "compute" if method == "direct" else "task_loss" if data.has_task_loss else "latent"
    tasks, chance_by_task = data.tasks, data.chance
    pairs = [tuple(p) for p in data.frame[["family", "task"]].drop_duplicates().itertuples(index=False)]
    law_fit = None
    if kind == "task_loss":
        law_fit = _fit_law(data, law_tail, pairs, law_model, nuts)
    if link_checkpoints in ("auto", "all"):
        link_checkpoints = LATENT_CHECKPOINTS if kind == "latent" and link_checkpoints == "auto" else None
    rows = data.link_rows(burn, link_checkpoints)
    checkpoints = {"max_per_run": link_checkpoints, "kept": len(rows), "of": len(data.link_rows(burn))}
    sampling = dict(draws=nuts.draws, tune=nuts.tune, chains=nuts.chains, random_seed=nuts.random_seed,
                    progressbar=nuts.progressbar)
    log.info("fitting the accuracy link of %d task(s) on %d checkpoints (%s)", len(tasks), len(rows), kind)
    idata, info, diag, scale, reference = _sample_link(rows, tasks, chance_by_task, kind, pairs, sampling)
    spec = {"version": DOWNSTREAM_VERSION, "kind": kind, "method": method, "tasks": tasks,
            "chance": chance_by_task, "pairs": [list(p) for p in pairs], "scale": scale, "reference": reference,
            "law_tail": law_tail, "burn": burn, "link_checkpoints": checkpoints, "columns": data.columns,
            "source": data.source,
            "sampler": {k: info[k] for k in ("sampler", "draws", "tune", "chains", "random_seed", "sampling_seconds",
                                             "compile_seconds")},
            "diagnostics": diag.to_dict()}
    if kind != "latent":  # a latent link carries each run's offset as its seed effect
        spec["run_sd"] = run_spread(_task_draws(idata), rows, link_x(rows, kind))
    post = idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    (kappa, growth), spec["link_extrapolation"] = _learn_link_kappa(rows, tasks, chance_by_task, kind, pairs,
                                                                     sampling, size=shape[0] * shape[1])
    post["link_kappa"] = (("chain", "draw"), kappa.reshape(shape))
    post["link_growth"] = (("chain", "draw"), growth.reshape(shape))
    const = rows[["family", "run", "task", "params", "tokens", "flops", "chance", "task_loss"]]
    idata.add_groups(
        observed_data=xr.Dataset({"accuracy": ("row", rows["accuracy"].to_numpy(dtype=float))}),
        constant_data=xr.Dataset({k: ("row", const[k].to_numpy(dtype=str if k in ("family", "run", "task")
                                                                  else float)) for k in const}))
    result = DownstreamFit(idata, spec, law_fit)
    result.spec["rise"] = result._rise_table()
    idata.posterior.attrs[SPEC_ATTR] = json.dumps(result.spec)
    for p in diag.problems:
        warnings.warn(f"downstream link fit: {p}", SamplingWarning, stacklevel=2)
    return result


def _sample_link(rows: pd.DataFrame, tasks: list[str], chance: dict, kind: str, pairs: list, sampling: dict):
    """Sample the link model of ``rows``: (idata, sampler info, diagnostics, the scale of the input distances
    are measured in, latent reference)."""
    scale = standardisation(rows, tasks, DISTANCE_INPUT[kind])
    reference = latent_reference(rows) if kind == "latent" else None
    model = build_link_model(rows, tasks, chance, kind, scale=scale, groups=pairs, reference=reference)
    keep = LATENT_VARS if kind == "latent" else LINK_VARS
    idata, info = run_nuts(model, {}, target_accept=0.99, keep_vars=keep, jitter_vars=None, **sampling)
    return idata, info, diagnose(idata, list(keep), info["sampling_seconds"]), scale, reference


def _task_draws(idata: az.InferenceData):
    """A function of a task name giving the link's draws of that task's curve and noise."""
    post = idata.posterior.stack(sample=("chain", "draw"))
    return lambda task: {n: post[n].sel(task=task).to_numpy() for n in ("floor", "upper", "slope", "midpoint",
                                                                        "sigma_acc")}


def _learn_link_kappa(rows: pd.DataFrame, tasks: list[str], chance: dict, kind: str, pairs: list, sampling: dict,
                      size: int) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """The link's extrapolation scale and growth by nested leave-out (:mod:`.link_extrapolation`): their draws
    and a summary."""
    resid, splits, problems = [], [], []
    rng = np.random.default_rng(sampling["random_seed"])
    inner_sampling = {**sampling, "draws": max(sampling["draws"] // 2, 100)}
    for depth in LINK_DEPTHS:
        held = held_out_runs(rows, depth)
        if not held.any():
            continue
        inner_rows = rows[~held].reset_index(drop=True)
        inner_tasks = [t for t in tasks if (inner_rows["task"] == t).any()]
        log.info("link calibration: fitting without each family's %d largest size(s)", depth)
        kept = set(zip(inner_rows["family"], inner_rows["task"]))
        inner_pairs = [p for p in pairs if p in kept]
        idata, _, diag, scale, reference = _sample_link(inner_rows, inner_tasks, chance, kind, inner_pairs,
                                                        inner_sampling)
        problems += [f"depth {depth}: {p}" for p in diag.problems]
        out = rows[held & rows["task"].isin(inner_tasks).to_numpy()].reset_index(drop=True)
        if kind == "latent":
            curve = _latent_curve(idata, inner_tasks, inner_pairs, reference, chance, rng)
            runs = {}
        else:
            inner = _task_draws(idata)
            curve = lambda task, sub: sigmoid_curve(inner(task), link_x(sub, kind), chance[task], kind)
            runs = run_spread(inner, inner_rows, link_x(inner_rows, kind))
        noise = {t: float(idata.posterior["sigma_acc"].sel(task=t).median()) for t in inner_tasks}
        r = split_residuals(curve, out, link_x(out, DISTANCE_INPUT[kind]), dict(zip(inner_tasks, scale["lowest"])),
                            dict(zip(inner_tasks, scale["spread"])), noise, runs)
        resid.append(r.assign(depth=depth))
        splits.append({"depth": depth, "runs_held_out": int(out["run"].nunique()), "residuals": len(r),
                       "max_distance": float(r["distance"].max()) if len(r) else 0.0})
    table = pd.concat(resid, ignore_index=True) if resid else pd.DataFrame()
    kappa, growth = kappa_posterior(table, size, rng)
    info = {"splits": splits, "kappa_median": float(np.median(kappa)), "growth_median": float(np.median(growth)),
            "calibrated": bool(len(table)), "inner_problems": problems}
    return (kappa, growth), info


def _sample_draws(idata: az.InferenceData, name: str) -> np.ndarray:
    """Posterior draws (sample, ...) of a link variable."""
    return idata.posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()


def _latent_x(draw: Callable[[str], np.ndarray], g: int, reference: dict, params: np.ndarray,
              tokens: np.ndarray) -> np.ndarray:
    """Draws (sample, point) of pair ``g``'s latent task loss at (params, tokens), without seed noise;
    ``draw(name)`` gives a latent link's draws (sample, pair) of ``alpha``, ``beta`` and ``b``."""
    n = np.log(params)[None, :] - reference["log_params"]
    d = np.log(tokens)[None, :] - reference["log_tokens"]
    return latent_difficulty(n, d, draw("alpha")[:, g, None], draw("beta")[:, g, None], draw("b")[:, g, None], np)


def _latent_curve(idata: az.InferenceData, tasks: list[str], pairs: list, reference: dict, chance: dict,
                  rng: np.random.Generator) -> Callable[[str, pd.DataFrame], tuple[np.ndarray, np.ndarray]]:
    """The ``curve`` of :func:`.link_extrapolation.split_residuals` for a latent link: draws of a new run's
    accuracy at a held-out run's rows (one seed effect per draw, shared by the run's rows)."""
    draw = functools.cache(lambda name: _sample_draws(idata, name))

    def curve(task: str, sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        g, j = pairs.index((str(sub["family"].iloc[0]), task)), tasks.index(task)
        x = _latent_x(draw, g, reference, sub["params"].to_numpy(dtype=float), sub["tokens"].to_numpy(dtype=float))
        x = x + draw("sigma_seed")[:, None] * rng.standard_normal((x.shape[0], 1))
        return logit_curve(draw("floor")[:, j, None], draw("upper")[:, j, None], draw("midpoint")[:, g, None] - x,
                           chance[task], "latent")

    return curve


def _fit_law(data: TaskData, tail: float, pairs: list, model: ModelConfig, sampler: SamplerConfig) -> ScalingFit:
    """Step 1: the hierarchical law of the task loss, each (family, task) pair one of its families."""
    from .fit import fit

    rows = data.law_rows(tail)
    frame = pd.DataFrame({
        "family": [_pair_name(f, t) for f, t in zip(rows["family"], rows["task"])],
        "run": [f"{f}:{t}:{r}" for f, t, r in zip(rows["family"], rows["task"], rows["run"])],
        "params": rows["params"], "tokens": rows["tokens"], "loss": rows["task_loss"]})
    law_data = ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss",
                                      run="run", source=data.source)
    log.info("fitting the task-loss law of %d (family, task) pair(s) on %d checkpoints", len(pairs), len(frame))
    return fit(law_data, model, sampler)


class DownstreamFit:
    """A fitted downstream forecast: the task-loss law (step 1, a :class:`ScalingFit`, or None when the task
    loss is latent or the link is direct) and the accuracy link's posterior (step 2, ``idata``)."""

    def __init__(self, idata: az.InferenceData, spec: dict, law_fit: ScalingFit | None):
        self.idata, self.spec, self.law_fit = idata, spec, law_fit

    @property
    def tasks(self) -> list[str]:
        return list(self.spec["tasks"])

    @property
    def families(self) -> list[str]:
        return sorted({f for f, _ in self.spec["pairs"]})

    @property
    def _pairs(self) -> list[tuple[str, str]]:
        """The fitted (family, task) pairs."""
        return [tuple(p) for p in self.spec["pairs"]]

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def diagnostics(self) -> dict:
        return self.spec["diagnostics"]

    def _draws(self, name: str) -> np.ndarray:
        """Posterior draws (sample, ...) of a link variable."""
        return _sample_draws(self.idata, name)

    # ------------------------------------------------------------------ the rise above chance
    def _gain_at_best(self) -> dict[str, np.ndarray]:
        """Per task, draws of the fitted gain over the floor at its best observed point (lowest task loss, or
        largest compute)."""
        c = self.idata.constant_data
        rows = pd.DataFrame({k: c[k].to_numpy() for k in ("family", "task", "params", "tokens", "flops", "task_loss")})
        out = {}
        for t in self.tasks:
            sub = rows[rows["task"] == t]
            if self.kind == "latent":
                best = sub.loc[sub["flops"].idxmax()]
                x = self._latent_x(str(best["family"]), t, np.array([best["params"]]), np.array([best["tokens"]]))
            else:
                best, x = None, np.full((self._n_draws, 1), float(link_x(sub, self.kind).min()))
            idx = np.arange(self._n_draws)
            floor = self._draws("floor")[:, self.tasks.index(t)]
            out[t] = self._link_mean(t, x, idx, None if best is None else str(best["family"]))[:, 0] - floor
        return out

    @property
    def _n_draws(self) -> int:
        return sample_count(self.idata.posterior)

    def _link_mean(self, task: str, x: np.ndarray, pick: np.ndarray, family: str | None = None,
                   z: np.ndarray | None = None, far: np.ndarray | None = None) -> np.ndarray:
        """The link's accuracy (sample, point) at inputs ``x`` (sample, point), with link draws ``pick``; ``z``
        (sample, 1): standard normal draws of the link's extrapolation discrepancy (:mod:`.link_extrapolation`),
        whose distance is measured in ``far`` (the input of :data:`.link_extrapolation.DISTANCE_INPUT`; ``x``
        itself when None)."""
        j = self.tasks.index(task)
        floor, upper = self._draws("floor")[pick, j, None], self._draws("upper")[pick, j, None]
        if self.kind == "latent":
            logit = self._draws("midpoint")[pick, self._pair_index(family, task), None] - x
        else:
            logit = self._draws("slope")[pick, j, None] * (self._draws("midpoint")[pick, j, None] - x)
        if z is not None and "link_kappa" in self.idata.posterior:
            scale = self.spec["scale"]
            dist = (distance_below(x if far is None else far, scale["lowest"][j], scale["spread"][j])
                    ** self._draws("link_growth")[pick, None])
            shift = self._draws("link_kappa")[pick, None] * dist * z
            return with_discrepancy(floor, upper, logit, shift, self.spec["chance"][task], self.kind)
        return floor + (upper - floor) * sigmoid(logit, np)

    def _expected_accuracy(self, task: str, x: np.ndarray, pick: np.ndarray, family: str | None,
                           z: np.ndarray, far: np.ndarray | None = None) -> np.ndarray:
        """The forecast's accuracy without noise: the link, or its floor for a task whose data show no rise."""
        if task in self.at_chance:  # flat at its floor (chance, or the level the data sit at)
            return np.broadcast_to(self._draws("floor")[pick, self.tasks.index(task), None], x.shape)
        return self._link_mean(task, x, pick, family, z, far)

    def _rise_table(self) -> dict[str, dict]:
        sigma = self._draws("sigma_acc")
        out = {}
        for j, (t, gain) in enumerate(self._gain_at_best().items()):
            noise = float(np.median(sigma[:, j]))
            p = float(np.mean(gain > noise))
            out[t] = {"gain_median": float(np.median(gain)), "noise": noise, "probability": p,
                      "shown": p >= RISE_PROBABILITY}
        return out

    @property
    def at_chance(self) -> list[str]:
        """Tasks whose data show no rise above chance: forecast at chance."""
        return [t for t, r in self.spec["rise"].items() if not r["shown"]]

    # ------------------------------------------------------------------ prediction
    def _pair_index(self, family: str, task: str) -> int:
        return self._pairs.index((family, task))

    def _latent_x(self, family: str, task: str, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Draws (sample, point) of the latent task loss of one pair at (params, tokens), without seed noise."""
        return _latent_x(self._draws, self._pair_index(family, task), self.spec["reference"], params, tokens)

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise UnknownFamilyError(f"task {task!r} was not fitted; fitted tasks: {self.tasks}"
                                     + (f"; closest: {closest_names(task, self.tasks)}"
                                        if closest_names(task, self.tasks) else ""))

    def _check_names(self, family: str, task: str, new_family: bool) -> None:
        self._check_task(task)
        if (family, task) in self._pairs:
            return
        fitted = sorted(f for f, t in self._pairs if t == task)
        if not new_family:
            raise UnknownFamilyError(
                f"family {family!r} has no fitted data on task {task!r} (fitted there: {fitted}); pass "
                "new_family=True to predict a family the fit has not seen, drawn from the population of "
                "(family, task) laws")
        if self.kind != "task_loss":
            raise UnknownFamilyError(
                f"family {family!r} has no data on task {task!r}, and a {self.kind!r} link has no population of "
                "families to draw it from: fit with a task-loss column (two steps) to predict new families")

    def predict(self, family: str, task: str, params: Any, tokens: Any, *, interval: float = 0.9,
                random_seed: int = 0, new_family: bool = False, keep_draws: bool = False) -> xr.Dataset:
        """Predictive accuracy (and task loss) of ``task`` for ``family`` at (``params``, ``tokens``) points.

        Returns a Dataset over ``point`` with ``median``, ``lower``, ``upper`` of the accuracy of one run
        you will train (seed and evaluation noise included), ``expected_*`` without them, and
        ``task_loss_*`` (two-step fits with a task loss); ``at_chance`` marks a task forecast at chance
        because its data show no rise. ``keep_draws``: the draws too (``accuracy``, dims sample x point).
        """
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        self._check_names(family, task, new_family)
        cols = query_columns(params, tokens)
        n_pts = len(cols["params"])
        rng = np.random.default_rng(random_seed)
        ch = self.spec["chance"][task]
        n_link = self._n_draws
        loss = None
        if self.kind == "task_loss":
            law = self.law_fit.predict(_pair_name(family, task), cols["params"], cols["tokens"], interval=interval,
                                       keep_draws=True, random_seed=random_seed, new_family=new_family)
            x_exp, x_run = law["expected_loss"].to_numpy(), law["run_loss"].to_numpy()
            loss = law
        elif self.kind == "compute":
            x_exp = x_run = np.broadcast_to(-np.log(cols["flops"])[None, :], (n_link, n_pts))
        else:
            x_exp = self._latent_x(family, task, cols["params"], cols["tokens"])
            x_run = x_exp + self._draws("sigma_seed")[:, None] * rng.standard_normal(x_exp.shape)
        n_s = min(len(x_exp), n_link)
        pick = rng.permutation(n_link)[:n_s] if len(x_exp) != n_link else np.arange(n_link)
        x_exp, x_run = x_exp[:n_s], x_run[:n_s]
        j = self.tasks.index(task)
        # one evaluation's noise, and a new run's lasting offset from the link (the fitted runs' spread)
        noise = (self._draws("sigma_acc")[pick, j, None] * rng.standard_normal((n_s, n_pts))
                 + self.spec.get("run_sd", {}).get(task, 0.0) * rng.standard_normal((n_s, 1)))
        z = rng.standard_normal((n_s, 1))  # the link's error beyond the data, shared by the points of a draw
        far = np.broadcast_to(-np.log(cols["flops"])[None, :], x_exp.shape) if self.kind == "latent" else None
        expected = self._expected_accuracy(task, x_exp, pick, family, z, far)
        run = np.clip(self._expected_accuracy(task, x_run, pick, family, z, far) + noise, 0.0, 1.0)
        data_vars = {f"{prefix}{k}": ("point", v) for prefix, draws in (("", run), ("expected_", expected))
                     for k, v in _summary(draws, interval).items()}
        if loss is not None:
            for k in ("median", "lower", "upper"):
                data_vars[f"task_loss_{k}"] = ("point", loss[f"run_{k}"].to_numpy())
        if keep_draws:
            data_vars["accuracy"] = (("sample", "point"), run)
        coords = {"point": np.arange(n_pts), "params": ("point", cols["params"]),
                  "tokens": ("point", cols["tokens"]), "flops": ("point", cols["flops"])}
        ds = xr.Dataset(data_vars, coords=coords)
        ds.attrs.update(family=family, task=task, interval=interval, chance=ch, at_chance=int(task in self.at_chance),
                        new_family=int((family, task) not in self._pairs),
                        description="median/lower/upper: accuracy of one run you will train (seed and evaluation "
                                    "noise included); expected_*: of the configuration; task_loss_*: the step-1 "
                                    "task loss of one run")
        return ds

    def accuracy_at(self, task: str, task_loss: Any, *, interval: float = 0.9, random_seed: int = 0) -> xr.Dataset:
        """Step 2 alone: the expected accuracy of ``task`` at given task losses (e.g. a model already
        evaluated), with the link's error beyond the fitted losses; ``median``, ``lower``, ``upper`` over
        ``point``. Only for fits with a task-loss column."""
        if self.kind != "task_loss":
            raise ValueError(f"accuracy_at needs a fit with a task-loss column; this fit's link is {self.kind!r}")
        self._check_task(task)
        x = np.atleast_1d(np.asarray(task_loss, dtype=float))
        rng = np.random.default_rng(random_seed)
        pick = np.arange(self._n_draws)
        z = rng.standard_normal((len(pick), 1))
        acc = self._expected_accuracy(task, np.broadcast_to(x, (len(pick), len(x))), pick, None, z)
        ds = xr.Dataset({k: ("point", v) for k, v in _summary(acc, interval).items()},
                        coords={"point": np.arange(len(x)), "task_loss": ("point", x)})
        ds.attrs.update(task=task, interval=interval, at_chance=int(task in self.at_chance))
        return ds

    # ------------------------------------------------------------------ summaries
    def link_table(self, interval: float = 0.9) -> pd.DataFrame:
        """Per task: chance, the link's parameters (median and interval) and whether the data show a rise."""
        rows = []
        names = ("floor", "upper", "sigma_acc") + (("slope", "midpoint") if self.kind != "latent" else ())
        for j, t in enumerate(self.tasks):
            row = {"task": t, "chance": self.spec["chance"][t]}
            for n in names:
                q = _summary(self._draws(n)[:, j], interval)
                row.update({n: q["median"], f"{n}_lower": q["lower"], f"{n}_upper": q["upper"]})
            r = self.spec["rise"][t]
            row.update(rise_shown=r["shown"], rise_probability=r["probability"])
            rows.append(row)
        return pd.DataFrame(rows)

    def notes(self) -> list[str]:
        """Plain-language caveats."""
        out = []
        for t in self.at_chance:
            r = self.spec["rise"][t]
            out.append(f"task {t!r} shows no rise above chance in the fitted range (fitted gain {r['gain_median']:.3f} "
                       f"against one evaluation's noise {r['noise']:.3f}, probability {r['probability']:.2f}): it is "
                       "forecast at chance, since the data cannot say where a rise would begin")
        if self.kind == "latent":
            out.append("no task-loss column: the first step is a latent law fitted from the accuracies alone; the "
                       "link's error beyond the fitted compute is learned by leaving out the largest sizes")
        elif self.kind == "compute":
            out.append("direct link (accuracy against compute 6ND): the allocation of compute between size and "
                       "tokens does not enter, and the link's ceiling is fitted from the accuracies alone (no task "
                       "loss to anchor it at accuracy 1)")
        else:
            out += [f"task-loss law: {n}" for n in self.law_fit.notes()]
        kept = self.spec.get("link_checkpoints")
        if kept and kept["max_per_run"] is not None and kept["kept"] < kept["of"]:
            out.append(f"the accuracy link was fitted on at most {kept['max_per_run']} checkpoints of each run and "
                       f"task, evenly spread in log tokens ({kept['kept']} of {kept['of']}); pass "
                       "link_checkpoints='all' to fit every one")
        ext = self.spec.get("link_extrapolation")
        if ext is not None and not ext["calibrated"]:
            out.append("the link's extrapolation discrepancy could not be learned (no family has the three model sizes "
                       "a leave-out needs): it follows its prior, so intervals beyond the data rest on that prior")
        if ext is not None and ext["inner_problems"]:
            out.append(f"{len(ext['inner_problems'])} link calibration fit problem(s): " + "; ".join(ext["inner_problems"]))
        for p in self.diagnostics.get("problems", []):
            out.append(f"accuracy link fit: {p}")
        if self.law_fit is not None:
            out += [f"task-loss law fit: {p}" for p in self.law_fit.diagnostics.problems]
        return out

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write both steps to one NetCDF file."""
        groups = {g: self.idata[g] for g in self.idata.groups()}
        if self.law_fit is not None:
            groups.update({_LAW_PREFIX + g: self.law_fit.idata[g] for g in self.law_fit.idata.groups()})
        return write_netcdf(az.InferenceData(**groups), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DownstreamFit":
        """Read a fit written by :meth:`save`."""
        idata = read_idata(path, "downstream fit")
        if "posterior" not in idata.groups() or SPEC_ATTR not in idata.posterior.attrs:
            raise FitFileError(f"{path} is not a downstream fit (write one with bayes-scaling downstream fit); "
                               "a loss fit is read with bayes_scaling.open")
        spec = json.loads(idata.posterior.attrs[SPEC_ATTR])
        if spec.get("version", 0) > DOWNSTREAM_VERSION:
            raise FitFileError(f"{path} was written by a newer bayes_scaling (downstream format "
                               f"{spec['version']} > {DOWNSTREAM_VERSION}); upgrade the package to read it")
        own = {g: idata[g] for g in idata.groups() if not g.startswith(_LAW_PREFIX)}
        law = {g[len(_LAW_PREFIX):]: idata[g] for g in idata.groups() if g.startswith(_LAW_PREFIX)}
        return cls(az.InferenceData(**own), spec, ScalingFit(az.InferenceData(**law)) if law else None)

    def __repr__(self) -> str:
        return (f"<DownstreamFit kind={self.kind!r} tasks={len(self.tasks)} families={len(self.families)} "
                f"at_chance={len(self.at_chance)}>")


def load_downstream(path: str | os.PathLike) -> DownstreamFit:
    """Load a fit saved with :meth:`DownstreamFit.save`."""
    return DownstreamFit.load(path)
