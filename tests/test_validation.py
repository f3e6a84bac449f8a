"""Small versions of the statistical checks in validation/ (the full runs are scripts)."""

import pytest

from forecast.fit import SamplerConfig
from validation.recovery import run_recovery
from validation.sbc import run_sbc


@pytest.mark.slow
def test_sbc_ranks_of_the_full_model_are_uniform():
    result = run_sbc(24, draws_kept=19, bins=4, seed=1, weeks=20,
                     sampler=SamplerConfig(draws=400, tune=400))
    for name, r in result["params"].items():
        assert r["p_value"] > 0.001, (name, r["histogram"])


@pytest.mark.slow
def test_90_percent_intervals_cover_the_truth_of_simulated_worlds():
    result = run_recovery(3, seed=2, weeks=52, sampler=SamplerConfig(draws=1000, tune=500))
    assert result["overall"] >= 0.7, result
