"""Nothing silently wrong: each bad input ends in a specific error (Python) or exit code 2 with a message in
the command line's words (CLI); doubtful inputs warn, naming the likely cause; outputs are checked before any
work, written whole, and never lost; an interrupt stops cleanly."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import build_parser, main
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.errors import (
    DataAssumptionWarning,
    DataValidationError,
    ExtrapolationWarning,
    FitFileError,
    PerplexityLikeLossError,
    UnitWarning,
    UnknownFamilyError,
)

COLUMNS = ["--family", "family", "--params", "params", "--tokens", "tokens", "--loss", "loss"]


def build(df, **kw):
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", **kw)


def cli(tmp_path, df, *extra, capsys, out=None):
    """Run ``fit`` on ``df`` written as a CSV; (exit code, stderr)."""
    csv = tmp_path / "runs.csv"
    df.to_csv(csv, index=False)
    code = main(["fit", str(csv), *COLUMNS, "--out", str(out or tmp_path / "fit.nc"), *extra])
    return code, capsys.readouterr().err


def argparse_error(argv, capsys) -> str:
    """The message of a command line that argparse refuses (exit code 2)."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------ blank and ambiguous names
@pytest.mark.parametrize("column", ["family", "run"])
def test_a_blank_name_cell_is_an_error_naming_the_rows(frame, column, tmp_path, capsys):
    frame["run"] = frame["family"] + frame["params"].astype(str)
    frame.loc[2, column] = np.nan
    with pytest.raises(DataValidationError, match=rf"column '{column}' .* 1 blank cell\(s\), rows \[2\]"):
        build(frame, run="run")
    code, err = cli(tmp_path, frame, "--run", "run", capsys=capsys)
    assert code == 2 and "blank cell(s), rows [2]" in err and "Traceback" not in err


def test_family_keys_that_would_merge_are_an_error_and_float_integers_are_one_name(frame):
    frame["family"] = [1, 1, 1, 1, "1", "1", "1", "1"]
    with pytest.raises(DataValidationError, match="'1' both as a number and as text"):
        build(frame)
    frame["family"] = [1, 1, 1, 1, 1.0, 1.0, 1.0, 1.0]  # a spreadsheet's 1.0 is the integer 1
    frame["params"] = [1e8, 1e8, 4e8, 4e8, 2e8, 2e8, 8e8, 8e8]
    assert build(frame).families == ["1"]


def test_the_cli_reads_names_as_written(frame, tmp_path):
    """The data `fit` reads from its CSV (what it fits; a fit file keeps the names it was given)."""
    from bayes_scaling.cli.options import _read_data

    frame["family"] = ["1"] * 4 + ["1.0"] * 4  # text in a CSV: two names, not one float
    frame.to_csv(tmp_path / "runs.csv", index=False)
    args = build_parser().parse_args(["fit", str(tmp_path / "runs.csv"), *COLUMNS, "--out", str(tmp_path / "fit.nc")])
    assert _read_data(args).families == ["1", "1.0"]


# ------------------------------------------------------------------ units
def test_perplexities_read_as_nats_are_an_error_even_with_a_low_median(frame):
    frame["loss"] = [3.5, 3.3, 3.0, 2.9, 3.6, 3.4, 453.0, 300.0]  # median below 12, values impossible
    with pytest.raises(PerplexityLikeLossError, match="values up to 453.*loss_kind='perplexity'"):
        build(frame)


def test_perplexity_below_one_is_an_error_and_nats_read_as_perplexity_warn(frame):
    with pytest.warns(UnitWarning, match="where cross-entropies in nats lie.*loss_kind='nats'"):
        build(frame, loss_kind="perplexity")
    frame.loc[0, "loss"] = 0.5
    with pytest.raises(PerplexityLikeLossError, match="below 1"):
        build(frame, loss_kind="perplexity")


def test_the_cli_says_loss_kind_as_a_flag(frame, tmp_path, capsys):
    frame["loss"] = np.exp(frame["loss"]) * 10
    code, err = cli(tmp_path, frame, capsys=capsys)
    assert code == 2 and "--loss-kind perplexity" in err and "loss_kind=" not in err


