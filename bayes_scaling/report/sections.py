"""The posterior report's sections: each function computes what one section shows from a fit.

Order of the report: summary, data, model and priors, diagnostics, fitted curves, parameters,
noise, posterior predictive check, targets, compute-optimal frontier. Numbers meant for people
are formatted by :func:`~bayes_scaling.report.format.human` (1.3B params, 50B tokens).
"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from ..data.extent import BASE_DIRECTIONS, DIRECTION_MEANING, DIRECTIONS, distance_columns, distances
from ..errors import UnsupportedLawError
from ..model import POPULATION_VARS, hierarchical
from ..model.population_prior import CONFLICT_P_VALUE
from . import figures
from .document import Figure, Items, Section, Table, Text
from .format import human, sci

#: grid points per fitted curve
CURVE_POINTS = 40
#: the predictive check uses at most this many observations (an even subsample beyond it, said so)
PPC_MAX_ROWS = 5000


def _interval_text(q) -> str:
    return f"{q[0]:.4g} [{q[1]:.4g}, {q[2]:.4g}]"


def _quantiles(values: np.ndarray, interval: float) -> tuple[float, float, float]:
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    q = np.quantile(np.asarray(values, dtype=float).ravel(), [0.5, lo, hi])
    return float(q[0]), float(q[1]), float(q[2])


def model_equations() -> str:
    """The model written out, taken from :mod:`bayes_scaling.model.hierarchical` (one source)."""
    doc = hierarchical.__doc__ or ""
    return doc.split("::", 1)[1].strip("\n").split("\n\n", 1)[0]


# ---------------------------------------------------------------------------------------- sections
def summary_section(fit: Any, interval: float) -> Section:
    d = fit.diagnostics
    s = Section("Summary")
    s.blocks.append(Text(f"{len(fit.data)} observations of {len(fit.spec.runs)} runs in {len(fit.families)} "
                         f"famil{'y' if len(fit.families) == 1 else 'ies'}; law {fit.law.one_line}; "
                         f"{fit.spec.likelihood} likelihood; {d.chains} chains x {d.draws} draws."))
    if d.ok:
        s.blocks.append(Text("Sampling diagnostics: all checks passed (no divergences, R-hat and ESS within "
                             "limits).", "ok"))
    else:
        s.blocks.append(Text("Sampling diagnostics FAILED: read the Diagnostics section before using these "
                             "numbers.", "warn"))
    notes = fit.notes()
    if notes:
        s.blocks.append(Items(tuple(notes)))
    return s


def data_section(fit: Any) -> Section:
    data = fit.data
    ov = data.overview().reset_index()
    comp = data.frame.groupby("family")["flops"].agg(["min", "max"])
    table = pd.DataFrame({
        "family": ov["family"], "runs": ov["runs"], "sizes": ov["sizes"],
        "params": [f"{human(a)} – {human(b)}" for a, b in zip(ov["min_params"], ov["max_params"])],
        "tokens": [f"{human(a)} – {human(b)}" for a, b in zip(ov["min_tokens"], ov["max_tokens"])],
        "compute (FLOPs)": [f"{sci(comp.loc[f, 'min'])} – {sci(comp.loc[f, 'max'])}" for f in ov["family"]],
        "rows": ov["rows"]})
    s = Section("Data", [Text(f"Source: {fit.spec.source or 'user data'}"), Table(table)])
    if fit.spec.filters:
        f = pd.DataFrame(fit.spec.filters).rename(columns={"runs_emptied": "runs removed"})
        s.blocks += [Text("Rows removed before fitting, by filter and why (nothing is dropped silently):"),
                     Table(f)]
    else:
        s.blocks.append(Text("No rows were removed before fitting."))
    return s


def model_section(fit: Any) -> Section:
    spec = fit.spec
    ref = ", ".join(f"{k} = {human(v)}" for k, v in spec.reference.items())
    s = Section("Model and priors", [
        Text(f"Law: {fit.law.one_line}, written on the sampling scale {', '.join(fit.law.sampling)} and anchored at "
             f"the reference scales {ref}."),
        Text(model_equations(), "code"),
        Text(f"Likelihood: {spec.likelihood}; checkpoint noise: {spec.checkpoint_noise}"
             f"{' (an Ornstein-Uhlenbeck drift along each run in log tokens plus white jitter)' if spec.checkpoint_noise == 'ou' else ''}. "
             "Run effects u_j are integrated out exactly; the predictive "
             "separates the expected loss of a configuration from the loss of one run (seed and checkpoint "
             "noise added)."),
        Text("Priors:"), Items(tuple(spec.priors.describe()))])
    if spec.borrowed is not None:
        bor = spec.borrowed
        drift = ""
        if spec.checkpoint_noise == "ou":
            drift = (" The checkpoint drift's correlation length and share are borrowed too."
                     if "ou_length_lognormal" in bor else
                     " The source fit had independent checkpoint noise, so ou_length and ou_share keep the "
                     "default priors listed above.")
        level = (" It is level-free: each of its draws was moved to this family's loss level, which it leaves to "
                 "this family's data (losses on other evaluation sets and tokenizers are not comparable)."
                 if bor.get("free_level") else "")
        missing = (f" It does not carry {', '.join(bor['not_supplied'])}, whose priors are this law's defaults."
                   if bor.get("not_supplied") else "")
        s.blocks.append(Text(f"Borrowed population prior from {bor.get('source', 'another fit')}: it replaces the "
                             f"priors of mu, sigma_total and seed_share above.{drift}{level}{missing}"))
        if bor.get("provenance"):
            tab = pd.DataFrame(bor["provenance"])
            s.blocks.append(Table(pd.DataFrame({
                "zoo": tab["zoo"], "family": tab["family"], "runs": tab["runs"], "sizes": tab["sizes"],
                "params": [f"{human(a)}–{human(b)}" for a, b in zip(tab["min_params"], tab["max_params"])],
                "tokens": [f"{human(a)}–{human(b)}" for a, b in zip(tab["min_tokens"], tab["max_tokens"])],
                "loss": tab["loss"], "licence": tab["licence"]}), caption="The families the borrowed prior was "
                                                                          "fitted on (its provenance)."))
    if spec.treatments:
        s.blocks.append(Text("Treatments (treated family = twin + shift): "
                             + ", ".join(f"{g} ← {t}" for g, t in spec.treatments.items())))
    return s


CHECK_MEANING = {
    "divergences": ("0", "The sampler met regions of the posterior it could not explore; the intervals can be "
                         "biased (usually too narrow). Refit with a higher target_accept or more informative "
                         "priors before trusting them."),
    "max R-hat": ("≤ 1.01", "The chains disagree with each other: the posterior was not fully explored. Run "
                             "longer (more tune and draws) and check the parameter named in the table."),
    "min bulk ESS": ("≥ 400", "Few effectively independent draws: medians and means are noisy. Run more draws."),
    "min tail ESS": ("≥ 400", "Few effectively independent draws in the tails: interval ends are unreliable. "
                              "Run more draws."),
}


def diagnostics_section(fit: Any) -> Section:
    d = fit.diagnostics
    rows = [("divergences", d.divergences, d.divergences == 0),
            ("max R-hat", round(d.max_rhat, 4), d.max_rhat <= 1.01),
            ("min bulk ESS", round(d.min_ess_bulk), d.min_ess_bulk >= 400),
            ("min tail ESS", round(d.min_ess_tail), d.min_ess_tail >= 400)]
    worst = {"max R-hat": d.worst.get("rhat", ""), "min bulk ESS": d.worst.get("ess_bulk", ""),
             "min tail ESS": d.worst.get("ess_tail", ""), "divergences": ""}
    table = pd.DataFrame([{"check": c, "value": v, "required": CHECK_MEANING[c][0],
                           "status": "ok" if ok else "FAILED", "worst parameter": worst[c]}
                          for c, v, ok in rows])
    info = fit.sampler_info
    s = Section("Diagnostics", [Table(table, caption=(
        f"{d.chains} chains x {d.draws} draws with {info.get('sampler', 'NUTS')}; compile "
        f"{info.get('compile_seconds', float('nan')):.1f} s, sampling {d.sampling_seconds:.1f} s. Checked on the "
        "population parameters and noise scales."))])
    failed = [(c, CHECK_MEANING[c][1]) for c, _, ok in rows if not ok]
    if failed:
        s.blocks.append(Items(tuple(f"{c} failed: {m}" for c, m in failed), "warn"))
    else:
        s.blocks.append(Text("All checks passed.", "ok"))
    chosen = info.get("parameterisation")
    if chosen:  # whiten="auto": which family-layer parameterisation was sampled, why, and every run tried
        s.blocks.append(Text(f"Sampled with {chosen['reason']}."))
        if len(chosen["tried"]) > 1:
            s.blocks.append(Table(pd.DataFrame(chosen["tried"]), caption=(
                "Every run the parameterisation choice sampled, in order (the same posterior; the run kept is "
                "the one above).")))
    names = [v for v in POPULATION_VARS if v in fit.idata.posterior and v != "corr"]
    summ = az.summary(fit.idata, var_names=names, kind="all", round_to="none").reset_index()
    summ = summ.rename(columns={"index": "parameter"})
    keep = ["parameter", "mean", "sd", "ess_bulk", "ess_tail", "r_hat"]
    s.blocks.append(Table(summ[keep], caption="Per-parameter diagnostics (sampling scale; ArviZ summary)."))
    return s


def _curve_grid(fit: Any, interval: float, max_sizes: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected-loss bands per family and displayed size, over tokens (with the run's FLOPs per token)."""
    df = fit.data.frame
    rows = []
    for fam in fit.families:
        sub = df[df["family"] == fam]
        sizes = np.sort(sub["params"].unique())
        if len(sizes) > max_sizes:
            sizes = sizes[np.linspace(0, len(sizes) - 1, max_sizes).astype(int)]
        for n in sizes:
            pts = sub[sub["params"] == n]
            if fit.law.further_inputs:  # inputs that vary along a run (unique tokens): each run at its own rows
                rows += [_run_curve(fit, run, interval) for _, run in pts.groupby("run", sort=False)]
                continue
            per_token = float(np.median(pts["flops"] / pts["tokens"]))
            t = np.geomspace(pts["tokens"].min(), pts["tokens"].max() * 1.5, CURVE_POINTS)
            p = fit.predict(fam, n, t, t * per_token, interval=interval)
            rows.append(pd.DataFrame({"family": fam, "params": n, "tokens": t, "flops": t * per_token,
                                      "median": p["expected_median"].to_numpy(),
                                      "lower": p["expected_lower"].to_numpy(),
                                      "upper": p["expected_upper"].to_numpy()}))
    curves = pd.concat(rows, ignore_index=True)
    points = df[df["params"].isin(curves["params"].unique())]
    points = points.merge(curves[["family", "params"]].drop_duplicates(), on=["family", "params"])
    return curves, points


