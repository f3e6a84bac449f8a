"""Read-only views of a workspace's store: its events (through the filters the scenarios
define), their counts, and the recorded forecasts. Each opens the store read-only for the call
(`matching` takes an open one).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from forecast import history
from forecast.events import event_stats, list_events
from forecast.priors import load_priors
from forecast.scenarios import EventFilter, all_indicators
from forecast.series import indicator_counts
from forecast.workspace import Workspace


def events(ws: Workspace, *, since: dt.date | None, until: dt.date | None,
           rule: EventFilter | None, limit: int | None) -> list[dict[str, Any]]:
    """Stored events by date, those meeting `rule` when given."""
    with ws.store(read_only=True) as con:
        return matching(con, since=since, until=until, rule=rule, limit=limit)


def matching(con: duckdb.DuckDBPyConnection, *, since: dt.date | None, until: dt.date | None,
             rule: EventFilter | None, limit: int | None = None) -> list[dict[str, Any]]:
    """`events` on an open store."""
    flt: dict[str, Any] = {}
    if rule is not None:
        flt = {"actor1": rule.actor1, "actor2": rule.actor2, "codes": rule.codes,
               "min_sources": rule.min_sources}
    return list_events(con, since=since, until=until, limit=limit, **flt)


def stats(ws: Workspace) -> dict[str, Any]:
    """`forecast.events.event_stats`, and the stored events matching each indicator."""
    indicators = all_indicators(load_priors(ws.priors_dir).scenarios)
    with ws.store(read_only=True) as con:
        return {**event_stats(con), "by_indicator": indicator_counts(con, indicators)}


def forecast_rows(ws: Workspace, *, question: str | None = None,
                  every: bool = False) -> list[dict[str, Any]]:
    """Recorded forecast rows (`forecast.history.question_rows`): of the latest run, of one
    question over every run, or with `every` of every run; none before the first update."""
    if not ws.store_path.exists():
        return []
    with ws.store(read_only=True) as con:
        runs = history.runs(con)
        if not runs:
            return []
        if every and question is None:
            return [row for run in runs for row in history.question_rows(con, run_id=run["run_id"])]
        return history.question_rows(con, question=question)
