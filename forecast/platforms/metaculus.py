"""Metaculus: binary forecasts posted over HTTP (``POST /api/questions/forecast/``).

A question is mapped by its question id, or by its post id (``{ post = N }``, the number in the
question's address), which `resolve_posts` turns into the question id with
``GET /api/posts/<N>/``: the two ids differ, and a post id sent as a question id forecasts
another question. The token comes from the environment variable the settings name, and never
appears in an error message.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
#: The variable listing other variables (comma-separated) that may hold the Metaculus token.
TOKEN_ENV_ALLOW = "FORECAST_TOKEN_VARIABLES"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_EXCERPT = 200
_MAX_REPLY = 1024 * 1024  # bytes of a reply read at most
_POST = "a positive integer (the number in the question's address)"


@dataclass(frozen=True)
class MetaculusConfig:
    """`[platforms.metaculus]`: where to post, and our question id -> Metaculus question id
    (``questions``) or post id (``posts``, until `resolve_posts` moves them to ``questions``)."""

    questions: dict[str, int] = field(default_factory=dict)
    base_url: str = METACULUS_URL  # the site; a trailing /api is the same site
    token_env: str = METACULUS_TOKEN_ENV  # the variable's name; the token is never stored
    timeout: float = 10.0  # seconds per attempt
    retries: int = 2  # extra attempts after a 5xx, a timeout or a connection error
    posts: dict[str, int] = field(default_factory=dict)


def parse(top: Table) -> MetaculusConfig | None:
    """`[platforms.metaculus]` of the `[platforms]` table `top`, or None (absent, or with a
    problem recorded through `top`)."""
    before = len(top.problems)  # including the unknown keys found by `table`
    t = top.table("metaculus", _KEYS, required=False)
    if t is None:
        return None
    base_url = t.text("base_url", required=False) or METACULUS_URL
    if (problem := _url_problem(base_url)) is not None:
        t.problem("base_url", problem)
    token_env = t.text("token_env", required=False) or METACULUS_TOKEN_ENV
    if not _ENV_NAME.fullmatch(token_env):
        # never echo the value: it may be the token itself, pasted by mistake
        t.problem("token_env", "expected the NAME of an environment variable (like "
                  f"{METACULUS_TOKEN_ENV}) that holds the token, never the token itself")
    elif not _may_hold_the_token(token_env):
        t.problem("token_env", f"{token_env} is not a Metaculus token's variable: its name must "
                  f"contain METACULUS, or be listed in the variable {TOKEN_ENV_ALLOW} "
                  "(comma-separated names), so that no other secret is sent")
    timeout = t.number("timeout", required=False)
    if timeout is not None and not (0 < timeout < math.inf):
        t.problem("timeout", f"expected a number of seconds > 0, got {timeout:g}")
    retries = t.get("retries", int, required=False, what="an integer >= 0")
    if retries is not None and retries < 0:
        t.problem("retries", f"expected an integer >= 0, got {retries}")
    questions: dict[str, int] = {}
    posts: dict[str, int] = {}
    what = "a positive integer (the Metaculus question id, not the post id)"
    if (q := question_map(t)) is not None:
        for ours, value in q.data.items():
            if isinstance(value, dict):  # { post = N }
                entry = q.table(ours, ("post",))
                assert entry is not None
                post = entry.get("post", int, what=_POST)
                if post is not None and post <= 0:
                    entry.problem("post", f"expected {_POST}, got {post}")
                posts[ours] = post
                continue
            ident = q.get(ours, int, what=what)
            if ident is not None and ident <= 0:
                q.problem(ours, f"expected {what}, got {ident}")
            questions[ours] = ident
    if len(t.problems) > before:
        return None
    return MetaculusConfig(questions, base_url, token_env,
                           10.0 if timeout is None else timeout, 2 if retries is None else retries,
                           posts)


def _url_problem(url: str) -> str | None:
    """Why the token may not be sent to `url`, or None: only https, or http to this machine
    (tests and local proxies), since the token travels in a header."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("https", "http") or not host:
        return f"expected an https:// address, got {url!r}"
    if parts.scheme == "http" and host not in _LOOPBACK:
        return (f"expected an https:// address, got {url!r}: the token would travel in clear "
                "text (http is allowed to this machine only)")
    return None


