"""What every platform module shares: the submitted row, and the checks of a payload's fields.

A platform module (`forecast.platforms.metaculus`, ...) has its `[platforms.<name>]` settings
(``Settings``, ``parse``, ``example_toml``), ``payload(rows, settings) -> (payload, warnings)``
and ``validate(payload)``; `forecast.platforms` lists them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from forecast.errors import SubmissionError
from forecast.schema import Table, did_you_mean, show_value

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class SubmissionRow:
    """One question's latest forecast, as submitted."""

    question: str
    scenario: str
    deadline: dt.date
    as_of: dt.date
    probability: float
    interval: tuple[float, float]
    reasoning: str


def unmapped(row: SubmissionRow, platform: str) -> str:
    """The warning for a row the platform's question map leaves out."""
    return (f"{row.question}: skipped, not mapped to a {platform} question "
            f"([platforms.{platform}.questions])")


def question_map(t: Table) -> Table | None:
    """The required `questions` table: its keys are our question ids, so any key is allowed."""
    raw = t.data.get("questions")
    return t.table("questions", raw.keys() if isinstance(raw, dict) else ())


def toml_key(text: str) -> str:
    """`text` as a TOML basic string."""
    escaped = "".join(f"\\{c}" if c in '"\\' else f"\\u{ord(c):04x}" if c < " " or c == "\x7f"
                      else c for c in text)
    return f'"{escaped}"'


def check_keys(item: object, where: str, allowed: Sequence[str], required: Sequence[str]) -> None:
    if not isinstance(item, dict):
        raise SubmissionError(f"{where}: expected an object, got {kind(item)}")
    for key in item:
        if key not in allowed:
            raise SubmissionError(
                f"{where}: unexpected key {key!r}{did_you_mean(str(key), allowed)}")
    for key in required:
        if key not in item:
            raise SubmissionError(f"{where}.{key}: missing")


def check_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SubmissionError(f"{where}: expected a non-empty string, got {show_value(value)}")
    return value


def iso_date(value: object) -> dt.date | None:
    """`value` as a date if it is a string YYYY-MM-DD naming a real day, else None."""
    try:
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    return None


def check_date(value: object, where: str) -> dt.date:
    if (day := iso_date(value)) is None:
        raise SubmissionError(f"{where}: expected an ISO date (YYYY-MM-DD), got {value!r}")
    return day


def check_probability(value: object, where: str, low: float, high: float) -> None:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not (math.isfinite(value) and low <= value <= high)):
        raise SubmissionError(f"{where}: expected a number in [{low:g}, {high:g}], "
                              f"got {show_value(value)}")


def kind(value: object) -> str:
    names = {"dict": "an object", "list": "a list", "str": "a string"}
    return names.get(type(value).__name__, type(value).__name__)
