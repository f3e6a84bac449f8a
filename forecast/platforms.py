"""Tournament submissions: the payloads of Metaculus and ForecastBench, a plain CSV, posting.

Each platform's payload is built from `SubmissionRow`s and the workspace's `[platforms]` config,
then checked by a validator that knows the platform's rules (REFERENCE.md, "Tournament formats")
before anything is written or sent. Only Metaculus takes forecasts over HTTP; its token comes from
the environment variable the config names, and never appears in an error message.
"""

from __future__ import annotations

import csv
import datetime as dt
import http.client
import io
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from forecast.errors import SubmissionError
from forecast.schema import Table, did_you_mean, show_value

Platform = Literal["metaculus", "forecastbench", "csv"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)

METACULUS_URL = "https://www.metaculus.com"
METACULUS_TOKEN_ENV = "METACULUS_TOKEN"
METACULUS_MIN, METACULUS_MAX = 0.001, 0.999

# ForecastBench asks dataset questions at fixed horizons after the due date; market questions
# resolve whenever their market does.
DATASET_SOURCES = ("acled", "dbnomics", "fred", "wikipedia", "yfinance")
MARKET_SOURCES = ("infer", "manifold", "metaculus", "polymarket")
DATASET_HORIZON_DAYS = (7, 30, 90, 180, 365, 1095, 1825, 3650)

CSV_HEADER = ("question", "deadline", "probability", "interval_low", "interval_high", "as_of")

_METACULUS_KEYS = ("base_url", "token_env", "timeout", "retries", "questions")
_FORECASTBENCH_TOP = ("organization", "model", "model_organization", "question_set")
_FORECASTBENCH_KEYS = (*_FORECASTBENCH_TOP, "forecast_due_date", "questions")
_FORECAST_SET_KEYS = (*_FORECASTBENCH_TOP, "forecast_due_date", "forecasts")
_FORECAST_FIELDS = ("id", "source", "forecast", "resolution_date", "reasoning", "direction")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EXCERPT = 200


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


@dataclass(frozen=True)
class MetaculusConfig:
    """`[platforms.metaculus]`: where to post, and our question id -> Metaculus question id."""

    questions: dict[str, int] = field(default_factory=dict)
    base_url: str = METACULUS_URL
    token_env: str = METACULUS_TOKEN_ENV  # the variable's name; the token is never stored
    timeout: float = 10.0  # seconds per attempt
    retries: int = 2  # extra attempts after a 5xx, a timeout or a connection error


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


@dataclass(frozen=True)
class Platforms:
    """The `[platforms]` table: each platform's config, or None when it is not configured."""

    metaculus: MetaculusConfig | None = None
    forecastbench: ForecastBenchConfig | None = None


# --- config -------------------------------------------------------------------------------------

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
    return Platforms(_parse_metaculus(t), _parse_forecastbench(t))


def _parse_metaculus(top: Table) -> MetaculusConfig | None:
    before = len(top.problems)  # including the unknown keys found by `table`
    t = top.table("metaculus", _METACULUS_KEYS, required=False)
    if t is None:
        return None
    base_url = t.text("base_url", required=False) or METACULUS_URL
    if not base_url.startswith(("https://", "http://")):
        t.problem("base_url", f"expected an http(s):// address, got {base_url!r}")
    token_env = t.text("token_env", required=False) or METACULUS_TOKEN_ENV
    if not _ENV_NAME.fullmatch(token_env):
        # never echo the value: it may be the token itself, pasted by mistake
        t.problem("token_env", "expected the NAME of an environment variable (like "
                  f"{METACULUS_TOKEN_ENV}) that holds the token, never the token itself")
    timeout = t.number("timeout", required=False)
    if timeout is not None and not (0 < timeout < math.inf):
        t.problem("timeout", f"expected a number of seconds > 0, got {timeout:g}")
    retries = t.get("retries", int, required=False, what="an integer >= 0")
    if retries is not None and retries < 0:
        t.problem("retries", f"expected an integer >= 0, got {retries}")
    questions: dict[str, int] = {}
    what = "a positive integer (the Metaculus question id, not the post id)"
    if (q := _question_map(t)) is not None:
        for ours in q.data:
            ident = q.get(ours, int, what=what)
            if ident is not None and ident <= 0:
                q.problem(ours, f"expected {what}, got {ident}")
            questions[ours] = ident
    if len(t.problems) > before:
        return None
    return MetaculusConfig(questions, base_url, token_env,
                           10.0 if timeout is None else timeout, 2 if retries is None else retries)


