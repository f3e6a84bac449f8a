"""Resolution by events, by the deadline (only once the data cover it) and by hand."""

import datetime as dt
import json
from pathlib import Path

import pytest

from cli import main
from forecast import resolution
from forecast.errors import QuestionError
from forecast.events import import_events
from forecast.inputs import read_inputs
from forecast.priors import load_priors
from forecast.scenarios import Verdict
from forecast.store import open_store, transaction

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
        return {q: (r.state, r.resolved_on, r.method)
                for q, r in resolution.current(con).items()}


def test_an_event_meeting_the_rule_resolves_yes_on_its_day_and_its_unions_too(workspace, tmp_path):
    new = _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n"
                                       "2026-02-01,RUS,AZE,163,1,u2,one source: below the rule\n")
    states = _states(workspace)
    for q in (HYBRID_MID, HYBRID_END, ANY_MID):
        assert states[q] == ("yes", dt.date(2026, 3, 4), "events")
    assert PROXY_MID not in states  # still open: nothing recorded
    assert {r.question for r in new} >= {HYBRID_MID, HYBRID_END, ANY_MID}
    # a second sync with no new data records nothing
    assert _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n", "b.csv") == []


def _volume(first: dt.date, last: dt.date, every: int = 3, start: int = 0) -> str:
    """Rows of background events every `every` days from `first` to `last`."""
    days = [first + dt.timedelta(days=i) for i in range(0, (last - first).days + 1, every)]
    return "".join(f"{d},AZE,TUR,042,1,v{start + i},volume only\n"
                   for i, d in enumerate([*days, last]))


def test_no_only_once_the_data_cover_the_deadline(workspace, tmp_path):
    _import(workspace, tmp_path, _volume(dt.date(2025, 12, 20), dt.date(2026, 6, 29)))
    assert PROXY_MID not in _states(workspace)  # the data stop a day before the deadline
    new = _import(workspace, tmp_path, "2026-06-30,AZE,TUR,042,1,u2,volume only\n", "b.csv")
    assert _states(workspace)[PROXY_MID] == ("no", dt.date(2026, 6, 30), "deadline")
    assert any(r.question == PROXY_MID and "the data cover 2026-01-01 to 2026-06-30 without "
               "a gap" in r.evidence for r in new)
    # an event after the deadline does not resolve the question
    _import(workspace, tmp_path, "2026-07-02,IRN,AZE,190,5,u3,after the deadline\n", "c.csv")
    assert _states(workspace)[PROXY_MID][0] == "no"


def test_events_long_after_a_deadline_do_not_resolve_it_no(workspace, tmp_path):
    """Four hand-coded events of November 2026 used to close every 2026-06-30 question NO,
    across 18 months without any data: every command now says open, awaiting data."""
    _import(workspace, tmp_path, "".join(f"2026-11-{d:02},AZE,TUR,042,1,u{d},hand-coded\n"
                                         for d in (3, 9, 17, 25)))
    assert PROXY_MID not in _states(workspace)
    priors = load_priors(workspace.priors_dir)
    with workspace.store() as con:
        _, resolved = read_inputs(con, priors, dt.date(2026, 11, 29), 52)
        verdict, evidence = resolution.by_events(
            con, priors, resolution.find_question(priors, PROXY_MID), until=dt.date(2026, 11, 29),
            known=resolution.coverage(con))
    assert resolved[PROXY_MID] == verdict == ("awaiting data", None, 181)
    assert evidence == ("the deadline has passed without a qualifying event, but the data miss "
                        "181 day(s) of 2026-01-01 to 2026-06-30 (first 2026-01-01 to 2026-06-30): "
                        "open until they are imported")


def test_resolve_names_the_days_a_question_awaits(runner, workspace, tmp_path):
    _import(workspace, tmp_path, "2026-11-03,AZE,TUR,042,1,u1,hand-coded\n")
    result = runner.invoke(main, ["--workspace", str(workspace.root), "resolve", PROXY_MID])
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"{PROXY_MID}: open (the deadline has passed without a qualifying "
                             "event, but the data miss 181 day(s) of 2026-01-01 to 2026-06-30 "
                             "(first 2026-01-01 to 2026-06-30): open until they are imported)\n")


