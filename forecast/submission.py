"""What is submitted: the latest update's open questions, pooled with the forecaster's judgment,
each with a short generated reasoning; refused when that update failed the diagnostics gate, is
older than the workspace's `max_age_days`, or (ForecastBench) is not as of the forecast set's due
date, unless forced.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import xarray as xr

from forecast import history, judgment, posterior, resolution
from forecast.errors import NotAvailableError, SubmissionError
from forecast.files import write_output
from forecast.inputs import questions
from forecast.platforms import (
    JSON_PLATFORMS,
    Platform,
    SubmissionRow,
    forecastbench,
    metaculus,
    spreadsheet,
)
from forecast.prior_check import claims_only_forecasts
from forecast.priors import Priors, load_priors
from forecast.store import transaction
from forecast.workspace import Workspace

Source = Literal["model", "judgment", "pool"]
RECENT_WEEKS = 12


@dataclass(frozen=True)
class Submission:
    rows: list[SubmissionRow]
    records: list[dict[str, Any]]  # the `submissions` table's rows, less platform and destination
    warnings: list[str]


@dataclass(frozen=True)
class Payload:
    """A platform's payload, validated, and what to tell the user about it."""

    text: str
    data: Any  # None for CSV
    sent: set[str]  # our questions it holds
    warnings: list[str]  # clipped probabilities, unmapped questions, ...
    notes: list[str]  # Metaculus post ids resolved to their questions, with their titles
    config: Any  # the platform's settings as used (Metaculus posts resolved); None for CSV


def prepare(ws: Workspace, con: duckdb.DuckDBPyConnection, priors: Priors, *, source: Source,
            force: bool, today: dt.date, platform: Platform) -> Submission:
    """The rows to submit from the latest update, for `platform`.

    Raises
    ------
    SubmissionError
        When the update failed the gate, is older than `max_age_days`, is not as of
        ForecastBench's due date when `platform` is ForecastBench (all unless `force`), or
        nothing is left to submit.
    """
    latest = history.question_rows(con)
    if not latest:
        raise NotAvailableError("no forecasts yet: run `forecast update` first")
    run = latest[0]
    problems = []
    if not run["diagnostics"]["converged"]:
        problems.append(f"the latest update (as of {run['as_of']}) failed the diagnostics gate")
    age = (today - run["as_of"]).days
    if age > ws.config.max_age_days:
        problems.append(f"the latest update is {age} days old (as of {run['as_of']}; "
                        f"max_age_days = {ws.config.max_age_days} in forecast.toml)")
    due = ws.config.platforms.forecastbench if platform == forecastbench.NAME else None
    if due is not None and (late := forecastbench.as_of_problem(run["as_of"], due)):
        problems.append(late)
    if problems and not force:
        raise SubmissionError("; ".join(problems) + ": run `forecast update`, or pass --force "
                              "to submit it anyway (recorded)")
    warnings = [f"submitting although {p} (--force)" for p in problems]

    states = resolution.current(con)
    judged = judgment.latest(con)
    fitted = history.find_run(con, run["run_id"]) or {}
    series = posterior.open_run(ws, fitted)["constant_data"].to_dataset()
    specs = {q.id: q for q in questions(priors)}
    prior: dict[str, float] = {}
    for opened in {q.opened for q in specs.values()}:  # the claims alone, when questions opened
        prior.update(claims_only_forecasts(
            priors, ws.posteriors_dir, [q for q in specs.values() if q.opened == opened],
            opened - dt.timedelta(days=1), seed=run["seed"]))
    rows, records, resolved = [], [], []
    for r in latest:
        q = r["question"]
        state = states[q].state if q in states else "open"
        if r["status"] != "open" or state != "open":
            resolved.append(q)
            continue
        if q not in specs:
            warnings.append(f"{q}: not submitted, the current priors no longer have it")
            continue
        own = judged[q]["probability"] if q in judged else None
        if source == "judgment" and own is None:
            warnings.append(f"{q}: not submitted, no judgment recorded (`forecast judge`)")
            continue
        model = r["probability"]
        if not 0 <= model <= 1:  # NaN too: recorded by an older version from a broken fit
            raise SubmissionError(f"{q}: the recorded forecast {model} is not a probability; "
                                  "run `forecast update` (not even --force submits it)")
        agg = ws.config.aggregation
        p = {"model": model, "judgment": own, "pool": judgment.pooled(model, own, agg)}[source]
        text = _reasoning(r, priors, series, prior[q], own, p, source)
        rows.append(SubmissionRow(q, r["scenario"], r["deadline"], r["as_of"], float(p),
                                  tuple(r["interval"]), text))  # type: ignore[arg-type]
        records.append({"question": q, "probability": p, "model_probability": model,
                        "judgment": own, "model_weight": agg.model_weight,
                        "judgment_weight": agg.judgment_weight, "extremize": agg.extremize,
                        "run_id": r["run_id"], "as_of": r["as_of"], "forced": bool(problems)})
    if resolved:
        warnings.append(f"{len(resolved)} resolved question(s) not submitted (`forecast show`)")
    if not rows:
        raise SubmissionError("nothing to submit: " + "; ".join(warnings))
    return Submission(rows, records, warnings)


