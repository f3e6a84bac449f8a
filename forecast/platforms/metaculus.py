"""Metaculus: binary forecasts posted over HTTP (``POST /api/questions/forecast/``).

The token comes from the environment variable the settings name, and never appears in an error
message.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forecast.errors import SubmissionError
from forecast.platforms.base import (
    SubmissionRow,
    check_keys,
    check_probability,
    kind,
    question_map,
    toml_key,
    unmapped,
)
from forecast.schema import Table

NAME = "metaculus"
METACULUS_URL = "https://www.metaculus.com"
METACULUS_TOKEN_ENV = "METACULUS_TOKEN"
METACULUS_MIN, METACULUS_MAX = 0.001, 0.999
_KEYS = ("base_url", "token_env", "timeout", "retries", "questions")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXCERPT = 200


@dataclass(frozen=True)
class MetaculusConfig:
    """`[platforms.metaculus]`: where to post, and our question id -> Metaculus question id."""

    questions: dict[str, int] = field(default_factory=dict)
    base_url: str = METACULUS_URL
    token_env: str = METACULUS_TOKEN_ENV  # the variable's name; the token is never stored
    timeout: float = 10.0  # seconds per attempt
    retries: int = 2  # extra attempts after a 5xx, a timeout or a connection error


def parse(top: Table) -> MetaculusConfig | None:
    """`[platforms.metaculus]` of the `[platforms]` table `top`, or None (absent, or with a
    problem recorded through `top`)."""
    before = len(top.problems)  # including the unknown keys found by `table`
    t = top.table("metaculus", _KEYS, required=False)
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
    if (q := question_map(t)) is not None:
        for ours in q.data:
            ident = q.get(ours, int, what=what)
            if ident is not None and ident <= 0:
                q.problem(ours, f"expected {what}, got {ident}")
            questions[ours] = ident
    if len(t.problems) > before:
        return None
    return MetaculusConfig(questions, base_url, token_env,
                           10.0 if timeout is None else timeout, 2 if retries is None else retries)


def example_toml(question_ids: list[str]) -> str:
    """The example's `[platforms.metaculus]`: FAKE question ids 990001, 990002, ..."""
    questions = "".join(f"{toml_key(q)} = {990001 + i}\n" for i, q in enumerate(question_ids))
    return (
        "[platforms.metaculus]\n"
        f'base_url = "{METACULUS_URL}"\n'
        f'token_env = "{METACULUS_TOKEN_ENV}"  # the NAME of the variable holding the token\n'
        "timeout = 10  # seconds per attempt\n"
        "retries = 2  # extra attempts after a server error, a timeout or a lost connection\n"
        "\n"
        "# our question id -> Metaculus question id (not the post id). FAKE: no such questions.\n"
        "[platforms.metaculus.questions]\n"
        f"{questions}"
    )


def payload(rows: Sequence[SubmissionRow],
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
            warnings.append(unmapped(row, NAME))
            continue
        p = row.probability
        if math.isfinite(p):  # a NaN is left for the validator to refuse
            p = min(max(p, METACULUS_MIN), METACULUS_MAX)
            if p != row.probability:
                warnings.append(f"{row.question}: probability {row.probability!r} clipped to {p!r} "
                                f"(Metaculus accepts {METACULUS_MIN} to {METACULUS_MAX})")
        payload.append({"question": ident, "probability_yes": p})
    return payload, warnings


def validate(payload: object) -> None:
    """Check a Metaculus binary-forecast body; raise `SubmissionError` at the first problem.

    It must be a non-empty list of objects with exactly the keys ``question`` (a positive integer)
    and ``probability_yes`` (a finite number in [0.001, 0.999]), no question twice. The message is
    one line naming the item and field, e.g. ``metaculus[2].probability_yes: ...``.
    """
    if not isinstance(payload, list):
        raise SubmissionError(f"metaculus: expected a JSON list of forecasts, got {kind(payload)}")
    if not payload:
        raise SubmissionError("metaculus: no forecasts (no question is mapped in "
                              "[platforms.metaculus.questions])")
    first: dict[int, int] = {}
    for i, item in enumerate(payload):
        where = f"metaculus[{i}]"
        check_keys(item, where, ("question", "probability_yes"), ("question", "probability_yes"))
        ident = item["question"]
        if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
            raise SubmissionError(f"{where}.question: expected a positive integer (the question "
                                  f"id, not the post id), got {ident!r}")
        if ident in first:
            raise SubmissionError(f"{where}.question: question {ident} is already forecast in "
                                  f"metaculus[{first[ident]}]")
        first[ident] = i
        check_probability(item["probability_yes"], f"{where}.probability_yes",
                           METACULUS_MIN, METACULUS_MAX)


def token_from_env(config: MetaculusConfig) -> str:
    """The Metaculus token from the environment variable `config.token_env`.

    Raises `SubmissionError` naming the variable (never a value) when it is unset or empty.
    """
    token = os.environ.get(config.token_env, "").strip()
    if not token:
        raise SubmissionError(f"no Metaculus token: set the environment variable "
                              f"{config.token_env} (see [platforms.metaculus] token_env)")
    return token


def post(payload: list[dict[str, Any]], config: MetaculusConfig, *, token: str,
                   sleep: Callable[[float], object] = time.sleep, backoff: float = 1.0) -> int:
    """Post forecasts to Metaculus; return the HTTP status of the accepted request.

    The payload is validated first. A 4xx reply (or a redirect) is final. A 5xx reply, a timeout
    or a connection error is retried up to ``config.retries`` more times, waiting
    ``backoff * 2**k`` seconds before retry k + 1 (exponential backoff).

    Parameters
    ----------
    payload : list of dict
        A body from `payload`.
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
    validate(payload)
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