def test_the_cli_says_a_configuration_s_settings_as_flags():
    from bayes_scaling.cli.messages import _in_cli_words

    said = _in_cli_words("fit with sampler={'until_converged': True} and enough draws; "
                         "sampler={'whiten': 'conditional'} samples it better; model={'likelihood': 'auto'}")
    assert said == ("fit with --until-converged and enough draws; --whiten conditional samples it better; "
                    "--likelihood auto")


@pytest.mark.parametrize("column, scale, unit", [("params", 1e-6, "millions or billions"),
                                                 ("tokens", 1e-9, "tokens in millions or billions")])
def test_sizes_or_tokens_in_other_units_warn_with_the_likely_unit(frame, column, scale, unit):
    frame[column] = frame[column] * scale
    with pytest.warns(UnitWarning, match=unit):
        build(frame)


def test_tokens_and_params_in_different_units_warn(frame):
    frame["tokens"] = frame["tokens"] * 1e-3  # thousands of tokens, tens of parameters: 0.0025 tokens per parameter
    frame["params"] = frame["params"] * 10
    with pytest.warns(UnitWarning, match="tokens per parameter"):
        build(frame)


def test_a_target_far_beyond_the_data_warns_with_the_distance(small_fit):
    with pytest.warns(ExtrapolationWarning, match=r"decades .*beyond"):
        small_fit.predict("fam0", 7e16, 1.4e18)
    with pytest.warns(ExtrapolationWarning, match="Check the units"):
        small_fit.predict("fam0", 7.0, 1.4e12)  # 7 "parameters": 7B written in billions


# ------------------------------------------------------------------ runs
def test_isoflop_rows_without_a_run_column_warn_and_say_what_was_assumed():
    sizes = np.geomspace(1e7, 1e9, 7)
    rows = [{"family": "f", "params": n, "tokens": c / (6 * n), "loss": 3.0 + 1e8 / n * 1e-2}
            for c in (1e17, 1e18, 1e19) for n in sizes]
    df = pd.DataFrame(rows)
    with pytest.warns(DataAssumptionWarning, match="IsoFLOP sweep.*run=..."):
        data = build(df)
    assert data.assumptions == ("no run column: rows of the same family and model size were taken as checkpoints "
                                "of one run (21 rows became 7 runs)",)
    assert len(build(df.assign(run=range(len(df))), run="run").runs) == 21


def test_dense_checkpoint_curves_without_a_run_column_are_not_taken_for_a_sweep(recwarn):
    rng = np.random.default_rng(0)
    df = simulate_runs(simulate_family_parameters(2, rng), rng, sizes=(5e7, 1e8, 2e8, 4e8), checkpoints=40)
    data = build(df.drop(columns=["run"]))
    assert len(data.runs) == 8 and not [w for w in recwarn if issubclass(w.category, DataAssumptionWarning)]


def test_the_default_run_key_keeps_every_digit_of_the_size(frame):
    frame["params"] = [1017960000.0, 1017960000.0, 1017961234.0, 1017961234.0] * 2  # differ in the 7th digit
    data = build(frame)
    assert len(data.runs) == 4 and "a/N=1.017961234e+09" in data.runs


def test_checkpoint_rows_say_what_was_assumed_without_a_warning(frame, recwarn):
    data = build(frame)
    assert "taken as checkpoints of one run (8 rows became 4 runs)" in data.assumptions[0]
    assert not [w for w in recwarn if issubclass(w.category, DataAssumptionWarning)]


@pytest.fixture
def data_of_the_cli(monkeypatch):
    """The ScalingData the ``fit`` command would sample, caught before any sampling."""
    seen = {}

    def caught(data, *configs, **kwargs):
        seen["data"] = data
        raise DataValidationError("stopped before sampling")

    monkeypatch.setattr(bs, "fit", caught)
    return seen


def test_the_cli_warns_about_units_naming_the_likely_one(frame, tmp_path, capsys, data_of_the_cli):
    frame["tokens"] = frame["tokens"] / 1e9  # billions
    code, err = cli(tmp_path, frame, capsys=capsys)
    assert code == 2 and "warning: implausible units" in err and "tokens in millions or billions" in err