def _parse_forecastbench(top: Table) -> ForecastBenchConfig | None:
    before = len(top.problems)  # including the unknown keys found by `table`
    t = top.table("forecastbench", _FORECASTBENCH_KEYS, required=False)
    if t is None:
        return None
    header = {key: t.text(key) for key in _FORECASTBENCH_TOP}
    due = t.date("forecast_due_date")
    questions: dict[str, ForecastBenchQuestion] = {}
    if (q := _question_map(t)) is not None:
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


def _question_map(t: Table) -> Table | None:
    """The required `questions` table: its keys are our question ids, so any key is allowed."""
    raw = t.data.get("questions")
    return t.table("questions", raw.keys() if isinstance(raw, dict) else ())


def _unknown_source(source: str) -> str:
    known = (*DATASET_SOURCES, *MARKET_SOURCES)
    return (f"unknown ForecastBench source {source!r}{did_you_mean(source, known)}; "
            f"expected one of {', '.join(sorted(known))}")


def example_platforms_toml(question_ids: list[str], *, due: dt.date) -> str:
    """The `[platforms]` section of the simulated example workspace, with fake question ids.

    Every id is fake (Metaculus 990001, 990002, ...; ForecastBench "FAKE-0001", ... from the
    market source "infer", so no horizon rule applies), so that the example cannot be submitted to
    a real question by accident.

    Parameters
    ----------
    question_ids : list of str
        Our question ids, in the order to list them (duplicates are listed once).
    due : datetime.date
        The forecast set's due date; the question set is named after it.

    Returns
    -------
    str
        TOML text that `parse_platforms` reads without problems.
    """
    ids = list(dict.fromkeys(question_ids))
    metaculus = "".join(f"{_key(q)} = {990001 + i}\n" for i, q in enumerate(ids))
    forecastbench = "".join(f'{_key(q)} = {{ id = "FAKE-{i + 1:04d}", source = "infer" }}\n'
                            for i, q in enumerate(ids))
    return (
        "# Tournament platforms (`forecast submit`). SIMULATED example: every question id\n"
        "# below is FAKE. Map your questions to the platforms' real ids before posting.\n"
        "[platforms.metaculus]\n"
        f'base_url = "{METACULUS_URL}"\n'
        f'token_env = "{METACULUS_TOKEN_ENV}"  # the NAME of the variable holding the token\n'
        "timeout = 10  # seconds per attempt\n"
        "retries = 2  # extra attempts after a server error, a timeout or a lost connection\n"
        "\n"
        "# our question id -> Metaculus question id (not the post id). FAKE: no such questions.\n"
        "[platforms.metaculus.questions]\n"
        f"{metaculus}"
        "\n"
        "[platforms.forecastbench]\n"
        'organization = "example (simulated)"\n'
        'model = "forecast toolkit (simulated example)"\n'
        'model_organization = "example (simulated)"\n'
        f'question_set = "{due.isoformat()}-llm.json"\n'
        f"forecast_due_date = {due.isoformat()}\n"
        "\n"
        "# our question id -> ForecastBench question. FAKE ids; \"infer\" is a market source.\n"
        "[platforms.forecastbench.questions]\n"
        f"{forecastbench}"
    )


def _key(text: str) -> str:
    """`text` as a TOML basic string."""
    escaped = "".join(f"\\{c}" if c in '"\\' else f"\\u{ord(c):04x}" if c < " " or c == "\x7f"
                      else c for c in text)
    return f'"{escaped}"'


# --- payloads -----------------------------------------------------------------------------------

