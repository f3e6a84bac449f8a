"""A plain CSV of the forecasts, for any platform that takes a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from forecast.platforms.base import SubmissionRow

NAME = "csv"
CSV_HEADER = ("question", "deadline", "probability", "interval_low", "interval_high", "as_of")


def csv_text(rows: Sequence[SubmissionRow]) -> str:
    """The plain CSV submission: one row per question, ISO dates, probabilities that round-trip.

    Columns: question, deadline, probability, interval_low, interval_high, as_of.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        low, high = row.interval
        writer.writerow([cell(row.question), row.deadline.isoformat(), repr(row.probability),
                         repr(low), repr(high), row.as_of.isoformat()])
    return out.getvalue()


def cell(text: str) -> str:
    """A text cell a spreadsheet will not run: one that starts like a formula (=, +, -, @, a tab
    or a carriage return) gets a leading apostrophe (OWASP's advice on CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
