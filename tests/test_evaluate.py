"""Scores of the workspace's resolved questions (hand computations) and backtests."""

import datetime as dt
import json
import math
import shutil

import pytest

from cli import main
from forecast import evaluate, history, resolution
from forecast.events import import_events
from forecast.fit import SamplerConfig
from forecast.priors import load_priors
from forecast.series import first_qualifying
from forecast.store import open_store, transaction

TODAY = dt.date(2026, 11, 26)
TOL = 1e-12


def _record(con, as_of, probabilities):
    run_id = f"run-{as_of}"
    run = {f: 0 for f in history.RUN_FIELDS} | {
        "run_id": run_id, "as_of": as_of, "data_hash": "", "priors_hash": "", "code_version": "",
        "posterior_file": "", "worst": "", "converged": True, "allow_unconverged": False,
        "simulated": False}
    rows = [{"question": q, "scenario": q.rsplit("-by-", 1)[0], "deadline": q.rsplit("-by-")[1],
             "probability": p, "interval": [p, p], "status": "open"}
            for q, p in probabilities.items()]
    history.record_run(con, run, rows)


@pytest.fixture
def scored(workspace, tmp_path):
    path = tmp_path / "e.csv"
    volume = "".join(f"{dt.date(2025, 12, 20) + dt.timedelta(days=3 * i)},AZE,TUR,042,1,v{i},"
                     "volume only: the data cover the questions' window\n" for i in range(65))
    path.write_text("date,actor1,actor2,event_code,num_sources,source_url,note\n"
                    "2026-03-04,RUS,AZE,163,2,u1,hybrid rule: YES on March 4\n" + volume)
    priors = load_priors(workspace.priors_dir)
    with workspace.store() as con:
        import_events(con, path, fmt="native")
        with transaction(con):
            resolution.sync(con, priors, by="test")
            _record(con, dt.date(2026, 2, 1), {"hybrid-retaliation-by-2026-06-30": 0.3,
                                               "proxy-strikes-by-2026-06-30": 0.1})
            _record(con, dt.date(2026, 4, 1), {"hybrid-retaliation-by-2026-06-30": 1.0,
                                               "proxy-strikes-by-2026-06-30": 0.2})
            _record(con, dt.date(2026, 7, 5), {"proxy-strikes-by-2026-06-30": 0.0})
        return evaluate.score_workspace(con, priors, today=TODAY)


def test_each_question_is_scored_on_its_last_forecast_made_while_open(scored):
    rows = {r["question"]: r for r in scored.questions}
    assert set(rows) == {"hybrid-retaliation-by-2026-06-30", "proxy-strikes-by-2026-06-30"}
    hybrid, proxy = rows["hybrid-retaliation-by-2026-06-30"], rows["proxy-strikes-by-2026-06-30"]
    # hybrid resolved YES on March 4: the April forecast (1.0, made once resolved) does not count
    assert (hybrid["outcome"], hybrid["probability"]) == (1, 0.3)
    assert hybrid["brier"] == pytest.approx(0.49, abs=TOL)
    assert hybrid["log"] == pytest.approx(math.log(0.3), abs=TOL)
    assert hybrid["baseline"] == pytest.approx(100 * (math.log2(0.3) + 1), abs=TOL)
    assert (proxy["outcome"], proxy["probability"]) == (0, 0.2)
    assert proxy["brier"] == pytest.approx(0.04, abs=TOL)
    assert scored.overall["brier"] == pytest.approx((0.49 + 0.04) / 2, abs=TOL)


def test_the_time_average_weighs_each_forecast_by_the_days_it_stood(scored):
    proxy = next(r for r in scored.questions if r["question"].startswith("proxy"))
    # 0.1 from Feb 1 to Apr 1 (59 days), 0.2 from Apr 1 to the Jun 30 deadline (90 days)
    averaged = proxy["time_averaged"]
    assert averaged["days"] == 149
    assert averaged["brier"] == pytest.approx((59 * 0.01 + 90 * 0.04) / 149, abs=TOL)
    assert averaged["log"] == pytest.approx((59 * math.log(0.9) + 90 * math.log(0.8)) / 149,
                                            abs=TOL)


