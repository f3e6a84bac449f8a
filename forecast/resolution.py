"""Question resolution: open, yes, no or annulled, and who or what decided it.

- **By events**: a question resolves YES on the day of its first event that meets the scenario's
  rule (with the rule's source threshold; a union's: any member's) between its opening and its
  deadline.
- **By the deadline**: NO once the deadline has passed without such an event, and only if the
  data cover the question's whole window (`Coverage`): every day of it lies within the span of
  some import (its rows' first to last day; for GDELT, the days it coded them, DATEADDED), and
  no stretch of `GAP_DAYS` days or more in it has no stored event at all. Otherwise the question
  is "awaiting data": open, however long ago its deadline passed, until the missing days are
  imported. (A feed that stopped early, or a few hand-coded events long after the deadline,
  must not resolve a question NO on data nobody has.)
- **By hand** (`forecast resolve`): yes, no or annulled, with a date. A resolution by hand
  overrides the events (a false positive in the coding, say); the events' verdict is still
  recorded beside it.

Every change of state is a row of the ``resolutions`` table: nothing is overwritten, so the
history shows who resolved what, when and on which evidence.
"""

from __future__ import annotations

import bisect
import datetime as dt
import getpass
import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import duckdb
import numpy as np

from forecast import history
from forecast.errors import QuestionError
from forecast.priors import Priors, load_priors
from forecast.scenarios import Question, Verdict
from forecast.schema import did_you_mean
from forecast.series import first_qualifying
from forecast.store import has_column, transaction
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


@dataclass(frozen=True)
class Resolution:
    """One recorded change of a question's state (a row of the ``resolutions`` table)."""

    question: str
    state: str  # open, yes, no or annulled
    resolved_on: dt.date | None
    method: str  # events, deadline or manual
    evidence: str
    resolved_by: str
    recorded_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (f"{self.question}: {self.state} on {self.resolved_on or '-'} {self.evidence} "
                f"[{self.method}, {self.resolved_by}]")


def trail(con: duckdb.DuckDBPyConnection, question: str | None = None) -> list[Resolution]:
    """Every recorded resolution (of one question), oldest first; none before the first."""
    if not history.has_table(con, "resolutions"):
        return []
    where, params = ("WHERE question = ?", [question]) if question else ("", [])
    names = [f.name for f in fields(Resolution)]
    return [Resolution(*row) for row in con.execute(
        f"SELECT {', '.join(names)} FROM resolutions {where} ORDER BY recorded_at, rowid",
        params).fetchall()]


def _latest(con: duckdb.DuckDBPyConnection, *, manual: bool) -> dict[str, Resolution]:
    """The latest row of every question, among the manual rows or among the automatic ones."""
    return {r.question: r for r in trail(con) if (r.method == "manual") == manual}


def current(con: duckdb.DuckDBPyConnection) -> dict[str, Resolution]:
    """The state in force of every question with a resolution row: the latest manual row if
    there is one, else the latest automatic row. Questions without rows are open."""
    return _latest(con, manual=False) | _latest(con, manual=True)


#: Days without any stored event that make a gap in the data (the model's weeks: `forecast.model`).
GAP_DAYS = 7