def payload(ws: Workspace, submission: Submission, platform: Platform) -> Payload:
    """The platform's payload, validated. Metaculus post ids are resolved to their questions
    first (over the network, with the token when it is set)."""
    if platform == spreadsheet.NAME:
        return Payload(spreadsheet.csv_text(submission.rows), None,
                       {r.question for r in submission.rows}, list(submission.warnings), [], None)
    config = getattr(ws.config.platforms, platform)
    if config is None:
        raise SubmissionError(f"no [platforms.{platform}] in {ws.root / 'forecast.toml'}: "
                              "map your questions to the platform's ids there")
    notes: list[str] = []
    if platform == metaculus.NAME and config.posts:
        config, notes = metaculus.resolve_posts(config, token=metaculus.env_token(config))
    module = JSON_PLATFORMS[platform]
    data, warnings = module.payload(submission.rows, config)
    module.validate(data)
    sent = {r.question for r in submission.rows if r.question in config.questions}
    return Payload(json.dumps(data, indent=2, ensure_ascii=False) + "\n", data, sent,
                   [*submission.warnings, *warnings], notes, config)


def post(ws: Workspace, built: Payload) -> tuple[int, str]:
    """Send a Metaculus payload; returns the HTTP status and the address it went to. Never for
    the simulated example, whose questions are mapped to fake ids."""
    if ws.config.example:
        raise SubmissionError("this workspace holds the SIMULATED example, mapped to fake "
                              "question ids: not posting it")
    config = built.config
    if not isinstance(config, metaculus.MetaculusConfig):
        raise SubmissionError(f"no [platforms.metaculus] in {ws.root / 'forecast.toml'}")
    status = metaculus.post(built.data, config, token=metaculus.token_from_env(config))
    return status, config.base_url


def submit(ws: Workspace, platform: Platform, *, source: Source, force: bool, today: dt.date,
           out: Path | None, send: bool, stdout: Callable[[str], None],
           stderr: Callable[[str], None]) -> None:
    """`forecast submit`: under the write lock, prepare the rows, build and validate the
    platform's payload (Metaculus post ids resolved, each shown with its question's title),
    write it to `out` (or `stdout` when neither `out` nor `send`), post it when `send`, then
    record what was submitted where. Messages go to `stderr` as they happen."""
    if out is not None:
        ws.check_output(out)
    priors = load_priors(ws.priors_dir)
    with ws.lock():
        with ws.store(read_only=True) as con:
            sub = prepare(ws, con, priors, source=source, force=force, today=today,
                          platform=platform)
        built = payload(ws, sub, platform)
        for note in built.notes:
            stderr(note)
        for w in built.warnings:
            stderr(f"warning: {w}")
        destinations = []
        if out is not None:
            write_output(out, lambda target: Path(target).write_bytes(built.text.encode()))
            stderr(f"Wrote {len(built.sent)} forecast(s) to {out}.")
            destinations.append("stdout" if str(out) == "-" else str(out))
        elif not send:
            stdout(built.text)
            destinations.append("stdout")
        if send:
            status, url = post(ws, built)
            destinations.append(url)
            stderr(f"Posted {len(built.sent)} forecast(s) to {url} (HTTP {status}).")
        with ws.store() as con, transaction(con):
            record(con, sub, platform=platform, destination="; ".join(destinations),
                   questions_sent=built.sent)


def record(con: duckdb.DuckDBPyConnection, submission: Submission, *, platform: str,
           destination: str, questions_sent: set[str]) -> None:
    """Record the submitted rows (those of `questions_sent`) in the `submissions` table."""
    fields = ("platform", "destination", *history.SUBMISSION_FIELDS)
    con.executemany(
        f"INSERT INTO submissions ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
        [[platform, destination, *(r[f] for f in history.SUBMISSION_FIELDS)]
         for r in submission.records if r["question"] in questions_sent])


def _reasoning(row: dict[str, Any], priors: Priors, series: xr.Dataset, prior: float,
               own: float | None, p: float, source: Source) -> str:
    """Two or three sentences on what drives the forecast: the claims, the events, the pool."""
    scenario = priors.scenarios[row["scenario"]]
    members = list(scenario.members)
    low, high = row["interval"]
    weeks = series.sizes["week"]
    recent = series.indicator_events.isel(week=slice(-RECENT_WEEKS, None)).sum().item()
    before = series.indicator_events.isel(
        week=slice(-2 * RECENT_WEEKS, -RECENT_WEEKS)).sum().item()
    hits = int(series.scenario_events.sel(scenario=members).sum())
    trend = "more" if recent > before else "fewer" if recent < before else "as many"
    text = (f"Bayesian model: {row['probability']:.0%} (90% interval {low:.0%}–{high:.0%}) as of "
            f"{row['as_of']}. The claims of the op-ed 'From Allies to Adversaries' alone gave "
            f"{prior:.0%} when the question opened; {weeks} weeks of coded events "
            f"(GDELT/CAMEO) moved it: {hits} event(s) met the {scenario.id} rule in that window, "
            f"and precursor indicators counted {recent} event(s) in the last {RECENT_WEEKS} "
            f"weeks, {trend} than the {before} of the {RECENT_WEEKS} before.")
    if source == "judgment":
        text += f" Submitted: the forecaster's own judgment, {p:.0%}."
    elif own is not None:
        text += f" Pooled with the forecaster's judgment of {own:.0%}: {p:.0%}."
    return text
