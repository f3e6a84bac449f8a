"""The model and its forecasts. Unit tests use no MCMC; tests that sample are marked slow and
run on the smallest data that shows the property."""

import datetime as dt

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats
from scipy.special import gammaln

from forecast.fit import SamplerConfig, diagnose, sample
from forecast.forecasts import QuestionSpec, forecast_questions
from forecast.model import (
    ClaimTerm,
    ModelConfig,
    _ar1,
    _escalation,
    build_model,
    claim_probability,
    negative_binomial_logp,
)
from forecast.series import make_series, week_ends
from forecast.simulate import escalation_path, simulate_world

AS_OF = dt.date(2026, 1, 4)


def _series(counts: dict[str, list[int]], indicators=None, volume=None, weeks=None):
    n = len(next(iter(counts.values())))
    weeks = week_ends(AS_OF - dt.timedelta(weeks=n), AS_OF) if weeks is None else weeks
    return make_series(weeks, {k: np.array(v) for k, v in counts.items()},
                       {k: np.array(v) for k, v in (indicators or {}).items()},
                       np.full(n, 100) if volume is None else volume)


def _question(scenario="s", weeks_ahead=26, members=None, opened=None):
    return QuestionSpec(f"{scenario}-q", scenario, members or (scenario,),
                        opened or AS_OF + dt.timedelta(days=1),
                        AS_OF + dt.timedelta(weeks=weeks_ahead))


@pytest.mark.parametrize("weeks", [1, 2, 5, 40, 156, 157])
def test_the_blocked_ar1_equals_the_recursion(weeks):
    e = np.random.default_rng(weeks).standard_normal(weeks)
    rho = pt.dscalar("rho")
    f = pytensor.function([rho], _ar1(rho, pt.as_tensor(e), weeks))
    for value in (0.0, 0.83, 0.999):
        np.testing.assert_allclose(f(value), escalation_path(value, e), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seen", [[1] * 7, [0, 0, 0, 1, 1, 0, 1], [0] * 7],
                         ids=["every-week", "gaps", "no-data"])
