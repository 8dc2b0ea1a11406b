"""The backtest: nested hold-outs scored for ours and the point fits, in Python and on the command line."""

import json

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.evaluate import variable_projection_fit
from bayes_scaling.evaluate.backtest import BacktestSettings, backtest_markdown

#: every test here fits several times over (a backtest is a fit per split)
pytestmark = pytest.mark.slow


def test_variable_projection_recovers_a_noiseless_law():
    n = np.repeat([5e7, 1e8, 2e8, 4e8, 8e8], 6)
    d = n * np.tile(np.geomspace(2, 40, 6), 5)
    truth = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}
    loss = bs.laws.CHINCHILLA.natural_loss(truth, {"params": n, "tokens": d})
    got = variable_projection_fit(n, d, loss)
    assert got["alpha"] == pytest.approx(0.35, abs=0.01) and got["beta"] == pytest.approx(0.37, abs=0.01)
    assert got["E"] == pytest.approx(1.8, rel=0.02)


def test_settings_refuse_unknown_directions_and_depths():
    with pytest.raises(ValueError, match="directions"):
        BacktestSettings(directions=("size",))
    with pytest.raises(ValueError, match="depths"):
        BacktestSettings(depths=(0,))
    stored = BacktestSettings(compare_pooling=True, model={"discrepancy_pooling": "directions"}).to_dict()
    back = BacktestSettings.from_dict(json.loads(json.dumps(stored)))
    assert back.compare_pooling and back.model.discrepancy_pooling == "directions" and not back.compare_tails


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    rng = np.random.default_rng(2)
    fams = simulate_family_parameters(3, rng)
    df = simulate_runs(fams, rng, sizes=(3e7, 1e8, 3e8), checkpoints=3, sigma_seed=0.004, sigma_obs=0.002)
    path = tmp_path_factory.mktemp("backtest") / "zoo.csv"
    df.to_csv(path, index=False)
    return df, path


def test_backtest_scores_ours_beside_the_point_fits(zoo, tmp_path):
    df, _ = zoo
    r = bs.backtest(df, directions=["params"], depths=[1], model={"extrapolation": 0.05},
                    sampler={"draws": 200, "tune": 200, "chains": 2})
    assert r.methods == ["bayes", "huber", "fixed_n_term", "varpro"]
    assert set(r.tasks["family"]) == set(df["family"])  # every family held out its largest size
    s = r.summary()
    assert list(s["method"]) == r.methods and (s["direction"] == "params").all()
    assert np.all((r.points["pit"] >= 0) & (r.points["pit"] <= 1))
    largest = df.groupby("family")["params"].max()
    assert (r.points["run"].map(df.drop_duplicates("run").set_index("run")["params"])
            == r.points["family"].map(largest)).all()
    assert (s["max_distance"] > 0.4).all()  # the largest size is half a decade beyond the rest
    ours = s.set_index("method").loc["bayes"]
    assert ours["width90"] > 0 and 0 <= ours["cover90"] <= 1
    table = backtest_markdown(r)
    assert "| params | bayes |" in table and "varpro" in table
    back = json.loads(r.to_json())
    assert back["settings"]["directions"] == ["params"] and len(back["tasks"]) == len(r.tasks)
    html = r.write_report(tmp_path / "rep").read_text()
    assert "Backtest" in html and "data:image/png;base64" in html


def test_backtest_command_line(zoo, tmp_path, capsys):
    _, path = zoo
    base = ["backtest", str(path), "--family", "family", "--params", "params", "--tokens", "tokens", "--loss",
            "loss", "--run", "run"]
    assert main(base + ["--directions", "size"]) == 2
    assert "directions must be among" in capsys.readouterr().err
    assert main(base + ["--depths", "one"]) == 2
    assert "--depths" in capsys.readouterr().err
    code = main(base + ["--directions", "params", "--depths", "1", "--draws", "150", "--tune", "150", "--chains", "2",
                        "--no-extrapolation", "--json", "--out", str(tmp_path / "bt")])
    out = capsys.readouterr()
    assert code == 0, out.err
    got = json.loads(out.out)
    assert {r["method"] for r in got["summary"]} == {"bayes", "huber", "fixed_n_term", "varpro"}
    assert "[1/1] params, depth 1" in out.err and (tmp_path / "bt" / "report.html").exists()
    assert pd.DataFrame(got["tasks"])["are"].notna().all()


@pytest.mark.slow
def test_backtest_scores_the_same_fits_with_the_discrepancy_learned_again_pooled_and_on_the_whole_loss(zoo):
    """``compare_pooling`` and ``compare_scale``: each fit is scored three times, its own discrepancy (a scale per
    direction, of the reducible loss) and the same calibration fits' held-out runs learned again with the scale
    shared (``bayes_pooled``) and as a relative error of the whole loss (``bayes_loss_scale``)."""
    df, _ = zoo
    r = bs.backtest(df, directions=["params"], depths=[1], model={"holdout_depths": (1,)},
                    sampler={"draws": 200, "tune": 200, "chains": 2}, compare_pooling=True, compare_scale=True)
    assert r.methods[:3] == ["bayes", "bayes_pooled", "bayes_loss_scale"]
    assert BacktestSettings.from_dict(r.settings.to_dict()).compare_scale
    mine = r.points[r.points["method"] == "bayes"].reset_index(drop=True)
    for method in ("bayes_pooled", "bayes_loss_scale"):
        twin = r.points[r.points["method"] == method].reset_index(drop=True)
        assert mine["run"].tolist() == twin["run"].tolist()
        assert not np.allclose(mine["upper90"], twin["upper90"])  # another discrepancy, the same law's draws
        assert np.allclose(mine["median"], twin["median"], rtol=0.02)
