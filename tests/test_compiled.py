"""The model compiled for nutpie with disk-cached callbacks (`forecast.compiled`)."""

import numpy as np
import pymc as pm
import pytest

from forecast.compiled import compile_model, with_data
from forecast.fit import SamplerConfig, sample_compiled


def _model() -> pm.Model:
    with pm.Model() as model:
        y = pm.Data("y", np.array([0.5, 1.0, 2.0]))
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("obs", mu, 1.0, observed=y, shape=y.shape)
    return model


@pytest.mark.slow
def test_the_cached_callbacks_give_nutpies_draws_and_take_new_data():
    import nutpie

    config = SamplerConfig(draws=300, tune=300, seed=4)
    ours = compile_model(_model())
    assert ours.user_data.dtype == np.uint64  # the cached path, not the fallback
    theirs = nutpie.compile_pymc_model(_model())
    np.testing.assert_array_equal(sample_compiled(ours, config).posterior["mu"].values,
                                  sample_compiled(theirs, config).posterior["mu"].values)

    moved = sample_compiled(ours, config, {"y": np.array([10.0, 11.0, 12.0])})
    assert float(moved.posterior["mu"].mean()) == pytest.approx(11.0, abs=0.3)
    with pytest.raises(ValueError, match="'y' has shape \\(2,\\)"):
        with_data(ours, {"y": np.zeros(2)})
