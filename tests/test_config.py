"""The model and sampler configurations: defaults, validation, dicts over defaults, and the fit file."""

import json

import pytest

import bayes_scaling as bs
from bayes_scaling.errors import ConfigError, FitFileError, LawError
from bayes_scaling.model.config import CONFIG_VERSION


def test_defaults_are_the_documented_ones():
    m, s = bs.ModelConfig(), bs.SamplerConfig()
    assert (m.law, m.likelihood, m.checkpoint_noise, m.treatments, m.extrapolation, m.holdout_depths,
            m.discrepancy_tails) == (None, "normal", "independent", {}, "learn", (1, 2), "normal")
    assert (s.draws, s.tune, s.chains, s.target_accept, s.random_seed, s.until_converged, s.whiten, s.noncentering,
            s.engine, s.backend, s.fused, s.progressbar) == \
        (2000, 1000, 4, 0.98, 0, True, "auto", None, "auto", "auto", True, False)
    assert str(bs.SamplerConfig(draws=200)) == "SamplerConfig(draws=200)"
    assert str(bs.ModelConfig()).endswith("# the defaults")


@pytest.mark.parametrize("make, match", [
    (lambda: bs.SamplerConfig(draws=0), "draws must be a whole number of at least 1"),
    (lambda: bs.SamplerConfig(chains=2.5), "chains must be a whole number"),
    (lambda: bs.SamplerConfig(target_accept=1.0), r"target_accept must lie in \[0.5, 1\)"),
    (lambda: bs.SamplerConfig(whiten="partly"), "whiten must be 'auto', True, False or one of"),
    (lambda: bs.SamplerConfig(noncentering="yes"), "noncentering must be None, 'auto'"),
    (lambda: bs.SamplerConfig(noncentering={"log_alpha": 2}), r"degrees must lie in \[0, 1\]"),
    (lambda: bs.SamplerConfig(backend="cuda"), "backend must be one of"),
    (lambda: bs.SamplerConfig(until_converged="yes"), "until_converged must be True or False"),
    (lambda: bs.ModelConfig(likelihood="cauchy"), "likelihood must be one of"),
    (lambda: bs.ModelConfig(checkpoint_noise="ar1"), "checkpoint_noise must be one of"),
    (lambda: bs.ModelConfig(extrapolation="always"), "extrapolation must be 'learn', a kappa >= 0"),
    (lambda: bs.ModelConfig(extrapolation=-0.1), "extrapolation must be 'learn', a kappa >= 0"),
    (lambda: bs.ModelConfig(holdout_depths=(0,)), "holdout_depths must be whole numbers of at least 1"),
    (lambda: bs.ModelConfig(discrepancy_tails="heavy"), "discrepancy_tails must be one of"),
    (lambda: bs.ModelConfig(discrepancy_pooling="families"), "discrepancy_pooling must be one of"),
    (lambda: bs.ModelConfig(discrepancy_scale="log"), "discrepancy_scale must be one of"),
    (lambda: bs.ModelConfig(treatments={"grown": 1}), "treatments must map each treated family"),
    (lambda: bs.SamplerConfig.coerce({"draw": 10}), "sampler= has no setting 'draw'; its settings are"),
    (lambda: bs.ModelConfig.coerce(3), "model= must be a ModelConfig, a dict of its settings or None"),
])
def test_a_bad_setting_says_which_and_what_it_may_be(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_an_unknown_law_names_the_laws_there_are():
    with pytest.raises(LawError, match="unknown law 'kaplan'; choose one of"):
        bs.ModelConfig(law="kaplan")


def test_a_dict_changes_the_defaults_it_is_merged_over():
    evaluation = bs.SamplerConfig(draws=500, tune=500, chains=2)
    assert evaluation.merged({"draws": 100}) == bs.SamplerConfig(draws=100, tune=500, chains=2)
    assert evaluation.merged(None) is evaluation
    assert bs.SamplerConfig.coerce({"draws": 100}) == bs.SamplerConfig(draws=100)
    assert bs.ModelConfig.coerce("compute") == bs.ModelConfig(law="compute")
    assert bs.ModelConfig(holdout_depths=[1, 2, 3]).holdout_depths == (1, 2, 3)


def test_json_round_trip_and_a_file_of_another_layout_is_refused():
    m = bs.ModelConfig(law="compute", likelihood="student_t", treatments={"a": "b"}, holdout_depths=(1, 3))
    s = bs.SamplerConfig(draws=10, whiten="conditional", noncentering={"log_alpha": 0.5})
    assert bs.ModelConfig.from_json(m.to_json()) == m and bs.SamplerConfig.from_json(s.to_json()) == s
    stored = json.loads(s.to_json())
    assert stored["version"] == CONFIG_VERSION
    stored["version"] = CONFIG_VERSION + 1
    with pytest.raises(ConfigError, match=f"layout {CONFIG_VERSION + 1}; this version of bayes_scaling reads layout"):
        bs.SamplerConfig.from_json(json.dumps(stored))


def test_fit_names_where_a_keyword_it_no_longer_takes_goes():
    data = bs.load_bundled("porian")
    with pytest.raises(TypeError, match=r"pass model=\{'likelihood': 'auto'\}, sampler=\{'draws': 5\}"):
        bs.fit(data, draws=5, likelihood="auto")


def test_the_fit_stores_both_configurations_in_its_file(small_fit, tmp_path):
    assert small_fit.model_config == bs.ModelConfig(extrapolation=0.02)
    assert small_fit.sampler_config.draws == 300 and small_fit.sampler_config.chains == 2
    path = small_fit.save(tmp_path / "fit.nc")
    again = bs.open(path)
    assert again.model_config == small_fit.model_config and again.sampler_config == small_fit.sampler_config
    del again.idata.posterior.attrs["bayes_scaling_sampler_config"]
    with pytest.raises(FitFileError, match="stores no sampler configuration"):
        again.sampler_config