def test_questions_not_scored_say_why(scored):
    reasons = {r["question"]: r["reason"] for r in scored.not_scored}
    assert reasons["hybrid-retaliation-by-2026-12-31"] == "deadline not passed"
    assert reasons["any-retaliation-by-2026-06-30"] == "no forecast made while open"
    assert reasons["proxy-strikes-by-2026-12-31"] == "open"


def test_score_through_the_cli_writes_a_reliability_diagram(runner, workspace, scored, tmp_path):
    plot = tmp_path / "reliability.png"
    result = runner.invoke(main, ["--workspace", str(workspace.root), "score", "--plot",
                                  str(plot)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 questions: Brier 0.265, log ")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Not scored yet: " in result.stderr


def test_a_backtest_plan_needs_steps_whose_questions_have_resolved(workspace, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("date,actor1,actor2,event_code,num_sources,source_url,note\n"
                    "2026-01-04,AZE,TUR,042,1,u1,volume\n2026-03-01,AZE,TUR,042,1,u2,volume\n")
    with workspace.store() as con:
        import_events(con, path, fmt="native")
        bp = evaluate.plan(con, start=dt.date(2026, 1, 1), end=None, step_weeks=2,
                           horizons=(4,), window=8)
        # on the weekly grid ending on the last day, and a 4-week question after the last step
        assert bp.steps == [dt.date(2026, 1, 4), dt.date(2026, 1, 18), dt.date(2026, 2, 1)]
        with pytest.raises(Exception, match="no backtest step between"):
            evaluate.plan(con, start=None, end=None, step_weeks=1, horizons=(4,), window=52)


def test_a_default_backtest_starts_where_the_data_become_continuous(runner, workspace, tmp_path):
    """One old row used to plan a step every 4 weeks from it: 572 steps over years without
    data. The default start now counts the window from after the last gap of 4+ weeks."""
    path = tmp_path / "e.csv"
    days = [dt.date(2015, 3, 1)] + [dt.date(2025, 1, 5) + dt.timedelta(days=3 * i)
                                    for i in range(200)]
    path.write_text("date,actor1,actor2,event_code,num_sources,source_url,note\n" + "".join(
        f"{d},AZE,TUR,042,1,u{i},volume\n" for i, d in enumerate(days)))
    with workspace.store() as con:
        import_events(con, path, fmt="native")
        bp = evaluate.plan(con, start=None, end=None, step_weeks=4, horizons=(4,), window=26)
    assert (bp.data_start, bp.continuous_from) == (dt.date(2015, 3, 1), dt.date(2025, 1, 5))
    assert bp.steps[0] >= dt.date(2025, 1, 5) + dt.timedelta(weeks=26)
    assert len(bp.steps) < 20
    result = runner.invoke(main, ["--workspace", str(workspace.root), "backtest", "--window",
                                  "26", "--end", "2024-01-01"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: no backtest step between 2025-07-06 and 2024-01-01: the "
                             "events run from 2015-03-01 (continuous from 2025-01-05) to "
                             "2026-08-25; each step needs a later 4-week horizon to resolve "
                             "(lower --start, --window or --horizons)\n")


@pytest.mark.slow
def test_backtest_through_the_cli(runner, fitted_example, tmp_path):
    plot = tmp_path / "bt.png"
    args = ["--workspace", str(fitted_example), "backtest", "--start", "2026-05-01", "--step",
            "13w", "--horizons", "4,13", "--window", "12", "--draws", "100", "--tune", "100",
            "--allow-unconverged", "--json"]
    before = set((fitted_example / "posteriors").glob("backtest-*.jsonl"))
    result = runner.invoke(main, [*args, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "step 1/2, about " in result.stderr and "step 2/2  (did" in result.stderr  # ETA
    data = json.loads(result.stdout)
    assert data["steps"] == ["2026-07-26", "2026-10-25"]
    assert set(data["methods"]) == {"model", "claims_only", "base_rate"}
    # 7 scenarios x 2 horizons at the first step; at the second, 13 weeks run past the data
    assert data["questions"] == len(data["forecasts"]) == 7 * 2 + 7
    con = open_store(fitted_example / "store.duckdb", read_only=True)
    try:
        priors = load_priors(fitted_example / "priors")
        for row in data["forecasts"]:
            as_of, deadline = (dt.date.fromisoformat(row[k]) for k in ("as_of", "deadline"))
            hit = first_qualifying(con, priors.scenarios[row["scenario"]],
                                              priors.scenarios, since=as_of + dt.timedelta(1),
                                              until=deadline)
            assert row["outcome"] == (hit is not None)
            assert all(0 <= row[m] <= 1 for m in ("model", "claims_only", "base_rate"))
    finally:
        con.close()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["unconverged"] == 2 and data["dropped"] == [] and data["refitted"] == 0

    # every finished step is kept: the same backtest again fits nothing, and one killed after
    # its first step (its checkpoint then ends in a line cut short) resumes at the second
    again = runner.invoke(main, args)
    assert "resuming: 2 of 2 steps were finished" in again.stderr and "step " not in again.stderr
    assert json.loads(again.stdout) == {**data, "resumed": 2}
    (checkpoint,) = set((fitted_example / "posteriors").glob("backtest-*.jsonl")) - before
    first = checkpoint.read_text().strip().splitlines()[0]
    checkpoint.write_text(f"{first}\n{{\"as_of\": \"2026-10-2")
    killed = runner.invoke(main, args)
    assert "resuming: 1 of 2 steps" in killed.stderr and "step 2/2  (did" in killed.stderr
    resumed = json.loads(killed.stdout)
    assert resumed["resumed"] == 1 and resumed["questions"] == data["questions"]
    assert ([r for r in resumed["forecasts"] if r["as_of"] == "2026-07-26"]
            == [r for r in data["forecasts"] if r["as_of"] == "2026-07-26"])


@pytest.mark.slow
def test_a_backtest_refits_a_failing_step_then_drops_it(runner, fitted_example):
    """2 x 50 draws cannot pass the gate (bulk ESS >= 400), nor 2 x 100 in the third fit: each
    step is fitted three times, then dropped; with every step dropped there is nothing to
    score."""
    result = runner.invoke(main, ["--workspace", str(fitted_example), "backtest", "--start",
                                  "2026-05-01", "--step", "13w", "--horizons", "4",
                                  "--window", "12", "--draws", "50", "--tune", "100"])
    assert result.exit_code == 1
    assert result.stderr.count("did not pass the gate, refits included: dropped") == 2
    assert result.stderr.endswith("Error: every step's last fit failed the diagnostics gate "
                                  "(2 dropped): raise --draws/--tune, or pass "
                                  "--allow-unconverged to score them anyway\n")


@pytest.mark.slow
def test_a_backtest_forecast_uses_only_the_events_known_on_its_day(fitted_example, tmp_path):
    """Changing the events after the last step (not the data's last day) changes the outcomes,
    not the forecasts."""
    sampler = SamplerConfig(draws=100, tune=100)

    def run(root):
        con = open_store(root / "store.duckdb")
        try:
            bp = evaluate.plan(con, start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 10),
                               step_weeks=1, horizons=(26,), window=12)
            assert bp.steps == [dt.date(2026, 5, 3), dt.date(2026, 5, 10)]
            return evaluate.backtest(con, load_priors(root / "priors"), bp, sampler=sampler,
                                     cache_dir=root / "posteriors",
                                     allow_unconverged=True).forecasts
        finally:
            con.close()

    changed = tmp_path / "changed"
    shutil.copytree(fitted_example, changed)
    path = tmp_path / "later.csv"
    path.write_text("date,actor1,actor2,event_code,num_sources,source_url,note\n"
                    "2026-06-15,IRN,AZE,190,5,u1,a proxy strike after the last step\n")
    con = open_store(changed / "store.duckdb")
    con.execute("DELETE FROM events WHERE date > DATE '2026-05-10' AND date < DATE '2026-11-20'")
    import_events(con, path, fmt="native")
    con.close()
    before, after = run(fitted_example), run(changed)
    def forecasts(rows):
        return [(r["as_of"], r["scenario"], r["model"], r["claims_only"], r["base_rate"])
                for r in rows]

    assert len(before) == 14 and forecasts(before) == forecasts(after)
    changed_outcomes = {(r["as_of"], r["scenario"]) for r, s in zip(before, after, strict=True)
                        if r["outcome"] != s["outcome"]}
    # the proxy strike resolves its scenario (and the union, unless it already had an event)
    assert {s for _, s in changed_outcomes} <= {"proxy-strikes", "any-retaliation"}
    assert {day for day, s in changed_outcomes if s == "proxy-strikes"} == {
        dt.date(2026, 5, 3), dt.date(2026, 5, 10)}