def _run_curve(fit: Any, run: pd.DataFrame, interval: float) -> pd.DataFrame:
    """One run's expected-loss band at its own checkpoints (a law whose further inputs vary along a run)."""
    run = run.sort_values("tokens")
    p = fit.predict(run["family"].iloc[0], run["params"].to_numpy(), run["tokens"].to_numpy(), run["flops"].to_numpy(),
                    inputs={c: run[c].to_numpy() for c in fit.law.further_inputs}, interval=interval)
    return pd.DataFrame({"family": run["family"].to_numpy(), "params": run["params"].to_numpy(),
                         "run": run["run"].to_numpy(), "tokens": run["tokens"].to_numpy(),
                         "flops": run["flops"].to_numpy(), "median": p["expected_median"].to_numpy(),
                         "lower": p["expected_lower"].to_numpy(), "upper": p["expected_upper"].to_numpy()})


def curves_section(fit: Any, interval: float) -> Section:
    s = Section("Fitted curves")
    if "tokens" not in fit.law.inputs:
        curves, points = _compute_only_curves(fit, interval)
        s.blocks.append(Figure(figures.fitted_curves(curves, points, "flops", interval, fit.law.one_line),
                               "loss_vs_compute", "Loss against compute per family."))
        return s
    curves, points = _curve_grid(fit, interval)
    shown = "" if curves["params"].nunique() == fit.data.frame["params"].nunique() else \
        " (up to five sizes per family, spread over its range)"
    s.blocks += [
        Figure(figures.fitted_curves(curves, points, "tokens", interval, fit.law.one_line), "loss_vs_tokens",
               f"Loss against training tokens, one colour per model size{shown}: observations (dots) and the "
               f"posterior median and {interval:.0%} band of the expected loss (no seed noise)."),
        Figure(figures.fitted_curves(curves, points, "flops", interval, fit.law.one_line), "loss_vs_compute",
               "The same curves against training compute: where sizes cross shows which is compute-optimal.")]
    return s