@dataclass(frozen=True)
class Coverage:
    """What the stored data cover: the days each import spans and the days with an event."""

    spans: list[tuple[dt.date, dt.date]]  # (first, last) day of each import
    days: list[dt.date]  # every day with a stored event, sorted

    def missing(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        """The stretches (first, last day) of [start, end] the data do not cover: outside every
        import's span, or in a run of `GAP_DAYS` or more days without an event (a run that
        reaches past the data counts as endless)."""
        covered = np.zeros((end - start).days + 1, dtype=bool)
        for first, last in self.spans:
            lo, hi = (max(first, start) - start).days, (min(last, end) - start).days
            if hi >= lo:
                covered[lo:hi + 1] = True
        i, j = bisect.bisect_left(self.days, start), bisect.bisect_right(self.days, end)
        far = dt.timedelta(days=GAP_DAYS + 1)
        points = [self.days[i - 1] if i else start - far, *self.days[i:j],
                  self.days[j] if j < len(self.days) else end + far]
        for a, b in itertools.pairwise(points):
            if (b - a).days - 1 >= GAP_DAYS:
                covered[max((a - start).days + 1, 0):max((b - start).days, 0)] = False
        gaps = np.flatnonzero(~covered)
        runs = np.split(gaps, np.flatnonzero(np.diff(gaps) > 1) + 1) if gaps.size else []
        return [(start + dt.timedelta(days=int(r[0])), start + dt.timedelta(days=int(r[-1])))
                for r in runs]


def coverage(con: duckdb.DuckDBPyConnection, *, until: dt.date | None = None) -> Coverage:
    """The store's `Coverage` with the data known until `until` (None: all)."""
    last = until or dt.date.max
    spans = (con.execute("SELECT first_day, least(last_day, ?) FROM imports "
                         "WHERE first_day <= ?", [last, last]).fetchall()
             if has_column(con, "imports", "first_day") else  # a store not opened for writing
             con.execute("SELECT min(date), least(max(date), ?) FROM events GROUP BY file "
                         "HAVING min(date) <= ?", [last, last]).fetchall())
    days = [d for (d,) in con.execute("SELECT DISTINCT date FROM events WHERE date <= ? "
                                      "ORDER BY date", [last]).fetchall()]
    return Coverage(spans, days)


def by_events(con: duckdb.DuckDBPyConnection, priors: Priors, question: Question, *,
              until: dt.date, known: Coverage, events_until: dt.date | None = None
              ) -> tuple[Verdict, str]:
    """What the data up to `until` say of `question` (its `Verdict` then, and the evidence);
    `known` is `coverage` up to `until`. `events_until` leaves out qualifying events after it
    (the quiet weeks of `forecast.explain`)."""
    if not known.days:
        return Verdict("open"), "no events stored"
    scenario = priors.scenarios[question.scenario]
    day = first_qualifying(con, scenario, priors.scenarios, since=question.opened,
                           until=min(until, events_until or until, question.deadline))
    if day is not None:
        return Verdict("yes", day), f"first event meeting the {scenario.id} rule on {day}"
    if question.deadline > until:
        return Verdict("open"), f"no qualifying event yet; data reach {known.days[-1]}"
    gaps = known.missing(question.opened, question.deadline)
    window = f"{question.opened} to {question.deadline}"
    if not gaps:
        return (Verdict("no", question.deadline),
                f"no qualifying event by the deadline; the data cover {window} without a gap")
    days = sum((b - a).days + 1 for a, b in gaps)
    first = gaps[0][0] if gaps[0][0] == gaps[0][1] else f"{gaps[0][0]} to {gaps[0][1]}"
    return (Verdict("awaiting data", None, days),
            f"the deadline has passed without a qualifying event, but the data miss {days} "
            f"day(s) of {window} (first {first}): open until they are imported")


def verdicts(con: duckdb.DuckDBPyConnection, priors: Priors, *, until: dt.date,
             known_until: dt.date | None = None) -> dict[str, Verdict]:
    """Every question's `Verdict` as of `until` that is not open, from the data up to then
    (without the qualifying events after `known_until`, as in `forecast.series.weekly_series`)
    and the resolutions by hand made on or before `until`: the one source of a question's state
    for fits, forecasts and every command."""
    cover = coverage(con, until=until)
    out = {}
    for q in all_questions(priors).values():
        verdict, _ = by_events(con, priors, q, until=until, known=cover,
                               events_until=known_until)
        if verdict.state != "open":
            out[q.id] = verdict
    for ident, r in current(con).items():
        if r.method == "manual" and r.resolved_on is not None and r.resolved_on <= until:
            out[ident] = Verdict(r.state, r.resolved_on)
    return out


def sync(con: duckdb.DuckDBPyConnection, priors: Priors, *, by: str,
         today: dt.date | None = None) -> list[Resolution]:
    """Record the events' verdict as of `today` on every question whose automatic state changed
    ("awaiting data" is open); returns the new rows. Call inside a transaction, holding the
    workspace lock."""
    today = today or dt.date.today()
    known = coverage(con, until=today)
    latest_auto = _latest(con, manual=False)
    new = []
    for q in all_questions(priors).values():
        verdict, evidence = by_events(con, priors, q, until=today, known=known)
        state = "open" if verdict.state == "awaiting data" else verdict.state
        before = latest_auto.get(q.id)
        unchanged = (before.state, before.resolved_on) == (state, verdict.day) if before \
            else state == "open"
        if not unchanged:
            new.append(_record(con, q.id, state, verdict.day,
                               "events" if state != "no" else "deadline", evidence, by))
    return new


def resolve_by_hand(con: duckdb.DuckDBPyConnection, priors: Priors, question: str, state: str,
                    *, day: dt.date | None, note: str | None,
                    today: dt.date) -> tuple[Resolution, list[str]]:
    """Record a resolution by hand; returns it and warnings (e.g. the events disagree).

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
    verdict, evidence = by_events(con, priors, q, until=today,
                                  known=coverage(con, until=today))
    events_state = verdict.state
    warnings = []
    if events_state in ("yes", "no") and events_state != state:
        warnings.append(f"the events say {events_state} ({evidence}); your resolution "
                        f"'{state}' overrides them")
    text = f"by hand{': ' + note if note else ''} (events: {evidence})"
    return _record(con, question, state, day, "manual", text, user()), warnings


def _record(con: duckdb.DuckDBPyConnection, question: str, state: str, day: dt.date | None,
            method: str, evidence: str, by: str) -> Resolution:
    (recorded_at,) = con.execute(
        "INSERT INTO resolutions (question, state, resolved_on, method, evidence, resolved_by) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING recorded_at",
        [question, state, day, method, evidence, by]).fetchone() or (None,)
    return Resolution(question, state, day, method, evidence, by, recorded_at)


def resolve(ws: Workspace, question: str, state: str, *, day: dt.date | None,
            note: str | None, today: dt.date) -> tuple[Resolution, list[str]]:
    """`resolve_by_hand` in the workspace, under its write lock, in one transaction."""
    with ws.writing() as con:
        return resolve_by_hand(con, load_priors(ws.priors_dir), question, state, day=day,
                               note=note, today=today)


def sync_workspace(ws: Workspace, con: duckdb.DuckDBPyConnection, *, by: str
                   ) -> list[Resolution]:
    """`sync` on the workspace's store `con` (write lock held), in one transaction."""
    history.ensure_schema(con)
    with transaction(con):
        return sync(con, load_priors(ws.priors_dir), by=by)


def workspace_verdict(ws: Workspace, question: Question, *, today: dt.date
                      ) -> tuple[Verdict, str]:
    """`by_events` of one question in the workspace's store, as of `today`."""
    if not ws.store_path.exists():
        return Verdict("open"), "no events stored"
    with ws.store(read_only=True) as con:
        return by_events(con, load_priors(ws.priors_dir), question, until=today,
                         known=coverage(con, until=today))


def workspace_trail(ws: Workspace, question: str) -> list[Resolution]:
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
