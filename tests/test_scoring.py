import datetime as dt
import math

import numpy as np
import pytest
import scoringrules as sr
from hypothesis import given
from hypothesis import strategies as st

from forecast.scoring import (
    RULES,
    baseline_score,
    brier,
    calibration_table,
    log_score,
    plot_reliability,
    summarise,
    time_averaged,
)

EXACT = 1e-12  # hand computations that differ from the code only by float rounding

D0 = dt.date(2025, 1, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


# --- single forecasts: hand computations -------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "p", "outcome", "expected"),
    [
        (brier, 0.7, 1, 0.09),
        (brier, 0.7, 0, 0.49),
        (brier, 0.5, 1, 0.25),  # Good Judgment's two-outcome Brier: 0.5, twice this
        (brier, 1.0, 0, 1.0),
        (log_score, 0.25, 0, math.log(0.75)),
        (log_score, 0.25, 1, math.log(0.25)),
        (log_score, 1.0, 1, 0.0),
        (baseline_score, 0.5, 1, 0.0),
        (baseline_score, 0.5, 0, 0.0),
        (baseline_score, 1.0, 1, 100.0),
        (baseline_score, 0.0, 0, 100.0),
        (baseline_score, 0.25, 1, -100.0),
        (baseline_score, 0.75, 0, -100.0),
        (baseline_score, 0.875, 0, -200.0),
    ],
)
def test_hand_values(rule, p, outcome, expected):
    score = rule(p, outcome)
    assert isinstance(score, float)
    assert score == pytest.approx(expected, abs=EXACT)


@pytest.mark.parametrize("rule", [log_score, baseline_score])
@pytest.mark.parametrize(("p", "outcome"), [(0.0, 1), (1.0, 0)])
def test_certainty_that_was_wrong_is_minus_infinity(rule, p, outcome):
    assert rule(p, outcome) == -math.inf


def test_rules_are_keyed_by_their_json_names():
    assert {"brier": brier, "log": log_score, "baseline": baseline_score} == RULES


@pytest.mark.parametrize("rule", list(RULES.values()))
@pytest.mark.parametrize(("p", "outcome"), [(1.2, 1), (-0.1, 0), (math.nan, 1), (0.5, 2)])
def test_bad_input_is_refused(rule, p, outcome):
    with pytest.raises(ValueError):
        rule(p, outcome)


# --- vectorised, against scoringrules ----------------------------------------------------------


