"""The experiment-grid runner: config validation, results store, cells, figures, and kill/resume on a LocalCluster."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.errors import GridConfigError, GridResultsMismatchError
from bayes_scaling.grid import SCORES, GridConfig, counts, load_results, run_cell, run_grid
from bayes_scaling.grid import store
from bayes_scaling.report.grid_figures import are_heatmaps, write_grid_figures

GRID_TOML = """
[dataset]
csv = "zoo.csv"
[axes]
heldout = ["fam0"]
k = [1, 2]
prior = ["none", "borrowed"]
[model]
extrapolation = "none"

[sampler]
draws = 80
tune = 80

[protocol]
max_checkpoints = 4
"""


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("grid")
    rng = np.random.default_rng(3)
    df = simulate_runs(simulate_family_parameters(3, rng), rng, sizes=(5e7, 1e8, 2e8), checkpoints=4)
    df.to_csv(d / "zoo.csv", index=False)
    (d / "grid.toml").write_text(GRID_TOML)
    return d


def test_config_reads_toml_and_yaml_alike(zoo_dir):
    yaml_text = ("dataset: {csv: zoo.csv}\naxes: {heldout: [fam0], k: [1, 2], prior: [none, borrowed]}\n"
                 "model: {extrapolation: none}\nsampler: {draws: 80, tune: 80}\nprotocol: {max_checkpoints: 4}\n")
    (zoo_dir / "grid.yaml").write_text(yaml_text)
    a, b = GridConfig.load(zoo_dir / "grid.toml"), GridConfig.load(zoo_dir / "grid.yaml")
    assert a.fingerprint() == b.fingerprint() and a.fit.model.extrapolation is None
    data = a.load_data()
    axes = a.resolved_axes(data)
    assert axes["fraction"] == (1.0,) and axes["min_tokens"] == (0.0,)
    assert len(a.cells(axes)) == 4
    changed = GridConfig.from_dict({**a.to_dict(), "sampler": {**a.to_dict()["sampler"], "draws": 81}}, base_dir=zoo_dir)
    assert changed.fingerprint() != a.fingerprint()


@pytest.mark.parametrize("raw, match", [
    ({"dataset": {"csv": "x.csv"}, "axes": {"kk": [1]}}, "unknown axis"),
    ({"dataset": {"csv": "x.csv"}, "axes": {"k": [0]}}, "integer >= 1"),
    ({"dataset": {"csv": "x.csv"}, "axes": {"k": [1.5]}}, "integer >= 1"),
    ({"dataset": {"csv": "x.csv"}, "axes": {"fraction": [1.2]}}, r"in \(0, 1\]"),
    ({"dataset": {"csv": "x.csv"}, "axes": {"prior": ["vague"]}}, "one of"),
    ({"dataset": {"csv": "x.csv"}, "axes": {"k": [1, 1]}}, "repeats"),
    ({"dataset": {"csv": "x.csv", "name": "kempner"}}, "exactly one of"),
    ({"dataset": {"name": "nope"}}, "unknown dataset name"),
    ({"dataset": {"csv": "x.csv"}, "sampler": {"draw": 10}}, r"unknown \[sampler\] key"),
    ({"dataset": {"csv": "x.csv"}, "sampler": {"chains": 0}}, r"\[sampler\] chains must be"),
    ({"dataset": {"csv": "x.csv"}, "model": {"likelihood": "cauchy"}}, r"\[model\] likelihood must be"),
    ({"dataset": {"csv": "x.csv"}, "protocol": {"last_fraction": 2}}, r"last_fraction must be in"),
    ({"dataset": {"csv": "x.csv"}, "fit": {"draws": 10}}, "unknown section"),
    ({"dataset": {"csv": "x.csv"}, "plots": {}}, "unknown section"),
])
def test_bad_configs_say_what_is_wrong(raw, match):
    with pytest.raises(GridConfigError, match=match):
        GridConfig.from_dict(raw)


def test_unknown_heldout_family_and_too_few_families(zoo_dir):
    cfg = GridConfig.from_dict({"dataset": {"csv": "zoo.csv"}, "axes": {"heldout": ["famX"]}}, base_dir=zoo_dir)
    with pytest.raises(GridConfigError, match="not in the data"):
        cfg.resolved_axes(cfg.load_data())
    two = GridConfig.from_dict({"dataset": {"csv": "zoo.csv", "families": ["fam0", "fam1"]}}, base_dir=zoo_dir)
    with pytest.raises(GridConfigError, match="at least 3 families"):
        two.resolved_axes(two.load_data())


def test_store_round_trip_and_mismatch(zoo_dir, tmp_path):
    cfg = GridConfig.load(zoo_dir / "grid.toml")
    axes = cfg.resolved_axes(cfg.load_data())
    ds = store.empty_results(cfg, axes)
    cell = cfg.cells(axes)[1]
    store.record(ds, cell, {"are": 0.03, "cover90": 1.0, "status": "ok"})
    store.save(ds, tmp_path / "r.nc")
    back = store.open_or_create(tmp_path / "r.nc", cfg, axes)
    assert store.is_done(back, cell) and not store.is_done(back, cfg.cells(axes)[0])
    assert float(back["are"].sel(cell)) == 0.03 and counts(back) == {"cells": 4, "pending": 3, "ok": 1,
                                                                     "not_applicable": 0, "failed": 0}
    other = GridConfig.from_dict({**cfg.to_dict(), "axes": {**cfg.to_dict()["axes"], "k": [1]}}, base_dir=zoo_dir)
    with pytest.raises(GridResultsMismatchError, match="different grid config"):
        store.open_or_create(tmp_path / "r.nc", other, axes)
    assert not list(tmp_path.glob(".*tmp")), "the atomic write leaves no temporary file"


def test_cells_that_cannot_run_are_recorded_with_the_reason(zoo_dir):
    cfg = GridConfig.load(zoo_dir / "grid.toml")
    data = cfg.load_data()
    na = run_cell(data, {"heldout": "fam0", "k": 3, "fraction": 1.0, "min_tokens": 0.0, "prior": "none"}, cfg.fit)
    assert na["status"].startswith("not applicable") and np.isnan(na["are"])
    failed = run_cell(data, {"heldout": "fam0", "k": 1, "fraction": 1.0, "min_tokens": 1e15, "prior": "none"},
                      cfg.fit)
    assert failed["status"].startswith("failed: EmptyFamilyError") and set(SCORES) <= set(failed)


def test_heatmaps_draw_finished_cells(zoo_dir, tmp_path):
    cfg = GridConfig.from_dict({"dataset": {"csv": "zoo.csv"},
                                "axes": {"heldout": ["fam0", "fam1"], "k": [1, 2], "fraction": [0.5, 1.0],
                                         "min_tokens": [0, 1e9], "prior": ["none", "borrowed"]}}, base_dir=zoo_dir)
    axes = cfg.resolved_axes(cfg.load_data())
    ds = store.empty_results(cfg, axes)
    rng = np.random.default_rng(0)
    for cell in cfg.cells(axes)[::2]:
        store.record(ds, cell, {"are": rng.uniform(0.01, 0.1), "cover90": rng.uniform(), "status": "ok"})
    png = are_heatmaps(ds)
    assert png[:4] == b"\x89PNG" and len(png) > 10_000
    assert [p.name for p in write_grid_figures(ds, tmp_path)] == ["are_heatmaps.png", "coverage90_heatmaps.png",
                                                                  "are_by_k.png"]


def _wait_for(pred, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_grid_killed_part_way_resumes_to_the_uninterrupted_results(zoo_dir, tmp_path):
    """A 2-worker LocalCluster run is killed (SIGKILL, whole process group) after its first finished cell;
    resuming runs only the rest and gives exactly the results of an uninterrupted run."""
    cfg = GridConfig.load(zoo_dir / "grid.toml")
    ref = run_grid(cfg, tmp_path / "ref.nc", workers=2, progress=False)
    assert counts(ref)["ok"] == 4

    out = tmp_path / "killed.nc"
    proc = subprocess.Popen([sys.executable, "-m", "bayes_scaling.cli", "grid", str(zoo_dir / "grid.toml"),
                             "--out", str(out), "--workers", "2", "--no-progress"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def one_done():
        try:
            return out.exists() and counts(load_results(out))["ok"] >= 1
        except (OSError, ValueError):
            return False

    try:
        assert _wait_for(one_done, 300), "no cell finished in 5 minutes"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _wait_for(lambda: _group_gone(proc.pid), 30), "dask workers outlived the kill"
    before = counts(load_results(out))
    assert 1 <= before["ok"] < 4, f"not killed part-way: {before}"

    lines = []
    resumed = run_grid(cfg, out, workers=2, progress=False, log=lines.append)
    assert f"{before['ok']} already done, {4 - before['ok']} to run" in lines[0]
    assert counts(resumed)["ok"] == 4
    for s in SCORES:
        if s != "seconds":
            xr.testing.assert_equal(resumed[s], ref[s])
    # a finished grid does nothing more
    again = []
    run_grid(cfg, out, workers=2, progress=False, log=again.append)
    assert "0 to run" in again[0]


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_existing_scheduler_by_address_and_by_scheduler_file(zoo_dir, tmp_path):
    """--scheduler: a running cluster's tcp:// address, or its scheduler file (cells here need no fit)."""
    from distributed import Client, LocalCluster

    cfg = GridConfig.from_dict({"dataset": {"csv": "zoo.csv"}, "axes": {"heldout": ["fam0", "fam1"], "k": [5, 6],
                                                                       "prior": ["none"]}}, base_dir=zoo_dir)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl, \
            Client(cl):
        by_address = run_grid(cfg, tmp_path / "a.nc", scheduler=cl.scheduler_address, progress=False)
        # the file `dask scheduler --scheduler-file` writes when it starts (Client.write_scheduler_file also dumps
        # the workers' metrics, whose tuple keys json cannot write once a task has run)
        (tmp_path / "scheduler.json").write_text(json.dumps({"type": "Scheduler", "address": cl.scheduler_address,
                                                             "services": {}, "workers": {}}))
        by_file = run_grid(cfg, tmp_path / "b.nc", scheduler=str(tmp_path / "scheduler.json"), progress=False)
    for ds in (by_address, by_file):
        assert counts(ds) == {"cells": 4, "pending": 0, "ok": 0, "not_applicable": 4, "failed": 0}
        assert ds["status"].sel(heldout="fam1", k=6).item().startswith("not applicable: fam1 has 3 model sizes")


def test_without_dask_the_grid_says_how_to_install_it(monkeypatch):
    from bayes_scaling.grid.runner import cluster_client

    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without the extra imports
    with pytest.raises(ImportError, match=r"pip install 'bayes_scaling\[grid\]'"):
        with cluster_client(workers=1):
            pass
