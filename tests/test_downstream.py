"""Downstream accuracy: the task-data checks, the link, and end-to-end fits on synthetic truth."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.data.synthetic import simulate_tasks
from bayes_scaling.errors import DataValidationError, FitFileError, MissingColumnError, UnknownFamilyError
from bayes_scaling.laws.accuracy import accuracy, latent_difficulty

#: one task that rises across the fitted range, one that stays at chance there (its rise lies far beyond)
TRUTH = {"rises": dict(E=0.5, A=30.0, alpha=0.3, B=60.0, beta=0.3, chance=0.25, upper=0.95, slope=6.0,
                       midpoint=0.75),
         "flat": dict(E=0.6, A=30.0, alpha=0.3, B=60.0, beta=0.3, chance=0.5, upper=0.95, slope=8.0, midpoint=0.0)}
COLUMNS = dict(family="family", run="run", params="params", tokens="tokens", task="task", accuracy="accuracy",
               chance="chance")
TARGET = (1.2e9, 1.2e9 * 60)
FAST = dict(draws=300, tune=400, chains=2, random_seed=1)


def true_accuracy(task: str, n: float, d: float) -> float:
    t = TRUTH[task]
    loss = t["E"] + t["A"] * n ** -t["alpha"] + t["B"] * d ** -t["beta"]
    return float(accuracy(loss, t["chance"], t["upper"], t["slope"], t["midpoint"], np))


@pytest.fixture(scope="module")
def tasks_frame() -> pd.DataFrame:
    return simulate_tasks(TRUTH, np.random.default_rng(0))


@pytest.fixture(scope="module")
def two_step(tasks_frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit_downstream(tasks_frame, **COLUMNS, task_loss="task_loss", model={"extrapolation": None},
                                 sampler=FAST)


# ---------------------------------------------------------------------------------------------- the link
def test_link_is_bounded_by_chance_and_upper():
    x = np.array([-50.0, 0.7, 50.0])
    acc = accuracy(x, 0.25, 0.9, 5.0, 0.7, np)
    assert acc[0] == pytest.approx(0.9) and acc[2] == pytest.approx(0.25) and acc[1] == pytest.approx(0.575)
    assert np.all(np.diff(accuracy(np.linspace(0, 3, 50), 0.25, 0.9, 5.0, 0.7, np)) < 0)


def test_latent_difficulty_is_the_log_reducible_law():
    n, d = np.log(1e8 / 1e7), np.log(1e10 / 1e9)
    assert latent_difficulty(n, d, 0.3, 0.2, 0.5, np) == pytest.approx(np.log(np.exp(-0.3 * n) + np.exp(0.5 - 0.2 * d)))


# ---------------------------------------------------------------------------------------------- the data checks
def test_task_data_names_a_missing_column(tasks_frame):
    with pytest.raises(MissingColumnError, match="accuracy='acc'"):
        bs.data.TaskData.from_frame(tasks_frame, **{**COLUMNS, "accuracy": "acc"})


def test_percentages_are_refused_with_the_fix(tasks_frame):
    df = tasks_frame.assign(accuracy=tasks_frame["accuracy"] * 100)
    with pytest.raises(DataValidationError, match="divided by 100"):
        bs.data.TaskData.from_frame(df, **COLUMNS)


def test_chance_must_be_one_value_per_task(tasks_frame):
    df = tasks_frame.copy()
    df.loc[0, "chance"] = 0.2
    with pytest.raises(DataValidationError, match="differs within task"):
        bs.data.TaskData.from_frame(df, **COLUMNS)


def test_a_task_evaluated_twice_per_checkpoint_is_refused(tasks_frame):
    df = pd.concat([tasks_frame, tasks_frame.head(1)])
    with pytest.raises(bs.errors.DuplicateRowError, match="split tasks"):
        bs.data.TaskData.from_frame(df, **COLUMNS)


def test_a_blank_task_loss_is_named(tasks_frame):
    df = tasks_frame.copy()
    df.loc[3, "task_loss"] = np.nan
    with pytest.raises(DataValidationError, match="'task_loss'.*blank, NaN"):
        bs.data.TaskData.from_frame(df, **COLUMNS, task_loss="task_loss")


def test_law_rows_keep_each_runs_tail_and_link_rows_drop_warm_up(tasks_frame):
    data = bs.data.TaskData.from_frame(tasks_frame, **COLUMNS)
    tail = data.law_rows(0.1)
    final = data.frame.groupby(["run", "task"])["tokens"].max()
    assert (tail.groupby(["run", "task"])["tokens"].min() >= 0.9 * final).all()
    # the checkpoints sit at 50%, 60%, ..., 100% of each run: burn=0.55 drops the first of each run and task
    assert len(data.link_rows(0.0)) == len(data.frame) and len(data.link_rows(0.55)) == len(data.frame) * 5 // 6


def test_link_rows_thin_each_run_and_task_keeping_its_ends(tasks_frame):
    data = bs.data.TaskData.from_frame(tasks_frame, **COLUMNS)
    rows = data.link_rows(0.0, 3).groupby(["run", "task"])["tokens"]
    full = data.frame.groupby(["run", "task"])["tokens"]
    assert (rows.size() == 3).all() and (full.size() > 3).all()
    assert (rows.min() == full.min()).all() and (rows.max() == full.max()).all()


def test_link_checkpoints_is_checked_before_sampling(tasks_frame, tmp_path, capsys):
    with pytest.raises(ValueError, match="link_checkpoints must be an integer >= 2"):
        bs.fit_downstream(tasks_frame, **COLUMNS, link_checkpoints=1)
    csv = tmp_path / "tasks.csv"
    tasks_frame.to_csv(csv, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["downstream", "fit", str(csv), "--run", "run", "--params", "params", "--tokens", "tokens", "--task",
              "task", "--accuracy", "accuracy", "--chance", "chance", "--link-checkpoints", "1",
              "--out", str(tmp_path / "f.nc"), "-q"])
    assert exc.value.code == 2 and "--link-checkpoints: '1' must be at least 2" in capsys.readouterr().err


def test_split_residuals_average_each_held_out_run_beyond_the_inner_data():
    from bayes_scaling.inference.link_extrapolation import split_residuals

    held = pd.DataFrame({"run": ["a"] * 3, "task": ["t"] * 3, "accuracy": [0.5, 0.6, 0.7]})
    x = np.array([1.0, -1.0, -3.0])  # the first inside the inner data (lowest input 0), two beyond

    def curve(task, rows):  # every draw says 0.55 at each row, slope 0.2 in the logit
        return np.full((100, len(rows)), 0.55), np.full(len(rows), 0.2)

    r = split_residuals(curve, held, x, {"t": 0.0}, {"t": 2.0}, {"t": 0.03}, {}).iloc[0]
    assert r["n"] == 2 and r["distance"] == pytest.approx(1.0) and r["residual"] == pytest.approx(0.1)
    assert r["param_sd"] == pytest.approx(0, abs=1e-12) and r["noise"] == 0.03 and r["run_sd"] == 0
    assert r["grad"] == pytest.approx(0.2)


def test_a_ceiling_fitted_from_accuracies_alone_does_not_cap_the_error_beyond_the_data():
    from bayes_scaling.inference.link_extrapolation import with_discrepancy

    floor, upper, logit, chance = np.array([[0.3]]), np.array([[0.7]]), np.array([[3.0]]), 0.25
    plain = float(accuracy(-3.0, 0.3, 0.7, 1.0, 0.0, np))
    for kind in ("task_loss", "latent", "compute"):
        assert with_discrepancy(floor, upper, logit, np.zeros((1, 1)), chance, kind).item() == pytest.approx(plain)
    assert with_discrepancy(floor, upper, logit, np.array([[3.0]]), chance, "task_loss").item() < 0.7
    assert with_discrepancy(floor, upper, logit, np.array([[3.0]]), chance, "latent").item() > 0.75
    assert chance <= with_discrepancy(floor, upper, logit, np.array([[-40.0]]), chance, "compute").item() < 0.26


# ---------------------------------------------------------------------------------------------- end to end
def test_two_step_forecast_covers_the_truth_and_holds_a_flat_task_at_chance(two_step):
    assert two_step.kind == "task_loss" and two_step.at_chance == ["flat"]
    n, d = TARGET
    p = two_step.predict("synthetic", "rises", n, d, interval=0.9)
    truth = true_accuracy("rises", n, d)
    assert float(p["lower"][0]) <= truth <= float(p["upper"][0])
    assert float(p["task_loss_lower"][0]) < float(p["task_loss_median"][0]) < float(p["task_loss_upper"][0])
    # the one-run interval holds the expected one (seed and evaluation noise on top)
    assert float(p["upper"][0]) - float(p["lower"][0]) >= float(p["expected_upper"][0]) - float(p["expected_lower"][0])
    flat = two_step.predict("synthetic", "flat", 1e12, 1e14)  # far beyond, where the true curve would rise
    assert float(flat["expected_median"][0]) == pytest.approx(0.5, abs=0.02) and flat.attrs["at_chance"] == 1
    assert any("'flat' shows no rise above chance" in n for n in two_step.notes())


def test_step_two_alone_reads_the_link_at_a_given_task_loss(two_step):
    t = TRUTH["rises"]
    x = np.array([0.7, 0.8])
    p = two_step.accuracy_at("rises", x)
    truth = accuracy(x, t["chance"], t["upper"], t["slope"], t["midpoint"], np)
    assert np.all((p["lower"] <= truth) & (truth <= p["upper"])) and float(p["median"][0]) > float(p["median"][1])


def test_unknown_names_are_refused_with_the_way_out(two_step):
    with pytest.raises(UnknownFamilyError, match="closest"):
        two_step.predict("synthetic", "rise", 1e9, 1e10)
    with pytest.raises(UnknownFamilyError, match="new_family=True"):
        two_step.predict("other", "rises", 1e9, 1e10)
    p = two_step.predict("other", "rises", 1e9, 2e10, new_family=True)
    assert p.attrs["new_family"] == 1 and 0.25 <= float(p["median"][0]) <= 1


def test_save_and_load_give_the_same_forecast(two_step, tmp_path):
    path = two_step.save(tmp_path / "tasks.nc")
    back = bs.open(path)
    a = two_step.predict("synthetic", "rises", *TARGET)
    b = back.predict("synthetic", "rises", *TARGET)
    assert float(a["median"][0]) == pytest.approx(float(b["median"][0]))
    assert back.at_chance == ["flat"]
    with pytest.raises(FitFileError, match="not a downstream fit"):
        bs.open(_loss_fit_file(tmp_path), "downstream fit")


def _loss_fit_file(tmp_path):
    import arviz as az
    import xarray as xr

    path = tmp_path / "loss.nc"  # a posterior with the mark of a loss fit
    post = xr.Dataset({"x": (("chain", "draw"), np.zeros((1, 2)))}, attrs={"bayes_scaling_spec": "{}"})
    az.InferenceData(posterior=post).to_netcdf(str(path))
    return path


def test_cli_predict_prints_the_documented_json(two_step, tmp_path, capsys):
    path = two_step.save(tmp_path / "tasks.nc")
    n, d = TARGET
    assert main(["downstream", "predict", str(path), "--family", "synthetic", "--task", "rises", "--params", str(n),
                 "--tokens", str(d), "--interval", "0.9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"task", "family", "params", "tokens", "median", "lower", "upper", "interval"} <= set(out)
    assert out["lower"] <= out["median"] <= out["upper"] and out["interval"] == 0.9


def test_cli_report_writes_the_targets_and_curves(two_step, tmp_path):
    path = two_step.save(tmp_path / "tasks.nc")
    assert main(["downstream", "report", str(path), "--target", f"family=synthetic,params={TARGET[0]},tokens={TARGET[1]}",
                 "--out", str(tmp_path / "rep"), "-q"]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Answer: the targets" in html and "held at chance" in html and "data:image/png" in html


def test_cli_names_a_wrong_column_in_flag_words(tasks_frame, tmp_path, capsys):
    csv = tmp_path / "tasks.csv"
    tasks_frame.to_csv(csv, index=False)
    code = main(["downstream", "fit", str(csv), "--run", "run", "--params", "params", "--tokens", "tokens", "--task",
                 "task", "--accuracy", "acc", "--chance", "chance", "--out", str(tmp_path / "f.nc"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "accuracy='acc'" in err and "--accuracy" in err


@pytest.mark.slow
def test_cli_fit_then_predict(tasks_frame, tmp_path, capsys):
    csv = tmp_path / "tasks.csv"
    tasks_frame.to_csv(csv, index=False)
    out = tmp_path / "tasks.nc"
    assert main(["downstream", "fit", str(csv), "--family", "family", "--run", "run", "--params", "params",
                 "--tokens", "tokens", "--task", "task", "--accuracy", "accuracy", "--chance", "chance",
                 "--task-loss", "task_loss", "--no-extrapolation", "--draws", "300", "--tune", "400", "--chains", "2",
                 "--out", str(out), "-q"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["downstream", "predict", str(out), "--family", "synthetic", "--task", "flat",
                 "--params", "1e9", "--tokens", "2e10", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["at_chance"] and res["median"] == pytest.approx(0.5, abs=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("method, task_loss", [("two_step", None), ("direct", "task_loss")])
def test_latent_and_direct_links_forecast_the_rise(tasks_frame, method, task_loss):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = bs.fit_downstream(tasks_frame, **COLUMNS, task_loss=task_loss, method=method, sampler=FAST)
    assert f.kind == ("latent" if task_loss is None else "compute")
    n, d = TARGET
    p = f.predict("synthetic", "rises", n, d)
    truth = true_accuracy("rises", n, d)
    assert float(p["lower"][0]) <= truth <= float(p["upper"][0])
    assert "flat" in f.at_chance
    # the link's error beyond the fitted compute is learned by leave-out and widens the forecast there
    assert f.spec["link_extrapolation"]["calibrated"] and f.spec["link_extrapolation"]["splits"]
    f.idata.posterior["link_kappa"] = f.idata.posterior["link_kappa"] * 0
    q = f.predict("synthetic", "rises", n, d)
    assert float(p["expected_upper"][0] - p["expected_lower"][0]) > float(q["expected_upper"][0] - q["expected_lower"][0])
