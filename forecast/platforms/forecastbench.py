"""ForecastBench: a forecast set (a JSON file) for a question set.

A question set is named after its due date ("2026-11-22-llm.json"): it is released at 00:00 UTC
on that day and forecasts are due by 23:59:59 UTC. ForecastBench reads the due date from the
name's first 10 characters, not from ``forecast_due_date``, so the two must agree. Dataset
questions resolve at fixed horizons after the due date; market questions whenever their market
does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forecast.errors import SubmissionError
from forecast.platforms.base import (
    SubmissionRow,
    check_date,
    check_keys,
    check_probability,
    check_text,
    iso_date,
    kind,
    question_map,
    toml_key,
    unmapped,
)
from forecast.schema import Table, did_you_mean, show_value

NAME = "forecastbench"
DATASET_SOURCES = ("acled", "dbnomics", "fred", "wikipedia", "yfinance")
MARKET_SOURCES = ("infer", "manifold", "metaculus", "polymarket")
DATASET_HORIZON_DAYS = (7, 30, 90, 180, 365, 1095, 1825, 3650)
_TOP = ("organization", "model", "model_organization", "question_set")
_KEYS = (*_TOP, "forecast_due_date", "questions")
_FORECAST_SET_KEYS = (*_TOP, "forecast_due_date", "forecasts")
_FORECAST_FIELDS = ("id", "source", "forecast", "resolution_date", "reasoning", "direction")


@dataclass(frozen=True)
class ForecastBenchQuestion:
    """Where one of our questions sits in a ForecastBench question set."""

    id: str
    source: str
    direction: str | None = None


@dataclass(frozen=True)
class ForecastBenchConfig:
    """`[platforms.forecastbench]`: the forecast set's header and the question mapping."""

    organization: str
    model: str
    model_organization: str
    question_set: str
    forecast_due_date: dt.date
    questions: dict[str, ForecastBenchQuestion] = field(default_factory=dict)


def parse(top: Table) -> ForecastBenchConfig | None:
    """`[platforms.forecastbench]` of the `[platforms]` table `top`, or None (absent, or with a
    problem recorded through `top`)."""
    before = len(top.problems)  # including the unknown keys found by `table`
    t = top.table("forecastbench", _KEYS, required=False)
    if t is None:
        return None
    header = {key: t.text(key) for key in _TOP}
    due = t.date("forecast_due_date")
    named = header["question_set"]
    if named is not None and due is not None and (problem := question_set_problem(named, due)):
        t.problem("question_set", problem)
    questions: dict[str, ForecastBenchQuestion] = {}
    if (q := question_map(t)) is not None:
        for ours in q.data:
            if q.get(ours, dict, what='a table { id = "...", source = "..." }') is None:
                continue
            entry = q.table(ours, ("id", "source", "direction"))
            assert entry is not None
            ident, source = entry.text("id"), entry.text("source")
            direction = entry.text("direction", required=False)
            if source is not None and source not in (*DATASET_SOURCES, *MARKET_SOURCES):
                entry.problem("source", _unknown_source(source))
            if ident is not None and source is not None:
                questions[ours] = ForecastBenchQuestion(ident, source, direction)
    if len(t.problems) > before:
        return None
    return ForecastBenchConfig(**header, forecast_due_date=due,  # type: ignore[arg-type]
                               questions=questions)


def question_set_problem(question_set: str, due: dt.date) -> str | None:
    """Why `question_set` is not the question set due on `due`, or None.

    ForecastBench takes the due date from ``question_set[:10]`` and ignores
    ``forecast_due_date``: a name that does not start with the due date ("latest-llm.json") is
    dropped, and one with another date is scored against that date's questions.
    """
    named = iso_date(question_set[:10])
    if named is None:
        return (f"expected the name of the question set due on {due}, starting with that date "
                f'("{due}-llm.json"), got {show_value(question_set)}')
    if named != due:
        return (f"{show_value(question_set)} is the question set due on {named}, not on "
                f"forecast_due_date {due} (ForecastBench reads the due date from the name)")
    return None


def as_of_problem(as_of: dt.date, config: ForecastBenchConfig) -> str | None:
    """Why a forecast as of `as_of` does not belong in the forecast set due on
    ``config.forecast_due_date``, or None: the question set is released at 00:00 UTC on the due
    date and forecasts are due by 23:59:59 UTC, so only an update as of that day fits it."""
    due = config.forecast_due_date
    if as_of == due:
        return None
    return (f"the latest update is as of {as_of}, not ForecastBench's forecast_due_date {due} "
            "(its question set is out at 00:00 UTC that day, forecasts are due by 23:59:59 UTC)")


def _unknown_source(source: str) -> str:
    known = (*DATASET_SOURCES, *MARKET_SOURCES)
    return (f"unknown ForecastBench source {source!r}{did_you_mean(source, known)}; "
            f"expected one of {', '.join(sorted(known))}")