def random_forecasts(seed: int, n: int = 500):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, n), rng.integers(0, 2, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brier_matches_scoringrules(seed):
    p, o = random_forecasts(seed)
    np.testing.assert_allclose(brier(p, o), sr.brier_score(o, p), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_score_matches_scoringrules(seed):
    p, o = random_forecasts(seed)
    # scoringrules' log score is negatively oriented: -ln P(outcome)
    np.testing.assert_allclose(log_score(p, o), -sr.log_score(o, p), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baseline_score_is_the_log_score_in_bits_shifted(seed):
    p, o = random_forecasts(seed)
    expected = 100 * (-sr.log_score(o, p) / math.log(2) + 1)
    np.testing.assert_allclose(baseline_score(p, o), expected, rtol=1e-12)


def test_scores_broadcast_a_scalar_outcome():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(brier(p, 1), [0.81, 0.25, 0.01], atol=EXACT)


# --- propriety ---------------------------------------------------------------------------------

GRID = np.arange(101) / 100


@pytest.mark.parametrize(("name", "better"), [("brier", np.argmin), ("log", np.argmax),
                                              ("baseline", np.argmax)])
@given(k=st.integers(1, 99))
def test_expected_score_is_best_at_the_true_probability(name, better, k):
    q = k / 100
    rule = RULES[name]
    expected = q * rule(GRID, 1) + (1 - q) * rule(GRID, 0)  # (grid point,)
    assert better(expected) == k
    # strictly proper: no other grid point ties
    others = np.delete(expected, k)
    assert (others > expected[k]).all() if name == "brier" else (others < expected[k]).all()


# --- time-averaged -----------------------------------------------------------------------------


def expected_average(stands: list[tuple[int, float]], outcome: int) -> dict:
    days = sum(d for d, _ in stands)
    return {
        "brier": sum(d * (p - outcome) ** 2 for d, p in stands) / days,
        "log": sum(d * math.log(p if outcome else 1 - p) for d, p in stands) / days,
        "baseline": sum(d * 100 * (math.log2(p if outcome else 1 - p) + 1)
                        for d, p in stands) / days,
        "days": days,
    }


def assert_scores(got, expected):
    assert got is not None
    assert got["days"] == expected["days"]
    for name in RULES:
        assert got[name] == pytest.approx(expected[name], abs=EXACT)


def test_two_forecasts_weighted_by_days():
    got = time_averaged([(day(0), 0.2), (day(10), 0.8)], opened=day(0), closes=day(40), outcome=1)
    assert got is not None
    assert got["brier"] == pytest.approx((10 * 0.64 + 30 * 0.04) / 40, abs=EXACT)
    assert_scores(got, expected_average([(10, 0.2), (30, 0.8)], 1))


def test_forecasts_on_or_after_close_are_ignored():
    forecasts = [(day(0), 0.2), (day(10), 0.8), (day(40), 0.01), (day(45), 0.99)]
    got = time_averaged(forecasts, opened=day(0), closes=day(40), outcome=0)
    assert_scores(got, expected_average([(10, 0.2), (30, 0.8)], 0))


def test_resolving_yes_early_closes_the_window():
    # deadline day 40, resolved YES on day 25: the caller passes the earlier day as `closes`
    forecasts = [(day(0), 0.2), (day(10), 0.8), (day(30), 0.9)]
    got = time_averaged(forecasts, opened=day(0), closes=day(25), outcome=1)
    assert_scores(got, expected_average([(10, 0.2), (15, 0.8)], 1))


def test_days_before_the_first_forecast_are_not_counted():
    got = time_averaged([(day(5), 0.3)], opened=day(0), closes=day(40), outcome=1)
    assert_scores(got, expected_average([(35, 0.3)], 1))


def test_a_forecast_made_before_opening_stands_from_opening():
    forecasts = [(day(-20), 0.9), (day(-5), 0.4), (day(10), 0.6)]
    got = time_averaged(forecasts, opened=day(0), closes=day(40), outcome=0)
    assert_scores(got, expected_average([(10, 0.4), (30, 0.6)], 0))


def test_same_day_duplicates_the_later_wins_and_order_does_not_matter():
    forecasts = [(day(10), 0.8), (day(0), 0.5), (day(0), 0.2)]
    got = time_averaged(forecasts, opened=day(0), closes=day(40), outcome=1)
    assert_scores(got, expected_average([(10, 0.2), (30, 0.8)], 1))


def test_a_certain_forecast_that_never_stood_does_not_poison_the_average():
    # 0% before opening, replaced on the opening day: zero days, so no -inf (or NaN)
    forecasts = [(day(-3), 0.0), (day(0), 0.5)]
    got = time_averaged(forecasts, opened=day(0), closes=day(10), outcome=1)
    assert_scores(got, expected_average([(10, 0.5)], 1))


def test_a_certain_forecast_that_stood_and_was_wrong_scores_minus_infinity():
    got = time_averaged([(day(0), 0.0), (day(5), 0.5)], opened=day(0), closes=day(10), outcome=1)
    assert got is not None
    assert got["log"] == got["baseline"] == -math.inf
    assert got["brier"] == pytest.approx((5 * 1 + 5 * 0.25) / 10, abs=EXACT)


@pytest.mark.parametrize(
    ("forecasts", "opened", "closes"),
    [
        ([], day(0), day(40)),
        ([(day(40), 0.5), (day(50), 0.5)], day(0), day(40)),
        ([(day(0), 0.5)], day(10), day(10)),
    ],
)
def test_nothing_covered_is_none(forecasts, opened, closes):
    assert time_averaged(forecasts, opened=opened, closes=closes, outcome=1) is None


# --- calibration -------------------------------------------------------------------------------


def test_calibration_table_by_hand():
    table = calibration_table([0.05, 0.15, 0.12, 0.95], [0, 1, 0, 1])
    assert len(table) == 10
    assert [row["n"] for row in table] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert table[1]["mean_forecast"] == pytest.approx(0.135, abs=EXACT)
    assert table[1]["observed"] == 0.5
    assert table[0]["observed"] == 0.0
    assert table[9]["observed"] == 1.0
    assert table[5] == {"low": 0.5, "high": 0.6, "n": 0, "mean_forecast": None, "observed": None}


def test_one_is_in_the_last_bin_and_zero_in_the_first():
    table = calibration_table([0.0, 1.0], [0, 1])
    assert table[0]["n"] == table[-1]["n"] == 1
    assert table[-1]["high"] == 1.0


def test_a_forecast_on_an_edge_opens_the_upper_bin():
    # bins are [low, high): 0.1 belongs to [0.1, 0.2), just under it to [0, 0.1)
    table = calibration_table([0.1, np.nextafter(0.1, 0)], [1, 0])
    assert table[0]["n"] == 1 and table[0]["observed"] == 0.0
    assert (table[1]["low"], table[1]["n"], table[1]["observed"]) == (0.1, 1, 1.0)


@pytest.mark.parametrize("bins", [3, 5, 7, 10, 20, 22, 45])
def test_every_edge_opens_its_bin(bins):
    # k/bins·bins is not always k in floating point (15/22·22 = 14.999…)
    p = np.arange(bins + 1) / bins
    table = calibration_table(p, np.zeros_like(p), bins=bins)
    assert [row["n"] for row in table] == [1] * (bins - 1) + [2]
    assert [row["low"] for row in table] == list(p[:-1])


def test_calibration_needs_a_bin():
    with pytest.raises(ValueError):
        calibration_table([0.5], [1], bins=0)


# --- summarise ---------------------------------------------------------------------------------


def test_summarise_nothing():
    summary = summarise([])
    assert summary["questions"] == []
    assert summary["overall"] == {
        "n": 0, "brier": None, "log": None, "baseline": None,
        "time_averaged": {"n": 0, "brier": None, "log": None, "baseline": None},
    }
    assert [row["n"] for row in summary["calibration"]] == [0] * 10


def test_summarise_two_questions():
    averaged = {"brier": 0.1, "log": -0.3, "baseline": 50.0, "days": 40}
    rows = [
        {"question": "a", "probability": 0.7, "outcome": 1, "time_averaged": averaged},
        {"question": "b", "probability": 0.25, "outcome": 0, "time_averaged": None,
         "deadline": "2025-06-30"},
    ]
    summary = summarise(rows)
    a, b = summary["questions"]
    assert a["question"] == "a" and b["deadline"] == "2025-06-30"
    assert "brier" not in rows[0]  # the input is not changed
    assert a["brier"] == pytest.approx(0.09, abs=EXACT)
    assert b["log"] == pytest.approx(math.log(0.75), abs=EXACT)
    assert b["baseline"] == pytest.approx(100 * (math.log2(0.75) + 1), abs=EXACT)
    overall = summary["overall"]
    assert overall["n"] == 2
    assert overall["brier"] == pytest.approx((0.09 + 0.0625) / 2, abs=EXACT)
    assert overall["log"] == pytest.approx((math.log(0.7) + math.log(0.75)) / 2, abs=EXACT)
    assert overall["time_averaged"] == {"n": 1, "brier": 0.1, "log": -0.3, "baseline": 50.0}
    assert summary["calibration"][2]["n"] == 1 and summary["calibration"][7]["n"] == 1


# --- reliability diagram -----------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "table",
    [
        calibration_table([], []),
        calibration_table([0.05, 0.15, 0.12, 0.95, 1.0], [0, 1, 0, 1, 1]),  # some bins empty
        calibration_table(*random_forecasts(3, 200), bins=5),
    ],
    ids=["empty", "sparse", "full"],
)
def test_plot_reliability_writes_a_png(tmp_path, table):
    path = tmp_path / "reliability.png"
    plot_reliability(table, path, title="Calibration")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["reliability.png"]  # no temporary left


def test_the_examples_in_the_docstrings_hold():
    import doctest

    from forecast import scoring

    failed, tried = doctest.testmod(scoring)
    assert tried >= 10 and failed == 0
