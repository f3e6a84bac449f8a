"""Tournament submissions, one module per platform behind a small base (`base`):

- `metaculus`: binary forecasts posted over HTTP;
- `forecastbench`: a forecast set (JSON file);
- `spreadsheet`: a plain CSV.

A platform with settings (`[platforms.<name>]` in forecast.toml) has ``Settings``-style
dataclasses, ``parse``, ``example_toml``, ``payload(rows, settings) -> (payload, warnings)``
and ``validate(payload)``, which checks the platform's rules before anything is written or
sent. This module lists them and reads the `[platforms]` table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

from forecast.platforms import forecastbench, metaculus, spreadsheet
from forecast.platforms.base import SubmissionRow
from forecast.schema import Table

__all__ = ["JSON_PLATFORMS", "PLATFORMS", "Platform", "Platforms", "SubmissionRow",
           "example_platforms_toml", "forecastbench", "metaculus", "parse_platforms",
           "spreadsheet"]

Platform = Literal["metaculus", "forecastbench", "csv"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)
#: The platforms whose payload is JSON built with their `[platforms.<name>]` settings.
JSON_PLATFORMS = {metaculus.NAME: metaculus, forecastbench.NAME: forecastbench}


@dataclass(frozen=True)
class Platforms:
    """The `[platforms]` table: each platform's settings, or None when it is not configured."""

    metaculus: metaculus.MetaculusConfig | None = None
    forecastbench: forecastbench.ForecastBenchConfig | None = None


def parse_platforms(t: Table | None) -> Platforms:
    """Read the `[platforms]` table, recording every problem through `t`.

    Parameters
    ----------
    t : Table or None
        The `[platforms]` table (allowed keys ``metaculus`` and ``forecastbench``), or None when
        forecast.toml has none.

    Returns
    -------
    Platforms
        A platform whose table had a problem is None; the caller raises `ConfigError` with
        ``t.problems`` when that list is not empty.
    """
    if t is None:
        return Platforms()
    return Platforms(metaculus.parse(t), forecastbench.parse(t))


def example_platforms_toml(question_ids: list[str], *, due: dt.date) -> str:
    """The `[platforms]` section of the simulated example workspace, with fake question ids, so
    that the example cannot be submitted to a real question by accident.

    Parameters
    ----------
    question_ids : list of str
        Our question ids, in the order to list them (duplicates are listed once).
    due : datetime.date
        The ForecastBench forecast set's due date; the question set is named after it.

    Returns
    -------
    str
        TOML text that `parse_platforms` reads without problems.
    """
    ids = list(dict.fromkeys(question_ids))
    return ("# Tournament platforms (`forecast submit`). SIMULATED example: every question id\n"
            "# below is FAKE. Map your questions to the platforms' real ids before posting.\n"
            + metaculus.example_toml(ids) + "\n" + forecastbench.example_toml(ids, due=due))
