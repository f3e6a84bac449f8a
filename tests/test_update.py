"""`forecast update` on real, sparse data: the reproduction of issue 14's failing gate."""

import json

import pytest

from cli import main
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data"


@pytest.mark.slow
def test_sparse_real_data_pass_the_gate_at_default_settings(runner, tmp_path):
    """The README's native sample with the GDELT samples: long stretches of weeks without any
    event. Before the gaps were integrated out, every update failed the gate (R-hat 1.03, bulk
    ESS 70 on the escalation in a week with no data), even with --tune 2000 --draws 4000; then
    one seed in three trapped a chain where the overdispersion's rounding error made the
    log-density 1e111 (`forecast.model.PHI_FLOOR`)."""
    ws = ["--workspace", str(tmp_path / "ws")]
    assert runner.invoke(main, [*ws, "init"]).exit_code == 0
    files = [DATA / "native-sample.csv", DATA / "gdelt1-sample.tsv",
             DATA / "gdelt2-20191024143000.export.tsv"]
    assert runner.invoke(main, [*ws, "events", "import", *map(str, files)]).exit_code == 0
    result = runner.invoke(main, [*ws, "update", "--as-of", "2026-11-22", "--json"])
    assert result.exit_code == 0, result.output
    diagnostics = json.loads(result.stdout)["forecasts"][0]["diagnostics"]
    assert diagnostics["converged"], diagnostics


def test_forecasts_that_are_not_probabilities_are_never_recorded():
    """Ctrl-C during `update --allow-unconverged` published NaN forecasts (8 questions at nan%)."""
    import numpy as np
    import xarray as xr

    from forecast.errors import ForecastError
    from forecast.update import _check_probabilities

    def result(p):
        return xr.Dataset({"probability": ("question", p), "low": ("question", p),
                           "high": ("question", p)}, coords={"question": ["a", "b"]})

    _check_probabilities(result(np.array([0.0, 0.4])))
    # a skewed posterior: 1 draw in 40 surely fires, the mean (0.03) lies above the 90%
    # interval; it was refused as "no probability" (a starved fit, or a rare counter-scenario)
    skewed = result(np.array([0.03, 0.4]))
    skewed["low"], skewed["high"] = ("question", [0.001, 0.3]), ("question", [0.02, 0.5])
    _check_probabilities(skewed)
    with pytest.raises(ForecastError, match=r"the fit gave 1 question\(s\) no probability \(b\): "
                                            "nothing is recorded"):
        _check_probabilities(result(np.array([0.2, np.nan])))


def test_an_interrupted_fit_is_never_returned(monkeypatch):
    """nutpie returns the draws it has when interrupted (R-hat inf, NaN forecasts downstream):
    that is an interruption, not a fit."""
    import numpy as np
    import nutpie
    import xarray as xr

    from forecast import fit

    partial = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"x": (("chain", "draw"), np.zeros((2, 10)))})})
    monkeypatch.setattr(nutpie, "sample", lambda *args, **kwargs: partial)
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        fit.sample_compiled(object(), fit.SamplerConfig(draws=100))