def example_toml(question_ids: list[str], *, due: dt.date) -> str:
    """The example's `[platforms.forecastbench]`: FAKE ids "FAKE-0001", ... from the market
    source "infer" (so no horizon rule applies), in a question set named after `due`."""
    questions = "".join(f'{toml_key(q)} = {{ id = "FAKE-{i + 1:04d}", source = "infer" }}\n'
                        for i, q in enumerate(question_ids))
    return (
        "[platforms.forecastbench]\n"
        'organization = "example (simulated)"\n'
        'model = "forecast toolkit (simulated example)"\n'
        'model_organization = "example (simulated)"\n'
        f'question_set = "{due.isoformat()}-llm.json"\n'
        f"forecast_due_date = {due.isoformat()}\n"
        "\n"
        "# our question id -> ForecastBench question. FAKE ids; \"infer\" is a market source.\n"
        "[platforms.forecastbench.questions]\n"
        f"{questions}"
    )


def payload(rows: Sequence[SubmissionRow],
                          config: ForecastBenchConfig) -> tuple[dict[str, Any], list[str]]:
    """A ForecastBench forecast set (JSON object) for the mapped rows.

    Parameters
    ----------
    rows : sequence of SubmissionRow
    config : ForecastBenchConfig

    Returns
    -------
    payload : dict
        The header (organization, model, model_organization, question_set, forecast_due_date)
        and ``forecasts``: one ``{id, source, forecast, resolution_date, reasoning}`` per mapped
        row, with ``direction`` when the mapping gives one; resolution_date is the row's deadline.
    warnings : list of str
        One line for each row left out because it is not mapped.
    """
    forecasts: list[dict[str, Any]] = []
    warnings: list[str] = []
    for row in rows:
        q = config.questions.get(row.question)
        if q is None:
            warnings.append(unmapped(row, NAME))
            continue
        item: dict[str, Any] = {"id": q.id, "source": q.source, "forecast": row.probability,
                                "resolution_date": row.deadline.isoformat(),
                                "reasoning": row.reasoning}
        if q.direction is not None:
            item["direction"] = q.direction
        forecasts.append(item)
    payload = {"organization": config.organization, "model": config.model,
               "model_organization": config.model_organization,
               "question_set": config.question_set,
               "forecast_due_date": config.forecast_due_date.isoformat(), "forecasts": forecasts}
    return payload, warnings


def validate(payload: object) -> None:
    """Check a ForecastBench forecast set; raise `SubmissionError` at the first problem.

    Rules: the header fields are non-empty strings, forecast_due_date an ISO date, and
    question_set starts with it (`question_set_problem`);
    ``forecasts`` is a non-empty list of ``{id, source, forecast, resolution_date, reasoning}``
    (optional ``direction``) with forecast a probability in [0, 1]; no two forecasts share
    (id, source, resolution_date, direction); a dataset question's resolution_date is the due date
    plus 7, 30, 90, 180, 365, 1095, 1825 or 3650 days. The message is one line naming the field,
    e.g. ``forecasts[3].resolution_date: ...``.
    """
    if not isinstance(payload, dict):
        raise SubmissionError(
            f"forecastbench: expected a JSON object (a forecast set), got {kind(payload)}")
    check_keys(payload, "forecastbench", _FORECAST_SET_KEYS, _FORECAST_SET_KEYS)
    for key in (*_TOP, "forecast_due_date"):
        check_text(payload[key], key)
    due = check_date(payload["forecast_due_date"], "forecast_due_date")
    if (problem := question_set_problem(payload["question_set"], due)) is not None:
        raise SubmissionError(f"question_set: {problem}")
    forecasts = payload["forecasts"]
    if not isinstance(forecasts, list) or not forecasts:
        raise SubmissionError(f"forecasts: expected a non-empty list, got {show_value(forecasts)}")
    first: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(forecasts):
        where = f"forecasts[{i}]"
        check_keys(item, where, _FORECAST_FIELDS, _FORECAST_FIELDS[:-1])
        check_text(item["id"], f"{where}.id")
        source = check_text(item["source"], f"{where}.source")
        if source not in (*DATASET_SOURCES, *MARKET_SOURCES):
            raise SubmissionError(f"{where}.source: {_unknown_source(source)}")
        check_probability(item["forecast"], f"{where}.forecast", 0.0, 1.0)
        resolution = check_date(item["resolution_date"], f"{where}.resolution_date")
        check_text(item["reasoning"], f"{where}.reasoning")
        direction = item.get("direction")
        if "direction" in item:
            check_text(direction, f"{where}.direction")
        row = (item["id"], source, resolution, direction)
        if row in first:
            raise SubmissionError(f"{where}: same id, source, resolution_date and direction as "
                                  f"forecasts[{first[row]}]")
        first[row] = i
        days = (resolution - due).days
        if source in DATASET_SOURCES and days not in DATASET_HORIZON_DAYS:
            raise SubmissionError(
                f"{where}.resolution_date: {resolution} is {days} days after forecast_due_date "
                f"{due}; {source} questions resolve "
                f"{', '.join(map(str, DATASET_HORIZON_DAYS[:-1]))} or "
                f"{DATASET_HORIZON_DAYS[-1]} days after it")
