"""Scenario specs (`priors/scenarios/*.toml`): resolution rules, indicators and questions.

A scenario is one way Russia may retaliate. Its resolution rule says which coded events count as
the scenario happening; its indicators are precursor events that move the shared escalation level;
its questions ask whether it happens by a deadline. A composite scenario (`union = [...]`) happens
when any of its members does, and has no rule of its own.

A counter-scenario (`counter = true`) is one the document rules out rather than one of its forms
of retaliation (direct military action: "not directly"). The model gives it a switch of its own,
outside the shared decision to retaliate, and its own priors on its rate and switch instead of
pooling them with the forms' (`forecast.model`).

Indicators and resolution rules must be disjoint: no event may match both an indicator of any
scenario and the rule of any scenario. Such an event would enter two likelihoods (the indicator's
counts and the scenario's channel), so one report would count twice, and the escalation level
would rise on the very event that resolves the question. `load_scenarios` refuses any overlap.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from forecast.errors import ScenarioSpecError
from forecast.schema import (
    COUNTRY_CODE,
    EVENT_CODE,
    EVENT_CODE_RULE,
    Table,
    did_you_mean,
    read_toml,
    show_value,
)

_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class EventFilter:
    """Coded events from any of `actor1` to any of `actor2` whose CAMEO code starts with one of
    `codes` (the CAMEO hierarchy: "19" covers 190–196), reported by >= `min_sources` sources."""

    actor1: tuple[str, ...]
    actor2: tuple[str, ...]
    codes: tuple[str, ...]
    min_sources: int

    def overlap(self, other: EventFilter) -> list[tuple[str, str]]:
        """The pairs (code of this filter, code of `other`) by which one event can match both.

        Two filters share events when their `actor1` sets intersect, their `actor2` sets
        intersect, and a code of one is a prefix of a code of the other (CAMEO codes match by
        prefix: "138" and "1381" share every 1381 event). `min_sources` never keeps them apart:
        an event reported by enough sources meets both.
        """
        if not (set(self.actor1) & set(other.actor1) and set(self.actor2) & set(other.actor2)):
            return []
        return [(mine, theirs) for mine in self.codes for theirs in other.codes
                if mine.startswith(theirs) or theirs.startswith(mine)]

    def describe(self) -> str:
        return (f"{'|'.join(self.actor1)} → {'|'.join(self.actor2)}, CAMEO "
                f"{', '.join(self.codes)}, ≥{self.min_sources} source(s)")


@dataclass(frozen=True)
class Indicator:
    """A precursor event series that loads on the shared escalation level."""

    id: str
    title: str
    filter: EventFilter


class Verdict(NamedTuple):
    """A question's state on a day (`forecast.resolution`): "open", "yes" (`day`: the first
    qualifying event's), "no" (`day`: the deadline), "annulled", or "awaiting data": the deadline
    has passed without a qualifying event, but the data miss `missing_days` days of the
    question's window, so it cannot resolve NO yet."""

    state: str
    day: dt.date | None = None
    missing_days: int = 0


@dataclass(frozen=True)
class Question:
    """Will the scenario happen between `opened` and `deadline` (inclusive)?"""

    id: str
    scenario: str
    opened: dt.date
    deadline: dt.date


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    description: str
    resolution: EventFilter | None
    union: tuple[str, ...]
    indicators: tuple[Indicator, ...]
    questions: tuple[Question, ...]
    file: Path
    counter: bool = False  # a counter-scenario (module docs)

    @property
    def members(self) -> tuple[str, ...]:
        """The scenarios whose events count for this one: a union's, or itself."""
        return self.union or (self.id,)


_SCENARIO_KEYS = ("id", "title", "description", "counter", "resolution", "union", "indicators",
                  "questions")