def test_the_escalation_path_has_the_ar1_prior(seen):
    """Sampled on its own, the parametrised path is the AR(1): mean 0, covariance
    rho^|i - j| / (1 - rho^2), whichever weeks have data (that only changes the coordinates)."""
    import pymc as pm

    rho, n = 0.7, len(seen)
    with pm.Model(coords={"week": range(n)}) as model:
        x, _ = _escalation(pt.constant(rho), pt.constant(np.array(seen, dtype="float64")), n)
        pm.Deterministic("x", x, dims="week")
    tree = sample(model, SamplerConfig(draws=5000, target_accept=0.9, seed=3))
    draws = tree.posterior["x"].values.reshape(-1, n)
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    expected = rho**lag / (1 - rho**2)
    np.testing.assert_allclose(draws.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(np.cov(draws.T), expected, atol=0.12)


def test_the_negative_binomial_matches_scipy_up_to_a_constant_of_the_data():
    rng = np.random.default_rng(2)
    y = rng.poisson(4.0, size=(3, 7)).astype("float64")
    log_mean = rng.normal(1.0, 0.5, size=(3, 7))
    alpha = np.array([0.5, 2.0, 30.0])
    weight = np.array([1, 1, 0, 1, 1, 1, 0], dtype="float64")  # weeks with no data count 0
    got = negative_binomial_logp(y, log_mean, pt.as_tensor(alpha), weight).eval()
    a = alpha[:, None]
    expected = (stats.nbinom.logpmf(y, a, a / (a + np.exp(log_mean))) + gammaln(y + 1)) * weight
    assert got == pytest.approx(expected.sum(), rel=1e-10)


def test_claim_probability_matches_its_formula():
    assert claim_probability(0.3, np.log(0.01), 104.0) == pytest.approx(
        0.7 * (1 - np.exp(-1.04)))
    assert claim_probability(0.3, np.log(0.01), None) == pytest.approx(0.7)


def test_the_model_has_the_designs_parameters():
    series = _series({"a": [0] * 10, "b": [1] + [0] * 9}, {"k": [3] * 10})
    claims = [ClaimTerm("c", ("a", "b"), 52.0, 2.0, 5.0)]
    model = build_model(series, claims)
    assert {v.name for v in model.free_RVs} == {
        "rho", "escalation_deviation", "escalation_level", "gap_innovation", "indicator_level",
        "lambda", "phi", "gamma", "scenario_level", "never"}
    assert {"escalation_prior", "scenario_likelihood", "claims"} <= {
        p.name for p in model.potentials}
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def _posterior(**arrays) -> xr.Dataset:
    """A posterior of one chain from arrays shaped (draw, ...)."""
    dims = {"beta": ("scenario",), "gamma": ("scenario",), "never": ("scenario",),
            "escalation": ("week",), "rho": ()}
    return xr.Dataset({k: (("chain", "draw", *dims[k]), np.asarray(v)[None])
                       for k, v in arrays.items()})


def test_forecast_by_hand_for_a_quiet_channel():
    """Two draws, no escalation: P = p_on (1 - exp(-rate H)), p_on from Bayes on the quiet."""
    series = _series({"s": [0] * 10})
    beta, never = np.log([[0.02], [0.05]]), np.array([[0.3], [0.6]])
    f = forecast_questions(_posterior(beta=beta, never=never), series, [_question()], AS_OF, {},
                           seed=0)
    expected = []
    for rate, c in ((0.02, 0.3), (0.05, 0.6)):
        on = (1 - c) * np.exp(-10 * rate)
        expected.append(on / (c + on) * (1 - np.exp(-26 * rate)))
    np.testing.assert_allclose(f.draws.values[0], expected, rtol=1e-12)
    assert f.probability.item() == pytest.approx(np.mean(expected))
    assert f.status.item() == "open"


def test_forecast_status_yes_no_and_a_union():
    series = _series({"a": [0, 1, 0], "b": [0, 0, 0]})
    post = _posterior(beta=np.log([[0.1, 0.2]]), never=np.array([[0.5, 0.5]]))
    qs = [_question("a"), _question("any", members=("a", "b")),
          QuestionSpec("old", "a", ("a",), dt.date(2025, 1, 1), dt.date(2025, 6, 1)),
          QuestionSpec("hit", "a", ("a",), dt.date(2025, 12, 1), dt.date(2026, 6, 1))]
    f = forecast_questions(post, series, qs, AS_OF, {"hit": ("yes", dt.date(2025, 12, 20))}, seed=0)
    p_a = 1 - np.exp(-26 * 0.1)  # the channel had an event: it is on
    on_b = 0.5 * np.exp(-3 * 0.2) / (0.5 + 0.5 * np.exp(-3 * 0.2))
    p_b = on_b * (1 - np.exp(-26 * 0.2))
    np.testing.assert_allclose(f.probability.values[:2], [p_a, 1 - (1 - p_a) * (1 - p_b)])
    assert list(f.status.values) == ["open", "open", "no", "yes"]
    assert list(f.probability.values[2:]) == [0.0, 1.0]


def test_a_deadline_mid_week_counts_the_days_it_covers():
    series = _series({"s": [1]})
    post = _posterior(beta=np.log([[0.7]]), never=np.array([[0.0]]))
    q = QuestionSpec("q", "s", ("s",), AS_OF, AS_OF + dt.timedelta(days=10))
    f = forecast_questions(post, series, [q], AS_OF, {}, seed=0)
    assert f.probability.item() == pytest.approx(1 - np.exp(-0.7 * 10 / 7))


def test_simulated_worlds_are_reproducible():
    weeks = week_ends(dt.date(2024, 1, 1), dt.date(2025, 1, 1))
    a = simulate_world(np.random.default_rng(5), ["s1", "s2"], ["k"], weeks)
    b = simulate_world(np.random.default_rng(5), ["s1", "s2"], ["k"], weeks)
    xr.testing.assert_identical(a.series, b.series)
    assert a.params["beta"].tolist() == b.params["beta"].tolist()


# --- with MCMC ---------------------------------------------------------------------------------

SMALL = SamplerConfig(draws=1000, tune=500, chains=2, seed=11)


def _fit(series, config=ModelConfig(), claims=(), sampler=SMALL):
    model = build_model(series, claims, config)
    tree = sample(model, sampler)
    return tree, diagnose(tree, [v.name for v in model.free_RVs])


@pytest.mark.slow
def test_closed_form_in_the_conjugate_special_case():
    """gamma = 0, c = 0, Gamma(a0, b0) on the weekly rate, no indicators: the posterior is
    Gamma(a0 + sum n, b0 + T) and P(>= 1 event in H weeks) = 1 - (b / (b + H))^a."""
    rng = np.random.default_rng(3)
    n = rng.poisson(0.05, 52)
    series = _series({"s": n.tolist()})
    a0, b0 = 2.0, 40.0
    config = ModelConfig(escalation=False, never_fraction=False, beta_gamma_prior=(a0, b0))
    tree, diag = _fit(series, config, sampler=SamplerConfig(draws=3000, tune=500, seed=2))
    assert diag.converged
    a, b = a0 + n.sum(), b0 + len(n)
    for horizon in (4, 26, 104):
        f = forecast_questions(tree.posterior.to_dataset(), series,
                               [_question(weeks_ahead=horizon)], AS_OF, {}, seed=0)
        draws = f.draws.values[0]
        mc_error = draws.std() / np.sqrt(diag.ess_bulk_min)
        assert f.probability.item() == pytest.approx(1 - (b / (b + horizon)) ** a,
                                                     abs=4 * mc_error)


@pytest.mark.slow
def test_more_quiet_weeks_lower_the_probability():
    config = ModelConfig(escalation=False)
    probs = []
    for quiet in (26, 104):
        series = _series({"s": [0] * quiet})
        tree, diag = _fit(series, config)
        assert diag.converged
        f = forecast_questions(tree.posterior.to_dataset(), series, [_question()], AS_OF, {},
                               seed=0)
        probs.append(f.probability.item())
    assert probs[1] < probs[0] - 0.05


@pytest.mark.slow
def test_an_indicator_surge_raises_every_scenario_linked_to_escalation():
    rng = np.random.default_rng(7)
    calm = rng.poisson(4, (2, 60))
    surge = calm.copy()
    surge[:, -4:] *= 5
    probs = []
    for counts in (calm, surge):
        series = _series({"a": [0] * 60, "b": [0] * 59 + [1]}, {"k1": counts[0], "k2": counts[1]})
        tree, diag = _fit(series)
        assert diag.divergences == 0
        f = forecast_questions(tree.posterior.to_dataset(), series,
                               [_question("a", 13), _question("b", 13)], AS_OF, {}, seed=0)
        probs.append(f.probability.values)
    assert np.all(probs[1] > probs[0]), probs


@pytest.mark.slow
def test_the_same_inputs_and_seed_give_identical_numbers():
    series = _series({"s": [0, 1, 0, 0, 0, 0, 0, 0]})
    config = ModelConfig(escalation=False)
    results = []
    for _ in range(2):
        tree, _diag = _fit(series, config, sampler=SamplerConfig(draws=200, tune=200, seed=5))
        results.append(forecast_questions(tree.posterior.to_dataset(), series, [_question()],
                                          AS_OF, {}, seed=5).draws.values)
    np.testing.assert_array_equal(results[0], results[1])


def test_a_simulated_world_written_as_gdelt2_imports_event_for_event(tmp_path):
    from forecast.events import import_events
    from forecast.simulate import world_events, write_gdelt2
    from forecast.store import open_store

    weeks = week_ends(dt.date(2025, 1, 1), dt.date(2025, 3, 1))
    params = {"rho": 0.5, "mu": np.array([1.0]), "lambda": np.array([0.3]),
              "phi": np.array([0.2]), "beta": np.array([-0.5]), "gamma": np.array([0.3]),
              "never": np.array([0.0])}
    world = simulate_world(np.random.default_rng(2), ["s"], ["k"], weeks, params=params)
    rules = {"s": ("RUS", "AZE", "163", 3), "k": ("AZE", "RUS", "172", 1)}
    events = world_events(world, rules, np.random.default_rng(3), ("RUS", "AZE", "IRN"))
    path = tmp_path / "world.export.CSV"
    write_gdelt2(events, path)
    con = open_store(tmp_path / "store.duckdb")
    result = import_events(con, path)
    assert (result.format, result.read, result.rejected) == ("gdelt2", len(events), 0)
    assert result.imported + result.duplicate == len(events)
    for code, var in (("163", "scenario_events"), ("172", "indicator_events")):
        (stored,) = con.execute("SELECT coalesce(sum(1 + duplicates), 0) FROM events "
                                "WHERE event_code = ?", [code]).fetchone()
        assert stored == world.series[var].sum() > 0