def _may_hold_the_token(name: str) -> bool:
    """Whether the variable `name` may be read for the token: named for Metaculus, or listed
    by the user in the environment (never by forecast.toml, which a shared workspace brings)."""
    allowed = {n.strip() for n in os.environ.get(TOKEN_ENV_ALLOW, "").split(",")}
    return "METACULUS" in name or name in allowed


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
        "# our question id -> Metaculus question id, or { post = N } for the number in the\n"
        "# question's address (resolved to its question id). FAKE: no such questions.\n"
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
        With its post ids resolved (`resolve_posts`).

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
        if ident is None and row.question in config.posts:
            raise SubmissionError(f"{row.question}: Metaculus post {config.posts[row.question]} "
                                  "is not resolved to its question (metaculus.resolve_posts)")
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


def env_token(config: MetaculusConfig) -> str | None:
    """The Metaculus token from the environment variable `config.token_env`, or None when it is
    unset or empty."""
    return os.environ.get(config.token_env, "").strip() or None


def token_from_env(config: MetaculusConfig) -> str:
    """The Metaculus token from the environment variable `config.token_env`.

    Raises `SubmissionError` naming the variable (never a value) when it is unset or empty.
    """
    token = env_token(config)
    if token is None:
        raise SubmissionError(f"no Metaculus token: set the environment variable "
                              f"{config.token_env} (see [platforms.metaculus] token_env)")
    return token


def resolve_posts(config: MetaculusConfig, *, token: str | None,
                  sleep: Callable[[float], object] = time.sleep,
                  backoff: float = 1.0) -> tuple[MetaculusConfig, list[str]]:
    """Turn each post id of `config.posts` into its question id, with ``GET /api/posts/<id>/``.

    Parameters
    ----------
    config : MetaculusConfig
    token : str or None
        The API token, sent when given (reading a public post may not need it).
    sleep, backoff
        As for `post`: a failed read is retried like a failed post.

    Returns
    -------
    config : MetaculusConfig
        `config` with every post's question in ``questions`` and no ``posts``.
    notes : list of str
        One line per post: our question, the post, its question id and title, for the user to
        see that the intended question is forecast.

    Raises
    ------
    SubmissionError
        A post that cannot be read, or that does not hold exactly one binary question (a group,
        a conditional, a numeric question).
    """
    questions = dict(config.questions)
    notes = []
    for ours, post in config.posts.items():
        where = f"post {post} (mapped from {ours})"
        _, raw = _send(_request(config, f"posts/{post}/", token), config, token=token,
                       what=where, action=f"reading {where} from Metaculus", sleep=sleep,
                       backoff=backoff)
        ident, title, kind_ = _post_question(raw, f"Metaculus {where}")
        if kind_ != "binary":
            raise SubmissionError(f'Metaculus {where} is question {ident}, "{title}", a {kind_} '
                                  "question: only binary questions can be forecast")
        questions[ours] = ident
        notes.append(f'{ours}: Metaculus post {post} is question {ident}, "{title}"')
    return replace(config, questions=questions, posts={}), notes


def _post_question(raw: bytes, where: str) -> tuple[int, str, str]:
    """The id, title (on one line) and type of the one question of a post's JSON."""
    not_a_post = SubmissionError(f"{where}: the reply is not a post (JSON with a question's id "
                                 "and title)")
    try:
        reply = json.loads(raw)
    except ValueError:
        raise not_a_post from None
    if not isinstance(reply, dict):
        raise not_a_post
    question = reply.get("question")
    if question is None:  # a group of questions, a conditional or a notebook
        raise SubmissionError(f"{where} holds no single question (a group or a conditional?): "
                              "map the question id you mean instead")
    if not isinstance(question, dict):
        raise not_a_post
    ident, title = question.get("id"), question.get("title")
    if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0 or (
            not isinstance(title, str)):
        raise not_a_post
    return ident, " ".join(title.split()), str(question.get("type", "binary"))


