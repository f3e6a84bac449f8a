"""Claims of the source document, as data: what it says, about which scenario, how sure, how good.

A claims file (`priors/claims/*.toml`) names its source document and the source's rating, then
lists claims (`[[claims]]`: a probability that a scenario happens within a horizon) and triggers
(`[[triggers]]`: past events the document names as causes of the escalation). Every quote must
occur verbatim in the document; the loader checks it.

Verbal probabilities follow ICD 203 (Office of the Director of National Intelligence, Analytic
Standards, 2015); source ratings follow the Admiralty code (NATO STANAG 2511).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from forecast.errors import PriorSpecError
from forecast.schema import (
    COUNTRY_CODE,
    EVENT_CODE,
    EVENT_CODE_RULE,
    Table,
    did_you_mean,
    inside,
    read_toml,
    show_value,
)

Term = Literal[
    "almost no chance", "very unlikely", "unlikely", "roughly even chance", "likely",
    "very likely", "almost certain",
]
#: ICD 203's probability range of each verbal term.
TERM_RANGES: dict[Term, tuple[float, float]] = {
    "almost no chance": (0.01, 0.05),
    "very unlikely": (0.05, 0.20),
    "unlikely": (0.20, 0.45),
    "roughly even chance": (0.45, 0.55),
    "likely": (0.55, 0.80),
    "very likely": (0.80, 0.95),
    "almost certain": (0.95, 0.99),
}
Reliability = Literal["A", "B", "C", "D", "E", "F"]
RELIABILITY: dict[Reliability, str] = {
    "A": "completely reliable", "B": "usually reliable", "C": "fairly reliable",
    "D": "not usually reliable", "E": "unreliable", "F": "reliability cannot be judged",
}
CREDIBILITY: dict[int, str] = {
    1: "confirmed by other sources", 2: "probably true", 3: "possibly true", 4: "doubtful",
    5: "improbable", 6: "truth cannot be judged",
}
WEEKS_PER_YEAR = 365.2425 / 7
_UNIT_WEEKS = {"day": 1 / 7, "week": 1.0, "month": WEEKS_PER_YEAR / 12, "year": WEEKS_PER_YEAR}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(day|week|month|year)s?\s*")


@dataclass(frozen=True)
class Horizon:
    """How far ahead a claim looks: a duration in weeks, or `ever` (weeks is None)."""

    text: str
    weeks: float | None

    @classmethod
    def parse(cls, text: str) -> Horizon:
        """Parse "3 months", "24 months", "4 weeks", "2 years", "10 days" or "ever"."""
        if text.strip() == "ever":
            return cls("ever", None)
        match = _DURATION.fullmatch(text)
        if not match or not 0 < float(match[1]) < math.inf:
            raise ValueError(f"expected a duration like '3 months', '4 weeks' or 'ever', "
                             f"got {show_value(text)}")
        return cls(text.strip(), float(match[1]) * _UNIT_WEEKS[match[2]])

    @property
    def phrase(self) -> str:
        """"within 24 months", or "eventually"."""
        return "eventually" if self.weeks is None else f"within {self.text}"

    def __le__(self, other: Horizon) -> bool:
        return other.weeks is None or (self.weeks is not None and self.weeks <= other.weeks)


@dataclass(frozen=True)
class Rating:
    """An Admiralty rating: source reliability A–F and information credibility 1–6."""

    reliability: Reliability
    credibility: int

    def __str__(self) -> str:
        return f"{self.reliability}{self.credibility}"


@dataclass(frozen=True)
class Source:
    """The document the claims come from, and why it is rated as it is."""

    title: str
    author: str
    document: Path
    published: dt.date
    reliability: Reliability
    rationale: str


@dataclass(frozen=True)
class Claim:
    """A probability that `scenario` happens within `horizon` of the source's publication.

    Exactly one of `term` (ICD 203) or `interval` is set; a numeric `probability` p given in the
    file is kept as `point` and read as precisely as the verbal scale allows (see
    `forecast.priors`).
    """

    id: str
    quote: str
    scenario: str
    horizon: Horizon
    term: Term | None
    interval: tuple[float, float] | None
    point: float | None
    rating: Rating
    note: str | None
    file: Path

    @property
    def stated(self) -> tuple[float, float]:
        """The probability range the claim states."""
        if self.term is not None:
            return TERM_RANGES[self.term]
        if self.interval is not None:
            return self.interval
        assert self.point is not None
        return (self.point, self.point)

    @property
    def wording(self) -> str:
        if self.term is not None:
            return self.term
        if self.interval is not None:
            return f"{self.interval[0]:.0%}–{self.interval[1]:.0%}"
        return f"{self.point:.0%}"


@dataclass(frozen=True)
class Trigger:
    """A past event the document names as a cause of the escalation, with its date and coding."""

    id: str
    quote: str
    date: dt.date
    date_precision: Literal["day", "month", "year"]
    actor1: str
    actor2: str
    event_code: str
    rating: Rating
    note: str | None


@dataclass(frozen=True)
class ClaimSet:
    """Everything one claims file says."""

    file: Path
    source: Source
    claims: tuple[Claim, ...]
    triggers: tuple[Trigger, ...]


_SOURCE_KEYS = ("title", "author", "document", "published", "reliability", "rationale")
_CLAIM_KEYS = ("id", "quote", "scenario", "horizon", "term", "probability", "interval",
               "reliability", "credibility", "note")
_TRIGGER_KEYS = ("id", "quote", "date", "date_precision", "actor1", "actor2", "event_code",
                 "reliability", "credibility", "note")


def load_claims(path: Path, scenarios: set[str] | None = None, *,
                root: Path | None = None) -> ClaimSet:
    """Read and validate a claims file.

    Parameters
    ----------
    path
        The TOML file.
    scenarios
        Known scenario ids; a claim naming another scenario is an error. None skips the check.
    root
        The folder the source document must lie in (the priors folder); None: anywhere.

    Raises
    ------
    PriorSpecError
        Listing every problem in the file, each with its key path.
    """
    problems: list[str] = []
    top = Table(read_toml(path, PriorSpecError), "", problems, ("source", "claims", "triggers"))
    source = _read_source(top.table("source", _SOURCE_KEYS), path, root)
    document = _read_document(source, problems) if source else None
    default = source.reliability if source else "F"
    claim_tables = top.tables("claims", _CLAIM_KEYS)
    trigger_tables = top.tables("triggers", _TRIGGER_KEYS, required=False)
    seen: set[str] = set()
    for t in claim_tables + trigger_tables:
        ident, quote = t.data.get("id"), t.data.get("quote")
        if isinstance(ident, str) and ident in seen:
            t.problem("id", f"duplicate id {show_value(ident)}")
        if isinstance(ident, str):
            seen.add(ident)
        if document is not None and isinstance(quote, str) and quote not in document:
            t.problem("quote", f"not found verbatim in {source.document.name}")  # type: ignore[union-attr]
    claims = [_read_claim(t, path, default, scenarios) for t in claim_tables]
    triggers = [_read_trigger(t, default) for t in trigger_tables]
    if problems or source is None:
        raise PriorSpecError(path, problems or ["source: missing"])
    return ClaimSet(path, source, tuple(c for c in claims if c), tuple(t for t in triggers if t))


def _read_source(table: Table | None, path: Path, root: Path | None) -> Source | None:
    if table is None:
        return None
    title, author, document = table.text("title"), table.text("author"), table.text("document")
    published, reliability = table.date("published"), _reliability(table)
    rationale = table.text("rationale")
    resolved = None
    if document is not None:
        resolved = inside(root or Path("/"), path.parent / document)
        if resolved is None:
            where = f"a file inside {root}" if root else "a file path"
            table.problem("document", f"expected {where}, got {show_value(document)}")
    if (title is None or author is None or resolved is None or published is None
            or reliability is None or rationale is None):
        return None
    return Source(title, author, resolved, published, reliability, rationale)


def _read_document(source: Source, problems: list[str]) -> str | None:
    try:
        return source.document.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"source.document: cannot read {source.document} "
                        f"({exc.strerror or exc})")
    except UnicodeDecodeError:
        problems.append(f"source.document: {source.document} is not UTF-8 text")
    return None


def _reliability(table: Table, default: str | None = None) -> Reliability | None:
    value = table.text("reliability", required=default is None)
    if value is None:
        return default  # type: ignore[return-value]
    if value not in RELIABILITY:
        table.problem("reliability",
                      f"expected a letter A–F (Admiralty code), got {show_value(value)}")
        return None
    return value  # type: ignore[return-value]


def _rating(table: Table, default: Reliability) -> Rating | None:
    reliability = _reliability(table, default)
    credibility = table.get("credibility", int, what="an integer 1–6 (Admiralty code)")
    if credibility is not None and credibility not in CREDIBILITY:
        table.problem("credibility",
                      f"expected an integer 1–6 (Admiralty code), got {show_value(credibility)}")
        return None
    if reliability is None or credibility is None:
        return None
    return Rating(reliability, credibility)


def _read_claim(t: Table, path: Path, default: Reliability,
                scenarios: set[str] | None) -> Claim | None:
    ident, quote, scenario = t.text("id"), t.text("quote"), t.text("scenario")
    if scenario is not None and scenarios is not None and scenario not in scenarios:
        t.problem("scenario",
                  f"unknown scenario {show_value(scenario)}" + did_you_mean(scenario, scenarios))
        scenario = None
    horizon = None
    if (text := t.text("horizon")) is not None:
        try:
            horizon = Horizon.parse(text)
        except ValueError as exc:
            t.problem("horizon", str(exc))
    term, interval, point = _read_probability(t)
    rating, note = _rating(t, default), t.text("note", required=False)
    if None in (ident, quote, scenario, horizon, rating) or (term, interval, point) == (None,) * 3:
        return None
    return Claim(ident, quote, scenario, horizon, term, interval, point, rating, note, path)  # type: ignore[arg-type]


def _read_probability(t: Table) -> tuple[Term | None, tuple[float, float] | None, float | None]:
    given = [k for k in ("term", "probability", "interval") if t.has(k)]
    if len(given) != 1:
        t.problem("term", "give exactly one of term, probability or interval"
                  + (f" (found {', '.join(given)})" if given else ""))
        return None, None, None
    if given == ["term"]:
        term = t.text("term")
        if term is not None and term not in TERM_RANGES:
            t.problem("term", f"unknown term {show_value(term)}; expected one of ICD 203's "
                      + ", ".join(f"'{k}'" for k in TERM_RANGES) + did_you_mean(term, TERM_RANGES))
            return None, None, None
        return term, None, None  # type: ignore[return-value]
    if given == ["probability"]:
        p = t.number("probability")
        if p is not None and not 0 < p < 1:
            t.problem("probability", f"expected a probability strictly between 0 and 1, got {p:g}")
            return None, None, None
        return None, None, p
    bounds = t.get("interval", list, what="[low, high]")
    if bounds is None:
        return None, None, None
    if (len(bounds) != 2 or not all(isinstance(b, int | float) and not isinstance(b, bool)
                                    for b in bounds)
            or not 0 < bounds[0] < bounds[1] < 1):
        t.problem("interval",
                  f"expected [low, high] with 0 < low < high < 1, got {show_value(bounds)}")
        return None, None, None
    return None, (float(bounds[0]), float(bounds[1])), None


def _read_trigger(t: Table, default: Reliability) -> Trigger | None:
    ident, quote, date = t.text("id"), t.text("quote"), t.date("date")
    precision = t.text("date_precision")
    if precision is not None and precision not in ("day", "month", "year"):
        t.problem("date_precision",
                  f"expected 'day', 'month' or 'year', got {show_value(precision)}")
        precision = None
    actors = []
    for key in ("actor1", "actor2"):
        actor = t.text(key)
        if actor is not None and not COUNTRY_CODE.fullmatch(actor):
            t.problem(key, f"expected a CAMEO country code like 'RUS', got {show_value(actor)}")
            actor = None
        actors.append(actor)
    code = t.text("event_code")
    if code is not None and not EVENT_CODE.fullmatch(code):
        t.problem("event_code", f"expected a CAMEO event code ({EVENT_CODE_RULE}), "
                  f"got {show_value(code)}")
        code = None
    rating, note = _rating(t, default), t.text("note", required=False)
    if None in (ident, quote, date, precision, *actors, code, rating):
        return None
    return Trigger(ident, quote, date, precision, actors[0], actors[1], code, rating, note)  # type: ignore[arg-type]


assert set(get_args(Term)) == set(TERM_RANGES)
