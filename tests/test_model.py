"""The PyMC model's structure: partial non-centring gives the same family parameters."""

import numpy as np

import bayes_scaling as bs
from bayes_scaling.model import ModelSpec, build_model


def _data(synthetic_truth):
    _, df = synthetic_truth
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")


def test_noncentering_builds_eta_and_recovers_theta(synthetic_truth):
    data = _data(synthetic_truth)
    centred = build_model(data, ModelSpec.from_data(data))
    assert "eta" not in centred.named_vars and "theta" in [v.name for v in centred.free_RVs]  # centred default
    spec = ModelSpec.from_data(data, noncentering={"log_beta": 1.0, "log_alpha": 0.5})
    model = build_model(data, spec)
    assert "eta" in model.named_vars and spec.noncentering == {"log_beta": 1.0, "log_alpha": 0.5}
    point = model.initial_point(random_seed=0)
    logp = model.compile_logp()(point)
    assert np.isfinite(logp)
    # theta = mu + eta * tau^w, column by column
    fn = model.compile_fn([model["theta"], model["mu"], model["eta"], model["tau"]], inputs=model.value_vars,
                          on_unused_input="ignore")
    theta, mu, eta, tau = fn(point)
    w = np.array([spec.noncentering.get(p, 0.0) for p in spec.law_obj.sampling])
    assert np.allclose(theta, mu[None, :] + eta * tau[None, :] ** w)