_FILTER_KEYS = ("actor1", "actor2", "codes", "min_sources")
_INDICATOR_KEYS = ("id", "title", *_FILTER_KEYS)
_QUESTION_KEYS = ("id", "opened", "deadline")


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file; raises `ScenarioSpecError` listing every problem."""
    problems: list[str] = []
    t = Table(read_toml(path, ScenarioSpecError), "", problems, _SCENARIO_KEYS)
    ident, title, description = t.text("id"), t.text("title"), t.text("description")
    if ident is not None and not _ID.fullmatch(ident):
        t.problem("id", f"expected lower-case words joined by '-', got {show_value(ident)}")
        ident = None
    if ident is not None and ident != path.stem:
        t.problem("id", f"must match the file name '{path.stem}', got {show_value(ident)}")
    resolution: EventFilter | None = None
    union: tuple[str, ...] = ()
    if t.has("union") == t.has("resolution"):
        t.problem("resolution", "give exactly one of resolution (a rule) or union (member ids)")
    elif t.has("union"):
        union = tuple(t.strings("union") or ())
    else:
        rule = t.table("resolution", _FILTER_KEYS)
        resolution = _read_filter(rule) if rule else None
    indicators = []
    for it in t.tables("indicators", _INDICATOR_KEYS, required=False):
        ind_id, ind_title, flt = it.text("id"), it.text("title"), _read_filter(it)
        if ind_id is not None and not _ID.fullmatch(ind_id):
            it.problem("id", f"expected lower-case words joined by '-', got {show_value(ind_id)}")
            ind_id = None
        if ind_id and ind_title and flt:
            indicators.append(Indicator(ind_id, ind_title, flt))
    questions = []
    for qt in t.tables("questions", _QUESTION_KEYS):
        opened, deadline = qt.date("opened"), qt.date("deadline")
        if opened and deadline and deadline <= opened:
            qt.problem("deadline", f"must be after opened ({opened}), got {deadline}")
            continue
        q_id = qt.text("id", required=False) or (deadline and f"{ident}-by-{deadline.isoformat()}")
        if q_id and not _ID.fullmatch(q_id):  # ids reach CSV cells and terminals: a slug only
            qt.problem("id", f"expected lower-case words joined by '-', got {show_value(q_id)}")
            continue
        if ident and opened and deadline and q_id:
            questions.append(Question(q_id, ident, opened, deadline))
    counter = t.get("counter", bool, required=False) or False
    if counter and union:
        t.problem("counter", "a union cannot be a counter-scenario: mark its members instead")
    if problems:
        raise ScenarioSpecError(path, problems)
    return Scenario(ident, title, description, resolution, union, tuple(indicators),  # type: ignore[arg-type]
                    tuple(questions), path, counter)


def _read_filter(t: Table) -> EventFilter | None:
    lists: dict[str, list[str] | None] = {}
    for key, pattern, expected in (
            ("actor1", COUNTRY_CODE, "CAMEO country codes like 'RUS'"),
            ("actor2", COUNTRY_CODE, "CAMEO country codes like 'RUS'"),
            ("codes", EVENT_CODE, f"CAMEO event codes ({EVENT_CODE_RULE})")):
        values = t.strings(key)
        if values is not None and (not values or not all(pattern.fullmatch(v) for v in values)):
            t.problem(key, f"expected a non-empty list of {expected}, got {show_value(values)}")
            values = None
        lists[key] = values
    min_sources = t.get("min_sources", int, what="an integer >= 1")
    if min_sources is not None and min_sources < 1:
        t.problem("min_sources", f"expected an integer >= 1, got {show_value(min_sources)}")
        min_sources = None
    actor1, actor2, codes = lists["actor1"], lists["actor2"], lists["codes"]
    if actor1 is None or actor2 is None or codes is None or min_sources is None:
        return None
    return EventFilter(tuple(actor1), tuple(actor2), tuple(codes), min_sources)


def load_scenarios(directory: Path) -> dict[str, Scenario]:
    """All scenario files of a directory, by id, with cross-file checks.

    Raises
    ------
    ScenarioSpecError
        For the first malformed file, or for a union naming an unknown scenario, an indicator id
        used with two different filters, or a question id used twice; then for every indicator
        that can match an event some resolution rule matches (see `overlaps`), naming the
        indicator's file, or the folder when the overlaps lie in several files.
    """
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ScenarioSpecError(directory, ["no scenario files (*.toml)"])
    scenarios = {s.id: s for s in map(load_scenario, files)}
    indicators: dict[str, Indicator] = {}
    questions: dict[str, Question] = {}
    for s in scenarios.values():
        problems = [f"union: unknown scenario {show_value(m)}" + did_you_mean(m, scenarios)
                    for m in s.union if m not in scenarios or scenarios[m].union]
        for ind in s.indicators:
            if indicators.setdefault(ind.id, ind) != ind:
                problems.append(f"indicators: {show_value(ind.id)} is defined differently in "
                                f"{scenarios[_owner(scenarios, ind.id)].file.name}")
        for q in s.questions:
            if q.id in questions:
                problems.append(f"questions: id {show_value(q.id)} is used twice")
            questions[q.id] = q
        if problems:
            raise ScenarioSpecError(s.file, problems)
    found = overlaps(scenarios)
    where = {file for file, _ in found}
    if len(where) == 1:
        raise ScenarioSpecError(where.pop(), [problem for _, problem in found])
    if found:
        raise ScenarioSpecError(directory, [f"{file.name}: {problem}" for file, problem in found])
    return scenarios


def overlaps(scenarios: dict[str, Scenario]) -> list[tuple[Path, str]]:
    """Every pair (indicator code, resolution code), across all scenarios, that one event matches.

    Returns
    -------
    list[tuple[Path, str]]
        The indicator's file and the problem, e.g. ``indicators[0].codes: 'rus-aze-military-posture'
        code 138 matches resolution code 1381 of 'caspian-corridor-sabotage' (RUS → AZE): an event
        must count in one place only``; an indicator defined in several files is reported once.
    """
    found: list[tuple[Path, str]] = []
    seen: set[str] = set()
    rules = [(s.id, s.resolution) for s in scenarios.values() if s.resolution is not None]
    for s in scenarios.values():
        for i, ind in enumerate(s.indicators):
            if ind.id in seen:
                continue
            seen.add(ind.id)
            for rule_id, rule in rules:
                for code, rule_code in ind.filter.overlap(rule):
                    actors = (f"{'|'.join(a for a in ind.filter.actor1 if a in rule.actor1)} → "
                              f"{'|'.join(a for a in ind.filter.actor2 if a in rule.actor2)}")
                    found.append((s.file, f"indicators[{i}].codes: {show_value(ind.id)} code "
                                  f"{code} matches resolution code {rule_code} of "
                                  f"{show_value(rule_id)} ({actors}): an event must count in "
                                  "one place only"))
    return found


def _owner(scenarios: dict[str, Scenario], indicator: str) -> str:
    return next(s.id for s in scenarios.values() if any(i.id == indicator for i in s.indicators))


def all_indicators(scenarios: dict[str, Scenario]) -> dict[str, Indicator]:
    """Every distinct indicator of the scenario set, by id (the model's indicator dimension)."""
    return {i.id: i for s in scenarios.values() for i in s.indicators}