def test_the_cli_says_what_it_assumed_and_warns_on_isoflop_rows(tmp_path, capsys, data_of_the_cli):
    sizes = np.geomspace(1e7, 1e9, 7)
    df = pd.DataFrame([{"family": "f", "params": n, "tokens": c / (6 * n), "loss": 3.0 + 1e6 / n}
                       for c in (1e17, 1e18, 1e19) for n in sizes])
    code, err = cli(tmp_path, df, capsys=capsys)
    assert "assumed: no run column" in err and "IsoFLOP sweep" in err and "(--run ..." in err
    assert len(data_of_the_cli["data"].runs) == 7


def test_the_cli_keeps_sizes_that_differ_in_the_seventh_digit_apart(frame, tmp_path, capsys, data_of_the_cli):
    frame["params"] = [1017960000.0, 1017960000.0, 1017961234.0, 1017961234.0] * 2
    cli(tmp_path, frame, capsys=capsys)
    assert len(data_of_the_cli["data"].runs) == 4


def test_the_cli_refuses_a_single_configuration_before_sampling(frame, tmp_path, capsys):
    code, err = cli(tmp_path, frame.iloc[:1], capsys=capsys)
    assert code == 2 and "single configuration" in err and "--borrow" in err


# ------------------------------------------------------------------ families
def test_a_misspelt_family_is_an_error_naming_the_closest(small_fit, tmp_path, capsys):
    with pytest.raises(UnknownFamilyError, match=r"'FAM0': closest \['fam0'\]"):
        small_fit.predict("FAM0", 1e9, 2e10)
    path = small_fit.save(tmp_path / "fit.nc")
    code = main(["predict", str(path), "--family", "fam_0", "--params", "1e9", "--tokens", "2e10"])
    err = capsys.readouterr().err
    assert code == 2 and "closest ['fam0'" in err and "--new-family" in err and "new_family=" not in err


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize("flag, value, message", [("--chains", "0", "must be at least 1"),
                                                  ("--draws", "-5", "must be at least 1"),
                                                  ("--fraction", "1.5", r"must lie in \(0, 1\]"),
                                                  ("--min-tokens", "0", "must be positive")])
def test_impossible_sampler_and_filter_flags_are_refused(flag, value, message, capsys):
    import re

    err = argparse_error(["fit", "x.csv", *COLUMNS, "--out", "f.nc", flag, value], capsys)
    assert re.search(message, err) and flag in err


def test_impossible_sampler_settings_are_refused_in_python(frame):
    with pytest.raises(ValueError, match="chains must be a whole number of at least 1"):
        bs.fit(build(frame), sampler=dict(chains=0))
    with pytest.raises(ValueError, match="fraction"):
        bs.fit(build(frame), fraction=1.5)


@pytest.mark.parametrize("target, message", [
    ("family=a,params=1e9,tokens=2e10,size=3", "unknown ['size']"),
    ("family=,params=1e9,tokens=2e10", "family is empty"),
    ("family=a,params=1e9,params=2e9,tokens=2e10", "params is given twice"),
    ("family=a,params=1e9", "missing ['tokens']"),
    ("family=a,params=-1,tokens=2e10", "must be positive"),
    ("family=a,params=1e9,tokens=2e10,new_family=maybe", "new_family must be yes or no")])
def test_report_targets_are_checked(target, message, capsys):
    err = argparse_error(["report", "fit.nc", "--out", "r", "--target", target], capsys)
    assert message in err


def test_a_single_row_is_refused_unless_a_prior_informs_it(frame):
    with pytest.raises(DataValidationError, match="single configuration .*cannot identify the 5 parameters.*borrow"):
        bs.fit(build(frame.iloc[:1]))