def test_a_stretch_without_any_event_inside_the_window_keeps_it_open(workspace, tmp_path):
    """One file spanning the window is not enough: 10 days in it without any event are a gap
    in the data (a feed that was down), until a file fills them."""
    _import(workspace, tmp_path, _volume(dt.date(2025, 12, 20), dt.date(2026, 3, 1))
            + _volume(dt.date(2026, 3, 12), dt.date(2026, 7, 10), start=100))
    assert PROXY_MID not in _states(workspace)
    with workspace.store() as con:
        gaps = resolution.coverage(con).missing(dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    assert gaps == [(dt.date(2026, 3, 2), dt.date(2026, 3, 11))]
    _import(workspace, tmp_path, "2026-03-06,AZE,TUR,042,1,w1,volume only\n", "b.csv")
    assert _states(workspace)[PROXY_MID][0] == "no"


def test_a_resolution_by_hand_overrides_the_events_and_both_stay_in_the_trail(workspace, tmp_path):
    _import(workspace, tmp_path, "2026-03-04,RUS,AZE,163,2,u1,sanctions\n")
    priors = load_priors(workspace.priors_dir)
    with workspace.store() as con:
        row, warnings = resolution.resolve_by_hand(con, priors, HYBRID_MID, "annulled",
                                                   day=None, note="miscoded event",
                                                   today=dt.date(2026, 11, 26))
        assert row.resolved_on == dt.date(2026, 6, 30)  # today is after the deadline
        assert warnings == ["the events say yes (first event meeting the hybrid-retaliation rule "
                            "on 2026-03-04); your resolution 'annulled' overrides them"]
        trail = resolution.trail(con, HYBRID_MID)
        _, resolved = read_inputs(con, priors, dt.date(2026, 7, 5), 8)
    assert [r.method for r in trail] == ["events", "manual"]
    assert "miscoded event" in trail[1].evidence and trail[1].resolved_by
    assert _states(workspace)[HYBRID_MID] == ("annulled", dt.date(2026, 6, 30), "manual")
    assert resolved[HYBRID_MID] == Verdict("annulled", dt.date(2026, 6, 30))
    assert resolved[HYBRID_END] == Verdict("yes", dt.date(2026, 3, 4))


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


DATA = Path(__file__).resolve().parent / "data"


def test_an_import_spans_the_days_its_rows_were_coded(tmp_path):
    """A GDELT 2.0 export of 2019-10-24 14:30 holds events dated back to 2018: it covers the day
    GDELT coded them (DATEADDED), not a year. The GDELT 1.0 sample mixes two daily files of 2013
    and 2016: its span runs between them, and the years without an event stay uncovered."""
    con = open_store(tmp_path / "store.duckdb")
    try:
        import_events(con, DATA / "gdelt2-20191024143000.export.tsv", region=None)
        import_events(con, DATA / "gdelt1-sample.tsv", region=None)
        spans = con.execute("SELECT format, first_day, last_day FROM imports ORDER BY 1")
        assert spans.fetchall() == [("gdelt1", dt.date(2013, 2, 3), dt.date(2016, 7, 28)),
                                    ("gdelt2", dt.date(2019, 10, 24), dt.date(2019, 10, 24))]
        assert con.execute("SELECT min(date) FROM events WHERE source_format = 'gdelt2'"
                           ).fetchone()[0] < dt.date(2019, 1, 1)
        cover = resolution.coverage(con)
        assert cover.missing(dt.date(2014, 1, 1), dt.date(2014, 1, 31)) == [
            (dt.date(2014, 1, 1), dt.date(2014, 1, 31))]
    finally:
        con.close()


def test_a_store_from_before_import_spans_gets_them_from_its_events(tmp_path):
    path = tmp_path / "store.duckdb"
    con = open_store(path)
    (tmp_path / "e.csv").write_text(HEADER + "2026-03-04,RUS,AZE,163,2,u1,x\n"
                                    "2026-03-09,AZE,TUR,042,1,u2,y\n")
    import_events(con, tmp_path / "e.csv", fmt="native")
    con.execute("ALTER TABLE imports DROP COLUMN first_day; "
                "ALTER TABLE imports DROP COLUMN last_day")
    con.close()
    read_only = open_store(path, read_only=True)  # not migrated: spans from the events
    assert resolution.coverage(read_only).spans == [(dt.date(2026, 3, 4), dt.date(2026, 3, 9))]
    read_only.close()
    con = open_store(path)
    assert con.execute("SELECT first_day, last_day FROM imports").fetchall() == [
        (dt.date(2026, 3, 4), dt.date(2026, 3, 9))]
    con.close()