def post(payload: list[dict[str, Any]], config: MetaculusConfig, *, token: str,
         sleep: Callable[[float], object] = time.sleep, backoff: float = 1.0) -> int:
    """Post forecasts to Metaculus; return the HTTP status of the accepted request.

    The payload is validated first. A 4xx reply (or a redirect) is final; its message names the
    questions the server's reply names (by id, or by the item of a per-item error list), else
    every question of the batch. A 5xx reply, a timeout or a connection error is retried up to
    ``config.retries`` more times, waiting ``backoff * 2**k`` seconds before retry k + 1
    (exponential backoff).

    Parameters
    ----------
    payload : list of dict
        A body from `payload`.
    config : MetaculusConfig
        ``base_url``, ``timeout`` (seconds per attempt) and ``retries``; ``questions`` names our
        question beside its id in messages.
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
    request = _request(config, "questions/forecast/", token, json.dumps(payload).encode())
    status, _ = _send(request, config, token=token, what="the forecasts",
                      action="posting to Metaculus", sleep=sleep, backoff=backoff,
                      explain=lambda reply: _named_questions(reply, payload, config))
    return status


def _api_url(config: MetaculusConfig, path: str) -> str:
    """The address of API `path` ("questions/forecast/"): base_url is the site, and one that
    ends in /api (the API's root) means the same site."""
    site = config.base_url.rstrip("/").removesuffix("/api").rstrip("/")
    return f"{site}/api/{path}"


def _request(config: MetaculusConfig, path: str, token: str | None,
             body: bytes | None = None) -> urllib.request.Request:
    """A POST of the JSON `body`, or a GET without one; authorized when `token` is given."""
    if token is not None and not (token and token.isascii() and token.isprintable()):
        raise SubmissionError("the Metaculus token is empty or not printable ASCII text")
    if token is not None and (problem := _url_problem(config.base_url)) is not None:
        raise SubmissionError(f"[platforms.metaculus] base_url: {problem}")
    headers = {"Accept": "application/json", "User-Agent": "forecast-toolkit"}
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        return urllib.request.Request(_api_url(config, path), data=body, headers=headers,
                                      method="GET" if body is None else "POST")
    except ValueError as exc:
        raise SubmissionError(f"bad Metaculus base_url {config.base_url!r}: {exc}") from None


def _send(request: urllib.request.Request, config: MetaculusConfig, *, token: str | None,
          what: str, action: str, sleep: Callable[[float], object], backoff: float,
          explain: Callable[[str], str] = lambda reply: "") -> tuple[int, bytes]:
    """Send `request` with retries (see `post`); return the 2xx status and the reply's body.

    `what` is what a refusal refused ("the forecasts"), `action` what failed after every attempt
    ("posting to Metaculus"), and `explain` adds to a 4xx refusal's message from the whole reply
    (the token already redacted).
    """
    url = request.full_url
    # urllib would follow a redirect as a GET without the body: refuse it instead
    opener = urllib.request.build_opener(_NoRedirect)
    attempts = max(config.retries, 0) + 1
    last = ""
    for attempt in range(attempts):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            with opener.open(request, timeout=config.timeout) as response:
                return int(response.status), response.read(_MAX_REPLY)
        except urllib.error.HTTPError as exc:
            with exc:
                reply = _reply_text(exc, token)
            excerpt = " ".join(reply.split())
            if len(excerpt) > _EXCERPT:
                excerpt = excerpt[:_EXCERPT - 3] + "..."
            last = f"HTTP {exc.code}" + (f": {excerpt}" if excerpt else "")
            if 300 <= exc.code < 400:
                last += (f" (a redirect to {exc.headers.get('Location')}: set "
                         "[platforms.metaculus] base_url to that site)")
            if not 500 <= exc.code < 600:
                named = explain(reply) if 400 <= exc.code < 500 else ""
                raise SubmissionError(_redact(f"Metaculus refused {what} ({url}): {last}{named}",
                                              token)) from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, reset, garbled
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            last = str(reason) or type(reason).__name__
    raise SubmissionError(_redact(f"{action} ({url}) failed after {attempts} "
                                  f"attempt{'s' if attempts > 1 else ''}; last failure: {last}",
                                  token))


def _named_questions(reply: str, payload: list[dict[str, Any]], config: MetaculusConfig) -> str:
    """Which questions of the refused batch the server's reply names, for the message: the items
    of a per-item error list (one object per forecast, empty when fine), else the question ids
    written in the reply ("Wrong question id 123", "Question 123 is already closed"), else every
    question of the batch."""
    ids = [item["question"] for item in payload]
    try:
        errors = json.loads(reply)
    except ValueError:
        errors = None
    if (isinstance(errors, list) and len(errors) == len(ids)
            and all(isinstance(e, dict) for e in errors) and any(errors)):
        named = [i for i, e in zip(ids, errors, strict=True) if e]
    else:
        numbers = set(re.findall(r"[0-9]+", reply))
        named = [i for i in ids if str(i) in numbers]
    ours = {ident: q for q, ident in config.questions.items()}
    shown = ", ".join(f"{i} ({ours[i]})" if i in ours else str(i) for i in named or ids)
    plural = "s" if len(named or ids) > 1 else ""
    return (f"; it names question{plural} {shown}" if named
            else f"; the batch held question{plural} {shown}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _reply_text(reply: urllib.error.HTTPError, token: str | None) -> str:
    """The start of the server's reply (64 KiB at most), the token redacted."""
    try:
        raw = reply.read(64 * 1024)
    except (OSError, ValueError):
        return ""
    return _redact(raw.decode("utf-8", errors="replace"), token)


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