def _compute_only_curves(fit: Any, interval: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = fit.data.frame
    rows = []
    for fam in fit.families:
        sub = df[df["family"] == fam]
        c = np.geomspace(sub["flops"].min(), sub["flops"].max() * 1.5, CURVE_POINTS)
        p = fit.predict(fam, 1.0, 1.0, c, interval=interval)
        rows.append(pd.DataFrame({"family": fam, "params": 0.0, "flops": c, "median": p["expected_median"].to_numpy(),
                                  "lower": p["expected_lower"].to_numpy(), "upper": p["expected_upper"].to_numpy()}))
    points = df.assign(params=0.0)
    return pd.concat(rows, ignore_index=True), points


def parameters_section(fit: Any, interval: float) -> Section:
    tab = fit.parameter_table(interval)
    names = list(fit.law.natural)
    levels = ["population"] + list(fit.families)
    law_tab = tab[tab["level"].isin(levels)].copy()
    law_tab["value"] = [_interval_text(q) for q in law_tab[["median", "lower", "upper"]].to_numpy()]
    wide = law_tab.pivot(index="level", columns="parameter", values="value").reindex(levels)[names].reset_index()
    wide.columns.name = None
    return Section("Parameters", [
        Figure(figures.parameter_forest(tab, names, levels, interval,
                                        log_scale=[p.name for p in fit.law.parameters if p.anchor]), "parameter_forest",
               "Population distribution of a new family (black, with its spread across families) and each "
               "family's posterior. A family far from the population is one the others would mispredict."),
        Table(wide, caption=f"Natural-unit parameters: median [{interval:.0%} interval].")])


NOISE_MEANING = {
    "sigma_seed": "seed noise: sd of a run's log-loss deviation, shared by all its checkpoints",
    "sigma_obs": "checkpoint noise: sd of one evaluation around its run's curve",
    "ou_length": "correlation length of the checkpoint drift along a run (decades of tokens; OU noise only)",
    "ou_share": "share of the checkpoint variance that drifts along the run (OU noise only)",
    "nu": "degrees of freedom of the robust (Student-t) noise; small = heavy tails",
    "tau_level": "family-to-family spread of a common loss-level factor",
    "kappa": "extrapolation discrepancy: sd of the log reducible loss per decade beyond the data",
    "drift": "extrapolation drift: mean bias of the log reducible loss per decade beyond the data",
    "discrepancy_growth": "how the discrepancy grows with distance (1: linearly)",
    "discrepancy_shared": "share of the discrepancy common to every family of the fit",
    "discrepancy_tails": "gamma shape of the discrepancy's tails (variance-gamma; small: heavier than normal)",
}
#: the unit of a target's distance in each direction
DIRECTION_UNIT = {"flops": "compute", "params": "params", "ratio": "tokens/param", "epochs": "epochs"}


def noise_section(fit: Any, interval: float) -> Section:
    post = fit.idata.posterior
    rows, draws = [], {}
    for name, meaning in NOISE_MEANING.items():
        if name not in post:
            continue
        if name in ("kappa", "drift", "discrepancy_growth", "discrepancy_shared", "discrepancy_tails") and \
                fit.extrapolation.get("mode") != "learn":
            continue
        if "direction" in post[name].dims:
            # a direction the data cannot leave (epochs, for data seen once) holds zeros: not a scale to show
            parts = [(f"{name}[{d}]", post[name].sel(direction=d).to_numpy(), f"{meaning}: {DIRECTION_MEANING[d]}")
                     for d in post[name]["direction"].to_numpy()
                     if d in BASE_DIRECTIONS or np.any(post[name].sel(direction=d).to_numpy())]
        else:
            parts = [(name, post[name].to_numpy(), meaning)]
        for label, v, what in parts:
            q = _quantiles(v, interval)
            row = {"scale": label, "median": q[0], "lower": q[1], "upper": q[2], "meaning": what}
            if name in ("sigma_seed", "sigma_obs"):
                row["as % of loss (1 sd)"] = f"±{100 * np.expm1(q[0]):.2g}%"
                draws[name] = v
            rows.append(row)
    table = pd.DataFrame(rows).fillna("")
    s = Section("Noise: seeds and checkpoints", [Table(table, caption=f"Medians and {interval:.0%} intervals.")])
    if draws:
        s.blocks.append(Figure(figures.noise_posteriors(draws, interval), "noise_posteriors",
                               "Posterior of the seed and checkpoint noise scales (log-loss sd)."))
    return s


def predictive_check_section(fit: Any, interval: float, random_seed: int = 0) -> Section:
    df = fit.data.frame
    note = ""
    if len(df) > PPC_MAX_ROWS:
        df = df.iloc[np.linspace(0, len(df) - 1, PPC_MAX_ROWS).astype(int)]
        note = f" Shown on {PPC_MAX_ROWS} of {len(fit.data)} observations, evenly spaced."
    p = fit.predict(df["family"].to_numpy(), df["params"].to_numpy(), df["tokens"].to_numpy(),
                    df["flops"].to_numpy(), inputs={c: df[c].to_numpy() for c in fit.law.further_inputs},
                    interval=interval, keep_draws=True, random_seed=random_seed)
    draws = p["run_loss"].to_numpy()
    y = df["loss"].to_numpy()
    pit = (draws <= y[None, :]).mean(axis=0)
    inner = (1 - 0.5) / 2
    table = pd.DataFrame({"family": df["family"].to_numpy(), "loss": y, "median": p["run_median"].to_numpy(),
                          "lower": p["run_lower"].to_numpy(), "upper": p["run_upper"].to_numpy(), "pit": pit})
    table["in_interval"] = (y >= table["lower"]) & (y <= table["upper"])
    table["in_50"] = (pit >= inner) & (pit <= 1 - inner)
    cov = table.groupby("family", sort=False).agg(observations=("loss", "size"),
                                                  **{"inside 50%": ("in_50", "mean"),
                                                     f"inside {interval:.0%}": ("in_interval", "mean")})
    cov = cov.reset_index()
    for c in ("inside 50%", f"inside {interval:.0%}"):
        cov[c] = (100 * cov[c]).map(lambda v: f"{v:.0f}%")
    return Section("Posterior predictive check", [
        Figure(figures.predictive_check(table, pit, interval), "predictive_check",
               "Each observation against the predictive of a new run at its configuration (seed and checkpoint "
               "noise included). A calibrated fit puts the dots near the diagonal, about "
               f"{interval:.0%} of them inside their interval, and a flat PIT histogram; a U shape means "
               "intervals too narrow, a hump too wide. Checkpoints of one run share its seed effect, so they "
               "are not independent checks." + note),
        Table(cov, caption="Share of observations inside the one-run predictive intervals.")])


def target_table(fit: Any, targets: list[dict], interval: float) -> pd.DataFrame:
    """Numeric predictions at each requested target (one row per target)."""
    rows = []
    for t in targets:
        p = fit.predict(t["family"], t["params"], t["tokens"], interval=interval,
                        inputs={c: t[c] for c in fit.law.further_inputs if c in t},
                        new_family=bool(t.get("new_family", False)))
        r = {k: float(p[k].values[0]) for k in ("expected_median", "expected_lower", "expected_upper",
                                                   "run_median", "run_lower", "run_upper")}
        c = float(p["flops"].values[0])
        dist = distances(fit.spec.extents, [t["family"]], distance_columns(p))[0]
        r.update(family=t["family"], params=float(t["params"]), tokens=float(t["tokens"]), flops=c,
                 new_family=bool(p["new_family"].values[0]),
                 **{f"beyond_{d}": float(v) for d, v in zip(DIRECTIONS, dist)},
                 label=f"{t['family']} {human(t['params'])} / {human(t['tokens'])}")
        rows.append(r)
    return pd.DataFrame(rows)


def _beyond_text(row: pd.Series) -> str:
    """How far a target lies from its family's data, in the directions it leaves them (decades)."""
    parts = [f"{row[f'beyond_{d}']:+.2f} {DIRECTION_UNIT[d]}" for d in DIRECTIONS if row[f"beyond_{d}"] != 0]
    return "; ".join(parts) if parts else "inside"


def tested_reach(fit: Any) -> dict[str, float] | None:
    """How far, per direction, the hold-outs that calibrated the discrepancy predicted beyond their data
    (decades); None when the discrepancy was not learned from this data's hold-outs."""
    ex = fit.extrapolation
    if ex.get("mode") != "learn" or not ex.get("calibrated", False):
        return None
    reach = dict.fromkeys(DIRECTIONS, 0.0)
    for split in ex.get("splits", []):
        for d, v in split.get("max_distance", {}).items():
            reach[d] = max(reach.get(d, 0.0), float(v))
    return reach


#: a target this little beyond the hold-outs' reach (decades) still counts as tested
REACH_TOLERANCE = 0.1


def trust_text(fit: Any, row: pd.Series, reach: dict[str, float] | None) -> str:
    """Whether to trust one target's interval, and why not, in a few words."""
    ex = fit.extrapolation
    if not fit.diagnostics.ok:
        return "no: sampling failed its checks (see Diagnostics)"
    pdc = ex.get("prior_data_conflict")
    if pdc and pdc["p_value"] < CONFLICT_P_VALUE:
        return "doubtful: the borrowed prior conflicts with this family's data"
    if ex.get("mode") == "none":
        return "partly: no discrepancy term, so the interval leaves out the law's error beyond the data"
    if ex.get("mode") == "fixed":
        return "partly: the discrepancy scale was fixed by hand, not calibrated"
    if ex.get("mode") == "borrowed":
        return "as far as the source families: the discrepancy is borrowed from them"
    if reach is None:
        return "partly: the discrepancy could not be calibrated on this data (priors only)"
    beyond = [f"{DIRECTION_UNIT[d]}, {abs(row[f'beyond_{d}']):.1f} decades (hold-outs reached {reach[d]:.1f})"
              for d in DIRECTIONS if abs(row[f"beyond_{d}"]) > reach[d] + REACH_TOLERANCE]
    if beyond:
        return "untested: beyond what the hold-outs checked in " + "; ".join(beyond)
    if row["new_family"]:
        return "yes, as a new family: its parameters come from the spread of the fitted families"
    return "yes: within the range the hold-outs checked"


def targets_section(fit: Any, targets: list[dict] | None, interval: float) -> Section:
    s = Section("Answer: the targets")
    if not targets:
        s.blocks.append(Text("No targets requested. Ask for some with --target family=NAME,params=N,tokens=D "
                             "(add new_family=yes to predict a family the fit has not seen)."))
        return s
    tt = target_table(fit, targets, interval)
    shown = pd.DataFrame({
        "family": tt["family"] + np.where(tt["new_family"], " (new)", ""),
        "params": tt["params"].map(human), "tokens": tt["tokens"].map(human),
        "compute (FLOPs)": tt["flops"].map(sci),
        "beyond the data (decades)": tt.apply(_beyond_text, axis=1),
        "expected loss": [_interval_text(q) for q in tt[["expected_median", "expected_lower", "expected_upper"]]
                          .to_numpy()],
        "one-run loss": [_interval_text(q) for q in tt[["run_median", "run_lower", "run_upper"]].to_numpy()]})
    reach = tested_reach(fit)
    shown["trust"] = [trust_text(fit, row, reach) for _, row in tt.iterrows()]
    s.blocks += [Table(shown, caption=f"Median [{interval:.0%} interval]. Expected loss: the configuration's "
                       "loss without seed noise; one-run loss: what the one run you train will show. Beyond the "
                       "data, both carry the learned extrapolation discrepancy. Trust: whether the sampler "
                       "passed its checks and the target lies within the distances the hold-outs tested "
                       "(a prediction beyond them rests on the law's form alone)."),
                 Figure(figures.targets_plot(tt), "targets", "Predicted loss at the targets (dots: medians).")]
    return s


def frontier_budgets(fit: Any, n: int = 25) -> np.ndarray:
    """Default budgets: from the smallest fitted compute to 1000x the largest."""
    c = fit.data.frame["flops"]
    return np.geomspace(c.min(), c.max() * 1e3, n)


def frontier_section(fit: Any, interval: float, budgets: Any | None = None, random_seed: int = 0) -> Section:
    from ..decisions import compute_optimal
    from ..decisions.compute_optimal import require_tokens_law

    s = Section("Compute-optimal frontier")
    try:
        require_tokens_law(fit, "the compute-optimal frontier")
    except UnsupportedLawError as err:
        s.blocks.append(Text(f"Not available: {err}"))
        return s
    budgets = frontier_budgets(fit) if budgets is None else np.sort(np.asarray(budgets, dtype=float))
    fams = list(fit.families[:6])
    new = "new family" if "new family" not in fit.families else "(a new family)"
    if len(fit.families) > 1:
        fams.append(new)
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    rows, marks, skipped = [], [], []
    for fam in fams:
        try:
            opt = compute_optimal(fit, budgets, family=fam, new_family=fam == new, random_seed=random_seed)
        except ValueError as err:  # some draws' optimum outside the searched sizes: say so, show the rest
            skipped.append(f"{fam}: not shown, {err}")
            continue
        for q in ("params", "tokens", "expected_loss", "tokens_per_param"):
            v = opt[q].to_numpy()
            qs = np.quantile(v, [0.5, lo, hi], axis=1)
            rows.append(pd.DataFrame({"family": fam, "budget": budgets, "quantity": q, "median": qs[0],
                                      "lower": qs[1], "upper": qs[2]}))
    if skipped:
        s.blocks.append(Items(tuple(skipped), "warn"))
    if not rows:
        return s
    table = pd.concat(rows, ignore_index=True)
    fams = list(table["family"].unique())
    shown_budgets = budgets[np.linspace(0, len(budgets) - 1, min(5, len(budgets))).astype(int)]
    for fam in fams:
        for c in shown_budgets:
            g = table[(table["family"] == fam) & (table["budget"] == c)].set_index("quantity")
            marks.append({"family": fam, "budget (FLOPs)": sci(c),
                          "N*": f"{human(g.loc['params', 'median'])} [{human(g.loc['params', 'lower'])}, "
                                f"{human(g.loc['params', 'upper'])}]",
                          "D*": f"{human(g.loc['tokens', 'median'])} [{human(g.loc['tokens', 'lower'])}, "
                                f"{human(g.loc['tokens', 'upper'])}]",
                          "tokens per param": _interval_text(g.loc["tokens_per_param", ["median", "lower", "upper"]]
                                                             .to_numpy()),
                          "expected loss": _interval_text(g.loc["expected_loss", ["median", "lower", "upper"]]
                                                          .to_numpy())})
    s.blocks += [Figure(figures.frontier(table, interval), "frontier",
                        "Per posterior draw, the (N, D) minimising the law's loss at budget C = 6 N D; medians and "
                        f"{interval:.0%} intervals. 'new family' draws its parameters from the population."),
                 Table(pd.DataFrame(marks), caption=f"Median [{interval:.0%} interval] at a few budgets.")]
    return s
