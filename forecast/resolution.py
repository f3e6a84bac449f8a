"""Question resolution: open, yes, no or annulled, and who or what decided it.

- **By events**: a question resolves YES on the day of its first event that meets the scenario's
  rule (with the rule's source threshold; a union's: any member's) between its opening and its
  deadline.
- **By the deadline**: NO once the deadline has passed without such an event, and only once the
  data are known to cover the deadline: the store holds an event dated on or after it. (A feed
  that stopped early leaves the question open rather than resolving it NO on missing data.)
- **By hand** (`forecast resolve`): yes, no or annulled, with a date. A resolution by hand
  overrides the events (a false positive in the coding, say); the events' verdict is still
  recorded beside it.

Every change of state is a row of the ``resolutions`` table: nothing is overwritten, so the
history shows who resolved what, when and on which evidence.
"""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Any, Literal

import duckdb

from forecast import history
from forecast.errors import QuestionError
from forecast.priors import Priors, load_priors
from forecast.scenarios import Question
from forecast.schema import did_you_mean
from forecast.series import first_qualifying
from forecast.store import transaction
from forecast.workspace import Workspace

State = Literal["open", "yes", "no", "annulled"]
MANUAL_STATES = ("yes", "no", "annulled")

def all_questions(priors: Priors) -> dict[str, Question]:
    return {q.id: q for s in priors.scenarios.values() for q in s.questions}


def find_question(priors: Priors, question: str) -> Question:
    """The question with id `question`; `QuestionError` with a did-you-mean if there is none."""
    questions = all_questions(priors)
    if question not in questions:
        raise QuestionError(f"unknown question '{question}'" + did_you_mean(question, questions)
                            + "; see `forecast show`")
    return questions[question]


def trail(con: duckdb.DuckDBPyConnection, question: str | None = None) -> list[dict[str, Any]]:
    """Every recorded resolution row (of one question), oldest first; none before the first."""
    if not history.has_table(con, "resolutions"):
        return []
    where, params = ("WHERE question = ?", [question]) if question else ("", [])
    return history.query(con, f"SELECT * FROM resolutions {where} ORDER BY recorded_at, rowid",
                        params)


def _latest(con: duckdb.DuckDBPyConnection, *, manual: bool) -> dict[str, dict[str, Any]]:
    """The latest row of every question, among the manual rows or among the automatic ones."""
    return {row["question"]: row for row in trail(con)
            if (row["method"] == "manual") == manual}


def current(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """The state in force of every question with a resolution row: the latest manual row if
    there is one, else the latest automatic row. Questions without rows are open."""
    return _latest(con, manual=False) | _latest(con, manual=True)


def data_end(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The day of the latest stored event: how far the data are known to reach."""
    row = con.execute("SELECT max(date) FROM events").fetchone()
    return row[0] if row else None


def by_events(con: duckdb.DuckDBPyConnection, priors: Priors, question: Question, *,
              until: dt.date | None) -> tuple[State, dt.date | None, str]:
    """What the events say of `question` with the data up to `until`: state, day, evidence."""
    if until is None:
        return "open", None, "no events stored"
    scenario = priors.scenarios[question.scenario]
    day = first_qualifying(con, scenario, priors.scenarios, since=question.opened,
                           until=min(until, question.deadline))
    if day is not None:
        return "yes", day, f"first event meeting the {scenario.id} rule on {day}"
    if question.deadline <= until:
        return "no", question.deadline, f"no qualifying event by the deadline; data reach {until}"
    return "open", None, f"no qualifying event yet; data reach {until}"


def sync(con: duckdb.DuckDBPyConnection, priors: Priors, *, by: str) -> list[dict[str, Any]]:
    """Record the events' verdict on every question whose automatic state changed; returns the
    new rows. Call inside a transaction, holding the workspace lock."""
    end = data_end(con)
    latest_auto = _latest(con, manual=False)
    new = []
    for q in all_questions(priors).values():
        state, day, evidence = by_events(con, priors, q, until=end)
        before = latest_auto.get(q.id)
        unchanged = (before["state"], before["resolved_on"]) == (state, day) if before else (
            state == "open")
        if not unchanged:
            new.append(_record(con, q.id, state, day, "events" if state != "no" else "deadline",
                               evidence, by))
    return new


def resolve_by_hand(con: duckdb.DuckDBPyConnection, priors: Priors, question: str, state: str,
                    *, day: dt.date | None, note: str | None,
                    today: dt.date) -> tuple[dict[str, Any], list[str]]:
    """Record a resolution by hand; returns the row and warnings (e.g. the events disagree).

    Raises
    ------
    QuestionError
        For an unknown question, a state other than yes/no/annulled, or a date outside the
        question's life (a YES must fall between its opening and its deadline).
    """
    q = find_question(priors, question)
    if state not in MANUAL_STATES:
        raise QuestionError(f"state must be one of {', '.join(MANUAL_STATES)}, got '{state}'")
    day = day or (q.deadline if state == "no" else min(today, q.deadline))
    if day < q.opened:
        raise QuestionError(f"--date {day} is before question {question} opened ({q.opened})")
    if state == "yes" and day > q.deadline:
        raise QuestionError(f"--date {day} is after the deadline of {question} ({q.deadline}): "
                              "an event after the deadline does not resolve it YES")
    if state == "no" and today < q.deadline:
        raise QuestionError(f"{question} cannot resolve NO before its deadline ({q.deadline})")
    if state == "no" and day < q.deadline:
        raise QuestionError(f"--date {day} is before the deadline of {question} "
                              f"({q.deadline}): a question resolves NO only at its deadline")
    events_state, _, evidence = by_events(con, priors, q, until=data_end(con))
    warnings = []
    if events_state != "open" and events_state != state:
        warnings.append(f"the events say {events_state} ({evidence}); your resolution "
                        f"'{state}' overrides them")
    text = f"by hand{': ' + note if note else ''} (events: {evidence})"
    return _record(con, question, state, day, "manual", text, user()), warnings


def _record(con: duckdb.DuckDBPyConnection, question: str, state: str, day: dt.date | None,
            method: str, evidence: str, by: str) -> dict[str, Any]:
    con.execute("INSERT INTO resolutions (question, state, resolved_on, method, evidence, "
                "resolved_by) VALUES (?, ?, ?, ?, ?, ?)",
                [question, state, day, method, evidence, by])
    return {"question": question, "state": state, "resolved_on": day, "method": method,
            "evidence": evidence, "resolved_by": by}


def resolve(ws: Workspace, question: str, state: str, *, day: dt.date | None,
            note: str | None, today: dt.date) -> tuple[dict[str, Any], list[str]]:
    """`resolve_by_hand` in the workspace, under its write lock, in one transaction."""
    with ws.writing() as con:
        return resolve_by_hand(con, load_priors(ws.priors_dir), question, state, day=day,
                               note=note, today=today)


def sync_workspace(ws: Workspace, con: duckdb.DuckDBPyConnection, *, by: str
                   ) -> list[dict[str, Any]]:
    """`sync` on the workspace's store `con` (write lock held), in one transaction."""
    history.ensure_schema(con)
    with transaction(con):
        return sync(con, load_priors(ws.priors_dir), by=by)


def workspace_trail(ws: Workspace, question: str) -> list[dict[str, Any]]:
    """`trail` of one question in the workspace's store (none before the store exists)."""
    if not ws.store_path.exists():
        return []
    with ws.store(read_only=True) as con:
        return trail(con, question)


def user() -> str:
    """Who is resolving or judging: the login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"
