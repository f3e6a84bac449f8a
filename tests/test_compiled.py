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


def _normal(sd: float = 10.0, y=(0.5, 1.0, 2.0)) -> pm.Model:
    import pytensor.tensor as pt

    with pm.Model() as model:
        data = pm.Data("y", np.array(y))
        mu = pm.Normal("mu", 0.0, sd)
        pm.Normal("obs", mu, 1.0, observed=data, shape=data.shape)
        pm.Potential("soft", -pt.logaddexp(mu - 30.0, 0.0))  # an operation with its own graph
    return model


def test_the_stored_functions_key_is_the_graph_not_the_data_values():
    """The same graph has one key whatever the process built before it and whatever its data's
    values; a different constant or a different data shape is another graph."""
    from forecast.compiled import _graph_key

    key, data = _graph_key(_normal())
    assert sorted(data) == ["y"]
    _model(), _normal(sd=3.0)  # other graphs built in between
    assert _graph_key(_normal(y=(7.0, 8.0, 9.0)))[0] == key
    assert _graph_key(_normal(sd=10.5))[0] != key
    assert _graph_key(_normal(y=(1.0, 2.0)))[0] != key


@pytest.mark.slow
def test_stored_functions_are_reused_with_the_new_models_data(tmp_path, monkeypatch):
    """The second compile of the same graph loads the stored functions instead of compiling,
    and fits the new model's data (the same draws as nutpie's own compile of it); an unreadable
    entry is compiled afresh."""
    import nutpie
    import nutpie.compile_pymc as npc

    import forecast.compiled

    monkeypatch.setattr(forecast.compiled, "functions_dir", lambda: tmp_path)
    config = SamplerConfig(draws=200, tune=200, seed=5)
    compile_model(_normal())
    (stored,) = tmp_path.glob("*.pkl")

    def fail(*args, **kwargs):
        raise AssertionError("compiled again")

    with monkeypatch.context() as m:
        m.setattr(npc, "_make_functions", fail)
        loaded = compile_model(_normal(y=(10.0, 11.0, 12.0)))
    fresh = nutpie.compile_pymc_model(_normal(y=(10.0, 11.0, 12.0)))
    np.testing.assert_array_equal(sample_compiled(loaded, config).posterior["mu"].values,
                                  sample_compiled(fresh, config).posterior["mu"].values)

    stored.write_bytes(b"not a pickle")
    again = compile_model(_normal(y=(10.0, 11.0, 12.0)))
    np.testing.assert_array_equal(sample_compiled(again, config).posterior["mu"].values,
                                  sample_compiled(fresh, config).posterior["mu"].values)
    assert stored.read_bytes() != b"not a pickle"


def test_stored_functions_others_could_write_are_not_read(tmp_path, monkeypatch):
    """A stored function is unpickled, so only a file of this user's that nobody else may
    write is read (`tests/test_safety.py`); the folder and files are written private."""
    from forecast.compiled import _private, _store

    folder = tmp_path / "functions"
    _store(folder / "key.pkl", (1, 2))
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "key.pkl").stat().st_mode & 0o777) == "0o600"
    assert _private(folder / "key.pkl")
    (folder / "key.pkl").chmod(0o620)
    assert not _private(folder / "key.pkl")
    (folder / "key.pkl").chmod(0o600)
    folder.chmod(0o777)
    assert not _private(folder / "key.pkl")
