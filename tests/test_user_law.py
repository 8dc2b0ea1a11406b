"""Laws written by a user go through the whole machinery: fit, predict, report, save and load, decisions."""

import json
import numpy as np
import pandas as pd
import pytest
from conftest import FAST, KAPLAN

import bayes_scaling as bs
from bayes_scaling.laws import CHINCHILLA, DATA_CONSTRAINED, Law

def _data(df: pd.DataFrame, **kw) -> bs.ScalingData:
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run", **kw)


@pytest.mark.slow
def test_chinchilla_through_the_interface_gives_the_built_in_posterior(synthetic_truth):
    _, df = synthetic_truth
    data = _data(df)
    mine = Law("chinchilla_by_hand", "E + A / params**alpha + B / tokens**beta", CHINCHILLA.parameters)
    built_in = bs.fit(data, dict(extrapolation=None), sampler=FAST)
    by_hand = bs.fit(data, dict(law=mine, extrapolation=None), sampler=FAST)
    np.testing.assert_allclose(by_hand.idata.posterior["theta"], built_in.idata.posterior["theta"], rtol=1e-9)
    assert by_hand.spec.law_definition["formula"] == mine.formula


@pytest.mark.slow
def test_a_kaplan_law_fits_predicts_reports_and_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    truth = {"N_c": 8.8e13, "alpha_N": 0.076, "D_c": 5.4e13, "alpha_D": 0.095}
    rows = []
    for fam, shift in (("a", 1.0), ("b", 1.03)):
        for n in (3e7, 1e8, 3e8, 1e9):
            d = np.geomspace(2e9, 2e10, 6)
            loss = shift * KAPLAN.natural_loss(truth, {"params": n, "tokens": d})
            loss = loss * np.exp(0.004 * rng.standard_normal() + 0.002 * rng.standard_normal(len(d)))
            rows += [{"family": fam, "run": f"{fam}/{n:g}", "params": n, "tokens": t, "loss": y} for t, y in zip(d, loss)]
    data = _data(pd.DataFrame(rows))
    fit = bs.fit(data, KAPLAN, dict(FAST, target_accept=0.95))  # with the discrepancy's nested leave-out
    assert fit.extrapolation["calibrated"] and len(fit.extrapolation["splits"]) >= 2
    tab = fit.parameter_table().query("level == 'population'").set_index("parameter")
    assert list(tab.index) == ["N_c", "alpha_N", "D_c", "alpha_D"]
    pred = fit.predict("a", 3e9, 6e10)
    want = KAPLAN.natural_loss(truth, {"params": 3e9, "tokens": 6e10})
    assert abs(float(pred["expected_median"][0]) / want - 1) < 0.03
    assert float(pred["run_lower"][0]) < want < float(pred["run_upper"][0])
    path = fit.save(tmp_path / "kaplan.nc")
    again = bs.open(path)  # the law is rebuilt from the file: no registration
    assert again.law == KAPLAN
    np.testing.assert_allclose(again.predict("a", 3e9, 6e10)["expected_median"], pred["expected_median"])
    opt = bs.decisions.compute_optimal(fit, 1e21, family="a")  # a numeric optimum for any law of N and D
    assert np.all(opt["params"] > 0) and np.all(opt["tokens"] > 0)
    prior_path = bs.PopulationPrior.from_fit(fit).save(tmp_path / "kaplan_prior.nc")  # borrowed by a new family
    one = data.frame[(data.frame["family"] == "b") & (data.frame["params"] == 1e8)].assign(family="new")
    borrowed = bs.fit(one, borrow=prior_path, sampler=FAST)  # the prior's law, rebuilt from its file
    assert borrowed.law == KAPLAN and borrowed.spec.borrowed is not None
    assert np.isfinite(borrowed.predict("new", 1e9, 2e10)["expected_median"]).all()
    bs.write_report(fit, tmp_path / "report", formats=("md",))
    text = (tmp_path / "report" / "report.md").read_text()
    assert KAPLAN.formula in text and "alpha_N" in text


@pytest.mark.slow
def test_a_data_constrained_fit_from_the_command_line_needs_unique_tokens_to_predict(tmp_path, capsys):
    from bayes_scaling.cli import main

    rng = np.random.default_rng(7)
    nat = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37, "R_D": 10.0, "R_N": 5.0}
    rows = []
    for n in (1e8, 3e8):
        for epochs in (1, 2, 4, 8):
            d = np.geomspace(4e9, 8e9, 4)
            u = np.minimum(d, 8e9 / epochs)
            loss = DATA_CONSTRAINED.natural_loss(nat, {"params": n, "tokens": d, "unique_tokens": u})
            loss = loss * np.exp(0.003 * rng.standard_normal(len(d)))
            rows += [{"family": "f", "run": f"{n:g}/{epochs}", "params": n, "tokens": t, "unique": v, "loss": y}
                     for t, v, y in zip(d, u, loss)]
    csv = tmp_path / "repeats.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "dc.nc"
    args = ["fit", str(csv), "--family", "family", "--params", "params", "--tokens", "tokens", "--loss", "loss",
            "--run", "run", "--law", "data_constrained", "--draws", "300", "--tune", "300", "--chains", "2",
            "--no-extrapolation", "--out", str(out)]
    assert main(args) == 2
    assert "--unique-tokens" in capsys.readouterr().err  # the law reads a column the flags did not name
    assert main(args + ["--unique-tokens", "unique"]) == 0
    capsys.readouterr()
    ask = ["predict", str(out), "--family", "f", "--params", "3e8", "--tokens", "8e9", "--json"]
    assert main(ask) == 2 and "--unique-tokens" in capsys.readouterr().err
    medians = []
    for u in ("1e9", "8e9"):
        assert main(ask + ["--unique-tokens", u]) == 0
        medians.append(json.loads(capsys.readouterr().out)["expected_median"])
    assert medians[0] > medians[1]  # repeated tokens are worth less
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0  # curves drawn run by run
    fit = bs.open(out)
    with pytest.raises(bs.errors.UnsupportedLawError, match="unique_tokens"):
        bs.decisions.compute_optimal(fit, 1e21)