# ------------------------------------------------------------------ outputs and files
def test_out_below_a_file_is_refused_before_any_work(frame, tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(bs, "fit", lambda *a, **k: pytest.fail("sampled before checking --out"))
    code, err = cli(tmp_path, frame, capsys=capsys, out=tmp_path / "taken" / "fit.nc")
    assert code == 2 and "is a file, not a folder" in err
    code, err = cli(tmp_path, frame, capsys=capsys, out=tmp_path)
    assert code == 2 and "is a folder; give a file name" in err


def test_an_unwritable_out_folder_is_refused_before_any_work(frame, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bs, "fit", lambda *a, **k: pytest.fail("sampled before checking --out"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root every folder is writable
    code, err = cli(tmp_path, frame, capsys=capsys, out=tmp_path / "locked" / "fit.nc")
    assert code == 2 and "permission denied" in err


def test_a_save_that_fails_after_sampling_keeps_the_fit(small_fit, frame, tmp_path, capsys, monkeypatch):
    real_save = type(small_fit).save

    def save(self, path):
        if "fallback" not in str(path) and "bayes_scaling-fit" not in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_save(self, path)

    monkeypatch.setattr(type(small_fit), "save", save)
    monkeypatch.setattr(bs, "fit", lambda *a, **k: small_fit)
    code, err = cli(tmp_path, frame, capsys=capsys)
    assert code == 2 and "the fit was saved to" in err
    saved = err.split("the fit was saved to ")[1].split(" instead")[0]
    assert bs.open(saved).families == small_fit.families
    os.unlink(saved)


def test_a_truncated_borrow_file_is_a_clear_error(small_fit, frame, tmp_path, capsys):
    whole = small_fit.save(tmp_path / "zoo.nc").read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FitFileError, match="not a readable"):
        bs.PopulationPrior.load(cut)
    code, err = cli(tmp_path, frame[frame["family"] == "a"], "--borrow", str(cut), capsys=capsys)
    assert code == 2 and "cut.nc is not a readable" in err


def test_a_file_from_a_newer_version_is_refused_with_what_to_do(small_fit, tmp_path):
    from bayes_scaling.inference.fitted import SPEC_ATTR

    newer = small_fit.idata.copy()
    spec = json.loads(newer.posterior.attrs[SPEC_ATTR])
    spec["version"] = 99
    newer.posterior.attrs[SPEC_ATTR] = json.dumps(spec)
    newer.to_netcdf(str(tmp_path / "newer.nc"))
    with pytest.raises(FitFileError, match="newer bayes_scaling .*Upgrade"):
        bs.open(tmp_path / "newer.nc")


def test_a_write_interrupted_midway_leaves_the_earlier_file_whole(tmp_path):
    from bayes_scaling.storage import write_netcdf

    path = tmp_path / "fit.nc"
    path.write_bytes(b"the earlier fit")

    class Interrupted:
        def to_netcdf(self, name):
            with open(name, "wb") as handle:
                handle.write(b"half a fi")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_netcdf(Interrupted(), path)
    assert path.read_bytes() == b"the earlier fit" and list(tmp_path.iterdir()) == [path]


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [
    ["--draws", "100000", "--no-until-converged", "--tune", "300"],  # nutpie's blocking sampler
    ["--draws", "1000", "--tune", "100000"],  # the default: sampling in the background, polled until converged
], ids=["all-draws", "until-converged"])
def test_ctrl_c_during_a_fit_stops_with_one_line_and_leaves_the_earlier_output(synthetic_truth, tmp_path, sampling):
    _, df = synthetic_truth
    csv = tmp_path / "runs.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    out.write_bytes(b"the earlier fit")
    proc = subprocess.Popen([sys.executable, "-m", "bayes_scaling.cli", "fit", str(csv), *COLUMNS, "--run", "run",
                             *sampling, "--chains", "2", "--no-extrapolation", "--out",
                             str(out)], stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # wait until sampling (or its compile) has started
        lines.append(line)
        if "sampling fit" in line:
            break
    time.sleep(10)  # past the compile: the interrupt lands in sampling, which runs for minutes here
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1].startswith("interrupted: stopped before finishing")
    assert "Traceback" not in rest and out.read_bytes() == b"the earlier fit"


# ------------------------------------------------------------------ the command line talks
def test_every_option_has_help_and_every_subcommand_an_example():
    def check(parser, path):
        checked = []
        for sub in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
            for name, p in sub.choices.items():
                assert "example:" in (p.epilog or ""), path + name
                assert p.description, path + name
                for action in p._actions:
                    if action.option_strings and action.dest != "help":
                        assert action.help, f"{path}{name} {action.option_strings}"
                checked += [path + name] + check(p, f"{path}{name} ")  # and the steps of a nested command
        return checked

    assert {"fit", "downstream fit", "downstream predict", "downstream report"} <= set(check(build_parser(), ""))


def test_help_does_not_load_the_heavy_libraries():
    code = ("import sys, contextlib, io\nfrom bayes_scaling.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['fit', '--help'])\n"
            "print(sorted(m for m in ('pymc', 'arviz', 'pandas', 'pytensor') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_each_warning_is_said_once_in_flag_words(capsys):
    import warnings

    from bayes_scaling.cli.messages import _MESSAGES

    _MESSAGES.seen.clear()
    old = warnings.showwarning
    warnings.showwarning = _MESSAGES.showwarning
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _MESSAGES.showwarning
            warnings.simplefilter("always")
            for _ in range(2):
                warnings.warn("3 divergent transitions; raise target_accept", UserWarning)
    finally:
        warnings.showwarning = old
    err = capsys.readouterr().err
    assert err.count("divergent transitions") == 1 and "--target-accept" in err


def test_predict_prints_both_medians_and_the_interval_convention(small_fit, tmp_path, capsys):
    path = small_fit.save(tmp_path / "fit.nc")
    assert main(["predict", str(path), "--family", "fam0", "--params", "1e9", "--tokens", "2e10"]) == 0
    out = capsys.readouterr().out
    assert "median [90% central interval]" in out
    assert out.count("[") == 3 and "one-run loss" in out and "expected loss" in out


def test_the_robust_likelihood_has_no_run_mean(small_fit):
    from bayes_scaling.model.draws import query_columns
    from bayes_scaling.predict import posterior_arrays, predict_draws

    arrays = posterior_arrays(small_fit.idata.posterior)
    arrays["nu"] = np.full(len(arrays["sigma_seed"]), 1.5)
    cols = query_columns(1e9, 2e10)
    res, _ = predict_draws(small_fit.law, arrays, small_fit.spec.families, small_fit.spec.reference,
                           small_fit.spec.extents, np.array(["fam0"]), cols, rng=np.random.default_rng(0),
                           interval=0.9, keep_draws=False)
    assert np.isnan(res["run_mean"]).all() and np.isfinite(res["run_median"]).all()
    assert np.isfinite(res["expected_mean"]).all()


def test_every_chain_runs_at_once_so_a_stop_rule_waits_on_no_queued_chain():
    from bayes_scaling.inference.sampling import nutpie_settings

    assert nutpie_settings(draws=10, tune=10, chains=6, target_accept=0.9)["cores"] == 6
    assert nutpie_settings(draws=10, tune=10, chains=1, target_accept=0.9)["cores"] == 1


def test_a_swallowed_ctrl_c_still_stops_the_command_before_a_file_is_replaced(tmp_path):
    """A KeyboardInterrupt raised inside a garbage-collection callback is printed and dropped by Python; the
    command line's handler remembers the request, so the next file write (or look at the draws) stops."""
    import signal

    from bayes_scaling import interrupts
    from bayes_scaling.storage import write_atomically

    before = signal.getsignal(signal.SIGINT)
    path = tmp_path / "out.txt"
    try:
        interrupts.install()
        write_atomically(path, "the earlier output")
        with pytest.raises(KeyboardInterrupt):  # what the signal raises, swallowed where it lands
            interrupts._handler(signal.SIGINT, None)
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            write_atomically(path, "a later output")
        assert path.read_text() == "the earlier output" and list(tmp_path.iterdir()) == [path]
    finally:
        signal.signal(signal.SIGINT, before)
        interrupts._requested = False


def test_a_swallowed_ctrl_c_is_not_printed_but_other_unraisable_errors_are(capsys):
    """Python prints an exception it cannot raise (one in a garbage-collection callback) with its traceback; the
    command line's hook keeps quiet about a Ctrl-C it has recorded, and prints everything else as before."""
    import signal
    import sys

    from bayes_scaling import interrupts

    before, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    try:
        interrupts.install()
        assert sys.unraisablehook is interrupts._unraisable
        with pytest.raises(KeyboardInterrupt):
            interrupts._handler(signal.SIGINT, None)
        class RaisesWhenCollected:  # what a garbage-collection callback does when the signal lands in it
            def __init__(self, exc):
                self.exc = exc

            def __del__(self):
                raise self.exc

        RaisesWhenCollected(KeyboardInterrupt())
        assert capsys.readouterr().err == ""
        RaisesWhenCollected(ValueError("a real problem"))
        assert "a real problem" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGINT, before)
        sys.unraisablehook = hook
        interrupts._requested = False