def metaculus_payload(rows: Sequence[SubmissionRow],
                      config: MetaculusConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """The body of a Metaculus ``POST /api/questions/forecast/`` for binary questions.

    Parameters
    ----------
    rows : sequence of SubmissionRow
    config : MetaculusConfig

    Returns
    -------
    payload : list of dict
        ``[{"question": <question id>, "probability_yes": p}]`` for each mapped row, with p clipped
        into [0.001, 0.999], the range Metaculus accepts.
    warnings : list of str
        One line for each row left out (not mapped) and for each probability clipped.
    """
    payload: list[dict[str, Any]] = []
    warnings: list[str] = []
    for row in rows:
        ident = config.questions.get(row.question)
        if ident is None:
            warnings.append(_unmapped(row, "metaculus"))
            continue
        p = row.probability
        if math.isfinite(p):  # a NaN is left for the validator to refuse
            p = min(max(p, METACULUS_MIN), METACULUS_MAX)
            if p != row.probability:
                warnings.append(f"{row.question}: probability {row.probability!r} clipped to {p!r} "
                                f"(Metaculus accepts {METACULUS_MIN} to {METACULUS_MAX})")
        payload.append({"question": ident, "probability_yes": p})
    return payload, warnings


def forecastbench_payload(rows: Sequence[SubmissionRow],
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
            warnings.append(_unmapped(row, "forecastbench"))
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


def _unmapped(row: SubmissionRow, platform: Platform) -> str:
    return (f"{row.question}: skipped, not mapped to a {platform} question "
            f"([platforms.{platform}.questions])")


def csv_text(rows: Sequence[SubmissionRow]) -> str:
    """The plain CSV submission: one row per question, ISO dates, probabilities that round-trip.

    Columns: question, deadline, probability, interval_low, interval_high, as_of.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        low, high = row.interval
        writer.writerow([row.question, row.deadline.isoformat(), repr(row.probability),
                         repr(low), repr(high), row.as_of.isoformat()])
    return out.getvalue()


# --- validation ---------------------------------------------------------------------------------

def validate_metaculus(payload: object) -> None:
    """Check a Metaculus binary-forecast body; raise `SubmissionError` at the first problem.

    It must be a non-empty list of objects with exactly the keys ``question`` (a positive integer)
    and ``probability_yes`` (a finite number in [0.001, 0.999]), no question twice. The message is
    one line naming the item and field, e.g. ``metaculus[2].probability_yes: ...``.
    """
    if not isinstance(payload, list):
        raise SubmissionError(f"metaculus: expected a JSON list of forecasts, got {_kind(payload)}")
    if not payload:
        raise SubmissionError("metaculus: no forecasts (no question is mapped in "
                              "[platforms.metaculus.questions])")
    first: dict[int, int] = {}
    for i, item in enumerate(payload):
        where = f"metaculus[{i}]"
        _check_keys(item, where, ("question", "probability_yes"), ("question", "probability_yes"))
        ident = item["question"]
        if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
            raise SubmissionError(f"{where}.question: expected a positive integer (the question "
                                  f"id, not the post id), got {ident!r}")
        if ident in first:
            raise SubmissionError(f"{where}.question: question {ident} is already forecast in "
                                  f"metaculus[{first[ident]}]")
        first[ident] = i
        _check_probability(item["probability_yes"], f"{where}.probability_yes",
                           METACULUS_MIN, METACULUS_MAX)


def validate_forecastbench(payload: object) -> None:
    """Check a ForecastBench forecast set; raise `SubmissionError` at the first problem.

    Rules (REFERENCE.md): the header fields are non-empty strings, forecast_due_date an ISO date;
    ``forecasts`` is a non-empty list of ``{id, source, forecast, resolution_date, reasoning}``
    (optional ``direction``) with forecast a probability in [0, 1]; no two forecasts share
    (id, source, resolution_date, direction); a dataset question's resolution_date is the due date
    plus 7, 30, 90, 180, 365, 1095, 1825 or 3650 days. The message is one line naming the field,
    e.g. ``forecasts[3].resolution_date: ...``.
    """
    if not isinstance(payload, dict):
        raise SubmissionError(
            f"forecastbench: expected a JSON object (a forecast set), got {_kind(payload)}")
    _check_keys(payload, "forecastbench", _FORECAST_SET_KEYS, _FORECAST_SET_KEYS)
    for key in (*_FORECASTBENCH_TOP, "forecast_due_date"):
        _check_text(payload[key], key)
    due = _check_date(payload["forecast_due_date"], "forecast_due_date")
    forecasts = payload["forecasts"]
    if not isinstance(forecasts, list) or not forecasts:
        raise SubmissionError(f"forecasts: expected a non-empty list, got {show_value(forecasts)}")
    first: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(forecasts):
        where = f"forecasts[{i}]"
        _check_keys(item, where, _FORECAST_FIELDS, _FORECAST_FIELDS[:-1])
        _check_text(item["id"], f"{where}.id")
        source = _check_text(item["source"], f"{where}.source")
        if source not in (*DATASET_SOURCES, *MARKET_SOURCES):
            raise SubmissionError(f"{where}.source: {_unknown_source(source)}")
        _check_probability(item["forecast"], f"{where}.forecast", 0.0, 1.0)
        resolution = _check_date(item["resolution_date"], f"{where}.resolution_date")
        _check_text(item["reasoning"], f"{where}.reasoning")
        direction = item.get("direction")
        if "direction" in item:
            _check_text(direction, f"{where}.direction")
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


def _check_keys(item: object, where: str, allowed: Sequence[str], required: Sequence[str]) -> None:
    if not isinstance(item, dict):
        raise SubmissionError(f"{where}: expected an object, got {_kind(item)}")
    for key in item:
        if key not in allowed:
            raise SubmissionError(
                f"{where}: unexpected key {key!r}{did_you_mean(str(key), allowed)}")
    for key in required:
        if key not in item:
            raise SubmissionError(f"{where}.{key}: missing")


def _check_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SubmissionError(f"{where}: expected a non-empty string, got {show_value(value)}")
    return value


def _check_date(value: object, where: str) -> dt.date:
    try:
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise SubmissionError(f"{where}: expected an ISO date (YYYY-MM-DD), got {value!r}")


def _check_probability(value: object, where: str, low: float, high: float) -> None:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not (math.isfinite(value) and low <= value <= high)):
        raise SubmissionError(f"{where}: expected a number in [{low:g}, {high:g}], "
                              f"got {show_value(value)}")


def _kind(value: object) -> str:
    names = {"dict": "an object", "list": "a list", "str": "a string"}
    return names.get(type(value).__name__, type(value).__name__)


# --- posting ------------------------------------------------------------------------------------

def token_from_env(config: MetaculusConfig) -> str:
    """The Metaculus token from the environment variable `config.token_env`.

    Raises `SubmissionError` naming the variable (never a value) when it is unset or empty.
    """
    token = os.environ.get(config.token_env, "").strip()
    if not token:
        raise SubmissionError(f"no Metaculus token: set the environment variable "
                              f"{config.token_env} (see [platforms.metaculus] token_env)")
    return token


def post_metaculus(payload: list[dict[str, Any]], config: MetaculusConfig, *, token: str,
                   sleep: Callable[[float], object] = time.sleep, backoff: float = 1.0) -> int:
    """Post forecasts to Metaculus; return the HTTP status of the accepted request.

    The payload is validated first. A 4xx reply (or a redirect) is final. A 5xx reply, a timeout
    or a connection error is retried up to ``config.retries`` more times, waiting
    ``backoff * 2**k`` seconds before retry k + 1 (exponential backoff).

    Parameters
    ----------
    payload : list of dict
        A body from `metaculus_payload`.
    config : MetaculusConfig
        ``base_url``, ``timeout`` (seconds per attempt) and ``retries``.
    token : str
        The API token (`token_from_env`); sent as ``Authorization: Token <token>``, and replaced
        by ``***`` in every message, even where the server echoes it back.
    sleep, backoff
        The wait between attempts (injectable for tests) and its first length in seconds.

    Returns
    -------
    int
        The 2xx status (Metaculus answers 201).

    Raises
    ------
    SubmissionError
        The payload is invalid, the server refused it, or every attempt failed.
    """
    validate_metaculus(payload)
    if not token or not token.isascii() or not token.isprintable():
        raise SubmissionError("the Metaculus token is empty or not printable ASCII text")
    url = f"{config.base_url.rstrip('/')}/api/questions/forecast/"
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json",
               "Accept": "application/json", "User-Agent": "forecast-toolkit"}
    try:
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers,
                                         method="POST")
    except ValueError as exc:
        raise SubmissionError(f"bad Metaculus base_url {config.base_url!r}: {exc}") from None
    # urllib would follow a redirect as a GET without the body: refuse it instead
    opener = urllib.request.build_opener(_NoRedirect)
    attempts = max(config.retries, 0) + 1
    last = ""
    for attempt in range(attempts):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            with opener.open(request, timeout=config.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            with exc:
                reply = _excerpt(exc, token)
            last = f"HTTP {exc.code}" + (f": {reply}" if reply else "")
            if 300 <= exc.code < 400:
                last += (f" (a redirect to {exc.headers.get('Location')}: set "
                         "[platforms.metaculus] base_url to that site)")
            if not 500 <= exc.code < 600:
                raise SubmissionError(_redact(f"Metaculus refused the forecasts ({url}): {last}",
                                              token)) from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, reset, garbled
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            last = str(reason) or type(reason).__name__
    raise SubmissionError(_redact(f"posting to Metaculus ({url}) failed after {attempts} "
                                  f"attempt{'s' if attempts > 1 else ''}; last failure: {last}",
                                  token))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _excerpt(reply: urllib.error.HTTPError, token: str) -> str:
    """The start of the server's reply on one line, the token redacted before cutting."""
    try:
        raw = reply.read(64 * 1024)
    except (OSError, ValueError):
        return ""
    text = " ".join(_redact(raw.decode("utf-8", errors="replace"), token).split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT - 3] + "..."


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
