"""Resolution by events, by the deadline (only once the data cover it) and by hand."""

import datetime as dt
import json

import pytest

from cli import main
from forecast import resolution
from forecast.errors import QuestionError
from forecast.events import import_events
from forecast.inputs import read_inputs
from forecast.priors import load_priors
from forecast.store import transaction

HYBRID_MID = "hybrid-retaliation-by-2026-06-30"
HYBRID_END = "hybrid-retaliation-by-2026-12-31"
ANY_MID = "any-retaliation-by-2026-06-30"
PROXY_MID = "proxy-strikes-by-2026-06-30"
HEADER = "date,actor1,actor2,event_code,num_sources,source_url,note\n"


def _import(ws, tmp_path, rows: str, name="e.csv"):
    path = tmp_path / name
    path.write_text(HEADER + rows)
    with ws.store() as con:
        import_events(con, path, fmt="native")
        with transaction(con):
            return resolution.sync(con, load_priors(ws.priors_dir), by="test")


def _states(ws):
    with ws.store() as con:
        return {q: (r["state"], r["resolved_on"], r["method"])
                for q, r in resolution.current(con).items()}


def test_an_event_meeting_the_rule_resolves_yes_on_its_day_and_its_unions_too(workspace, tmp_path):
    new = _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n"
                                       "2026-02-01,RUS,AZE,163,1,u2,one source: below the rule\n")
    states = _states(workspace)
    for q in (HYBRID_MID, HYBRID_END, ANY_MID):
        assert states[q] == ("yes", dt.date(2026, 3, 4), "events")
    assert PROXY_MID not in states  # still open: nothing recorded
    assert {r["question"] for r in new} >= {HYBRID_MID, HYBRID_END, ANY_MID}
    # a second sync with no new data records nothing
    assert _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n", "b.csv") == []


def test_no_only_once_the_data_cover_the_deadline(workspace, tmp_path):
    _import(workspace, tmp_path, "2026-06-29,AZE,TUR,042,1,u1,volume only\n")
    assert PROXY_MID not in _states(workspace)  # the data stop a day before the deadline
    new = _import(workspace, tmp_path, "2026-06-30,AZE,TUR,042,1,u2,volume only\n", "b.csv")
    assert _states(workspace)[PROXY_MID] == ("no", dt.date(2026, 6, 30), "deadline")
    assert any(r["question"] == PROXY_MID and "data reach 2026-06-30" in r["evidence"]
               for r in new)
    # an event after the deadline does not resolve the question
    _import(workspace, tmp_path, "2026-07-02,IRN,AZE,190,5,u3,after the deadline\n", "c.csv")
    assert _states(workspace)[PROXY_MID][0] == "no"


def test_a_resolution_by_hand_overrides_the_events_and_both_stay_in_the_trail(workspace, tmp_path):
    _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n")
    priors = load_priors(workspace.priors_dir)
    with workspace.store() as con:
        row, warnings = resolution.resolve_by_hand(con, priors, HYBRID_MID, "annulled",
                                                   day=None, note="miscoded event",
                                                   today=dt.date(2026, 11, 26))
        assert row["resolved_on"] == dt.date(2026, 6, 30)  # today is after the deadline
        assert warnings == ["the events say yes (first event meeting the hybrid-retaliation rule "
                            "on 2026-03-04); your resolution 'annulled' overrides them"]
        trail = resolution.trail(con, HYBRID_MID)
        _, resolved = read_inputs(con, priors, dt.date(2026, 7, 5), 8)
    assert [r["method"] for r in trail] == ["events", "manual"]
    assert "miscoded event" in trail[1]["evidence"] and trail[1]["resolved_by"]
    assert _states(workspace)[HYBRID_MID] == ("annulled", dt.date(2026, 6, 30), "manual")
    assert resolved[HYBRID_MID] == ("annulled", dt.date(2026, 6, 30))
    assert resolved[HYBRID_END] == ("yes", dt.date(2026, 3, 4))


@pytest.mark.parametrize(("question", "state", "day", "message"), [
    ("hybrid-retaliation-by-2026-0630", "yes", None,
     "unknown question 'hybrid-retaliation-by-2026-0630' (did you mean "
     "'hybrid-retaliation-by-2026-06-30'?); see `forecast show`"),
    (HYBRID_MID, "maybe", None, "state must be one of yes, no, annulled, got 'maybe'"),
    (HYBRID_MID, "yes", dt.date(2025, 12, 31),
     f"--date 2025-12-31 is before question {HYBRID_MID} opened (2026-01-01)"),
    (HYBRID_MID, "yes", dt.date(2026, 7, 1),
     f"--date 2026-07-01 is after the deadline of {HYBRID_MID} (2026-06-30): an event after "
     "the deadline does not resolve it YES"),
    (HYBRID_END, "no", None,
     f"{HYBRID_END} cannot resolve NO before its deadline (2026-12-31)"),
    (HYBRID_MID, "no", dt.date(2026, 6, 1),
     f"--date 2026-06-01 is before the deadline of {HYBRID_MID} (2026-06-30): a question "
     "resolves NO only at its deadline"),
])
def test_bad_resolutions_by_hand_are_refused(workspace, question, state, day, message):
    with workspace.store() as con, pytest.raises(QuestionError) as err:
        resolution.resolve_by_hand(con, load_priors(workspace.priors_dir), question, state,
                                   day=day, note=None, today=dt.date(2026, 11, 26))
    assert str(err.value) == message


def test_resolve_and_history_through_the_cli(runner, workspace, tmp_path):
    ws = ["--workspace", str(workspace.root)]
    result = runner.invoke(main, [*ws, "resolve", PROXY_MID, "yes", "--date", "2026-05-02",
                                  "--note", "seen in the press", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resolved_on"] == "2026-05-02"
    bad = runner.invoke(main, [*ws, "resolve", PROXY_MID, "perhaps"])
    assert bad.exit_code == 2 and "'perhaps' is not one of" in bad.stderr
    trail = runner.invoke(main, [*ws, "resolve", PROXY_MID, "--json"])
    assert [(r["state"], r["method"]) for r in json.loads(trail.stdout)] == [("yes", "manual")]
    text = runner.invoke(main, [*ws, "history", PROXY_MID])
    assert text.exit_code == 0
    assert f"{PROXY_MID}: yes on 2026-05-02 by hand: seen in the press" in text.stdout


def test_importing_events_resolves_the_questions_they_settle(runner, workspace, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(HEADER + "2026-03-04,RUS,AZE,163,2,u1,sanctions\n")
    ws = ["--workspace", str(workspace.root)]
    result = runner.invoke(main, [*ws, "events", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"resolved: {HYBRID_MID}: yes on 2026-03-04 first event meeting" in result.stderr
    trail = json.loads(runner.invoke(main, [*ws, "resolve", HYBRID_MID, "--json"]).stdout)
    assert [(r["state"], r["method"], r["resolved_by"]) for r in trail] == [
        ("yes", "events", "forecast events import")]
