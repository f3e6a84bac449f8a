"""The forecaster's judgment and its pool with the model, against hand computations."""

import math

import pytest

from forecast import judgment
from forecast.errors import QuestionError
from forecast.judgment import Aggregation, pool, pooled

TOL = 1e-12


def _logit(p):
    return math.log(p / (1 - p))


def _expit(x):
    return 1 / (1 + math.exp(-x))


def test_equal_weights_average_the_log_odds():
    # logit 0.2 = -ln 4 and logit 0.8 = ln 4: the mean is 0, so the pool is one half
    assert pool([0.2, 0.8], [1, 1], extremize=1) == pytest.approx(0.5, abs=TOL)
    # 0.9 and 0.5: mean log-odds ln(9)/2, so p = 3/4 (odds 3)
    assert pool([0.9, 0.5], [1, 1], extremize=1) == pytest.approx(0.75, abs=TOL)


def test_weights_and_extremizing():
    expected = _expit(2.5 * (3 * _logit(0.3) + 1 * _logit(0.6)) / 4)
    assert pool([0.3, 0.6], [3, 1], extremize=2.5) == pytest.approx(expected, abs=TOL)
    # extremizing moves the pool away from one half and never across it
    for p in (0.1, 0.4, 0.6, 0.9):
        e = pool([p], [1], extremize=2)
        assert abs(e - 0.5) > abs(p - 0.5) and (e - 0.5) * (p - 0.5) > 0


def test_without_a_judgment_the_pool_is_the_model_unless_extremized():
    assert pooled(0.37, None, Aggregation()) == pytest.approx(0.37, abs=TOL)
    assert pooled(0.37, None, Aggregation(extremize=2)) == pytest.approx(
        _expit(2 * _logit(0.37)), abs=TOL)
    assert pooled(0.2, 0.6, Aggregation(model_weight=0, judgment_weight=1)) == pytest.approx(
        0.6, abs=TOL)


def test_judgments_are_kept_and_the_latest_counts(workspace):
    with workspace.store() as con:
        judgment.record(con, "q", 0.2, note="first", by="me")
        judgment.record(con, "q", 0.35, note=None, by="me")
        assert judgment.latest(con)["q"]["probability"] == 0.35
        assert con.execute("SELECT count(*) FROM judgments").fetchone() == (2,)
        with pytest.raises(QuestionError, match="strictly between 0 and 1, got 1"):
            judgment.record(con, "q", 1.0, note=None, by="me")


@pytest.mark.parametrize(("text", "message"), [
    ("extremize = 0.5", "aggregation.extremize: expected a number from 1 to 1000, got 0.5"),
    ("model_weight = 1e308", "aggregation.model_weight: expected a number from 0 to 1000, got "
     "1e+308"),
    ("model_weight = nan", "aggregation.model_weight: expected a number from 0 to 1000, got nan"),
    ("extremize = 1\nmodel_weight = -1",
     "aggregation.model_weight: expected a number from 0 to 1000, got -1"),
    ("extremise = 2", "aggregation.extremise: unknown key (did you mean 'extremize'?)"),
])
def test_bad_aggregation_settings_are_one_line_naming_the_key(runner, workspace, text, message):
    from cli import main

    config = workspace.root / "forecast.toml"
    config.write_text(config.read_text().replace("model_weight = 1\n", "")
                      .replace("extremize = 1", text))
    result = runner.invoke(main, ["--workspace", str(workspace.root), "show"])
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_judgment_on_a_resolved_question_is_refused_and_a_misspelled_one_named(runner,
                                                                                 workspace):
    """judge used to accept a judgment on a resolved question silently, and history of a
    misspelled question said "no forecasts recorded"."""
    from cli import main

    def run(*args):
        return runner.invoke(main, ["--workspace", str(workspace.root), *args])

    question = "hybrid-retaliation-by-2026-12-31"
    assert run("judge", question, "0.3").exit_code == 0
    assert run("resolve", question, "yes", "--date", "2026-03-01").exit_code == 0
    refused = run("judge", question, "0.4")
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: {question} is resolved (yes on 2026-03-01): a judgment "
                              "on it would never be submitted or scored\n")
    with workspace.store(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM judgments").fetchone() == (1,)
    misspelled = run("history", "hybrid-retaliaton-by-2026-12-31")
    assert misspelled.exit_code == 1
    assert misspelled.stderr.startswith(
        "Error: unknown question 'hybrid-retaliaton-by-2026-12-31' (did you mean "
        f"'{question}'?)")
