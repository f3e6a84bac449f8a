"""Weekly series for the model: counts of scenario-rule and indicator events, and event volume.

Weeks end on the as-of date and run backwards in steps of 7 days, so every week is complete:
week w covers the days (w - 7, w]. The `week` coordinate holds each week's last day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from forecast.events import filter_sql
from forecast.scenarios import EventFilter, Indicator, Scenario, all_indicators

if TYPE_CHECKING:
    import xarray as xr


def week_ends(start: dt.date, as_of: dt.date) -> np.ndarray:
    """Last days of the complete weeks from `start` to `as_of` (oldest first), as datetime64[D]."""
    n = (as_of - start).days // 7
    if n < 1:
        raise ValueError(f"no complete week between {start} and {as_of}")
    end = np.datetime64(as_of, "D")
    return end - 7 * np.arange(n - 1, -1, -1)


def make_series(weeks: np.ndarray, scenario_events: dict[str, np.ndarray],
                indicator_events: dict[str, np.ndarray], volume: np.ndarray, *,
                events_before: dict[str, int] | None = None,
                weeks_before: int = 0, counter: Collection[str] = ()) -> xr.Dataset:
    """The model's input: ``scenario_events (scenario, week)``, ``indicator_events (indicator,
    week)`` and ``volume (week)``, all integer counts; the history before the first week:
    ``scenario_events_before (scenario)`` and ``weeks_before``, the number of weeks with data
    before it; and ``counter (scenario)``, which scenarios are counter-scenarios
    (`forecast.scenarios`)."""
    def stack(counts: dict[str, np.ndarray]) -> np.ndarray:
        if not counts:
            return np.zeros((0, len(weeks)), dtype="int64")
        return np.stack([np.asarray(v, dtype="int64") for v in counts.values()])

    import xarray as xr  # here: only fits need it, and it takes 0.4 s to import

    return xr.Dataset(
        {
            "scenario_events": (("scenario", "week"), stack(scenario_events)),
            "indicator_events": (("indicator", "week"), stack(indicator_events)),
            "volume": ("week", np.asarray(volume, dtype="int64")),
            "scenario_events_before": ("scenario", np.array(
                [(events_before or {}).get(s, 0) for s in scenario_events], dtype="int64")),
            "weeks_before": ((), int(weeks_before)),
            "counter": ("scenario", np.array([s in counter for s in scenario_events], dtype=bool)),
        },
        coords={"scenario": list(scenario_events), "indicator": list(indicator_events),
                "week": weeks},
    )


def window(series: xr.Dataset, last: int, weeks: int) -> xr.Dataset:
    """The `weeks` weeks of `series` that end with week index `last`, with everything before
    them summarised as `weekly_series` does (rule events, and weeks with data)."""
    first = max(last + 1 - weeks, 0)
    early = series.isel(week=slice(0, first))
    out = series.isel(week=slice(first, last + 1)).copy()
    out["scenario_events_before"] = (series.scenario_events_before
                                     + early.scenario_events.sum("week"))
    out["weeks_before"] = series.weeks_before + int((early.volume > 0).sum())
    return out


def _filter(flt: EventFilter) -> tuple[str, list]:
    return filter_sql(flt.actor1, flt.actor2, flt.codes, flt.min_sources)


def weekly_series(con: duckdb.DuckDBPyConnection, scenarios: dict[str, Scenario], *,
                  start: dt.date, as_of: dt.date,
                  known_until: dt.date | None = None) -> xr.Dataset:
    """Weekly counts of stored events meeting each scenario's rule and each indicator's filter,
    and the week's total event volume (the store holds only the region's events).

    Only scenarios with a rule of their own get a row (a union is derived from its members).
    `known_until` leaves out rule and indicator events after that day, but not the volume: the
    weeks after it are then quiet weeks (used by `forecast.explain`). Every stored event before
    the first week is summarised: each rule's count, and the weeks (on the same weekly grid)
    with any event.
    """
    weeks = week_ends(start, as_of)
    first = weeks[0] - np.timedelta64(7, "D")

    def counts(where: str, params: list, until: dt.date) -> np.ndarray:
        rows = con.execute(
            f"SELECT datediff('day', date, ?::DATE) // 7 AS back, count(*) FROM events "
            f"WHERE date <= ?::DATE AND date > ?::DATE AND {where} GROUP BY back",
            [as_of, until, first.astype(dt.date), *params]).fetchall()
        out = np.zeros(len(weeks), dtype="int64")
        for back, n in rows:
            out[len(weeks) - 1 - back] = n
        return out

    until = min(as_of, known_until or as_of)
    ruled = {s.id: _filter(s.resolution) for s in scenarios.values() if s.resolution}
    rules = {s: counts(*f, until) for s, f in ruled.items()}
    indicators = {i.id: counts(*_filter(i.filter), until)
                  for i in all_indicators(scenarios).values()}
    def count(sql: str, params: list) -> int:
        return (con.execute(sql, params).fetchone() or (0,))[0]

    day_before = first.astype(dt.date)
    before = {s: count(f"SELECT count(*) FROM events WHERE date <= ?::DATE AND date <= ?::DATE "
                       f"AND {where}", [day_before, until, *params])
              for s, (where, params) in ruled.items()}
    weeks_before = count("SELECT count(DISTINCT datediff('day', date, ?::DATE) // 7) FROM events "
                         "WHERE date <= ?::DATE", [as_of, day_before])
    return make_series(weeks, rules, indicators, counts("TRUE", [], as_of),
                       events_before=before, weeks_before=weeks_before,
                       counter={s.id for s in scenarios.values() if s.counter})


def indicator_counts(con: duckdb.DuckDBPyConnection,
                     indicators: dict[str, Indicator]) -> dict[str, int]:
    """Stored events matching each indicator's filter, over all dates."""
    counts = {}
    for ident, indicator in indicators.items():
        where, params = _filter(indicator.filter)
        row = con.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
        counts[ident] = row[0] if row else 0
    return counts


def first_qualifying(con: duckdb.DuckDBPyConnection, scenario: Scenario,
                     scenarios: dict[str, Scenario], *, since: dt.date,
                     until: dt.date) -> dt.date | None:
    """Date of the first stored event in [since, until] that resolves `scenario` (for a union:
    any member's rule), or None."""
    rules = [scenarios[m].resolution for m in scenario.members]
    dates = []
    for rule in rules:
        where, params = _filter(rule)  # type: ignore[arg-type]
        (day,) = con.execute(f"SELECT min(date) FROM events WHERE date BETWEEN ? AND ? AND {where}",
                             [since, until, *params]).fetchone() or (None,)
        if day is not None:
            dates.append(day)
    return min(dates, default=None)
