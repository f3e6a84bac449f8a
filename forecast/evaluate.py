"""How good the forecasts are: scores of the workspace's resolved questions, and backtests.

Scores count only questions whose deadline has passed (scoring "by date T" questions earlier
biases toward YES, since they resolve YES early and NO only at the deadline), and only forecasts
made while a question was open.

A backtest replays the event history: at each step it fits the model to the `window` weeks up to
that day (the events known then), and forecasts rolling questions "will the scenario happen in the
next h weeks?" for every scenario and horizon, which the later events resolve. It scores them
beside two baselines from the same run: the claims alone (the model without events), and the
scenario's own base rate (the share of its past weeks with an event, Jeffreys-smoothed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import xarray as xr

from forecast import history, resolution, scoring
from forecast.errors import NotAvailableError
from forecast.fit import (
    Diagnostics,
    SamplerConfig,
    attempts,
    compile_model,
    gated,
    sample_gated,
)
from forecast.forecasts import QuestionSpec, forecast_questions
from forecast.inputs import claim_terms
from forecast.model import ModelConfig, build_model, model_data
from forecast.posterior import code_version
from forecast.prior_check import claims_only_forecasts
from forecast.priors import Priors, load_priors
from forecast.series import weekly_series, window
from forecast.workspace import Workspace

METHODS = ("model", "claims_only", "base_rate")


@dataclass(frozen=True)
class Scores:
    """`scoring.summarise` of the scored questions, and the questions not scored yet and why."""

    overall: dict[str, Any]
    questions: list[dict[str, Any]]
    calibration: list[dict[str, Any]]
    not_scored: list[dict[str, Any]]  # question, state, reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(ws: Workspace, *, today: dt.date) -> Scores:
    """`score_workspace` on the workspace's store and priors.

    Raises
    ------
    NotAvailableError
        The workspace has no store yet.
    """
    priors = load_priors(ws.priors_dir)
    if not ws.store_path.exists():
        raise NotAvailableError("no events or forecasts yet: run `forecast update` first")
    with ws.store(read_only=True) as con:
        return score_workspace(con, priors, today=today)


def backtest_workspace(ws: Workspace, *, start: dt.date | None, end: dt.date | None,
                       step_weeks: int, horizons: tuple[int, ...], window: int,
                       sampler: SamplerConfig, allow_unconverged: bool = False,
                       planned: Callable[[BacktestPlan], None] | None = None,
                       progress: Callable[[int, int, Diagnostics], None] | None = None,
                       resumed: Callable[[int, int], None] | None = None) -> Backtest:
    """`plan` and `backtest` on the workspace's store and priors; `planned` is told the plan
    before the first fit."""
    priors = load_priors(ws.priors_dir)
    with ws.store(read_only=True) as con:
        bp = plan(con, start=start, end=end, step_weeks=step_weeks, horizons=horizons,
                  window=window)
        if planned is not None:
            planned(bp)
        return backtest(con, priors, bp, sampler=sampler, cache_dir=ws.posteriors_dir,
                        allow_unconverged=allow_unconverged, progress=progress,
                        resumed=resumed)


def score_workspace(con: duckdb.DuckDBPyConnection, priors: Priors, *,
                    today: dt.date) -> Scores:
    """Scores of the model's recorded forecasts on resolved questions whose deadline has passed:
    the last forecast made while the question was open, and the time average over its open life.
    Also lists the questions not scored yet, and why."""
    states = resolution.current(con)
    questions = resolution.all_questions(priors)
    forecasts: dict[str, list[tuple[dt.date, float]]] = {}
    for run in history.runs(con):
        for row in history.question_rows(con, run_id=run["run_id"]):
            forecasts.setdefault(row["question"], []).append((row["as_of"], row["probability"]))
    rows, pending = [], []
    for ident, q in questions.items():
        state = states[ident].state if ident in states else "open"
        if state in ("open", "annulled"):
            pending.append({"question": ident, "state": state, "reason": state})
            continue
        if q.deadline > today:
            pending.append({"question": ident, "state": state, "reason": "deadline not passed"})
            continue
        closes = min(q.deadline, states[ident].resolved_on or q.deadline)
        made = sorted((d, p) for d, p in forecasts.get(ident, []) if d < closes)
        if not made:
            pending.append({"question": ident, "state": state,
                            "reason": "no forecast made while open"})
            continue
        outcome = int(state == "yes")
        rows.append({"question": ident, "scenario": q.scenario, "deadline": q.deadline,
                     "outcome": outcome, "as_of": made[-1][0], "probability": made[-1][1],
                     "time_averaged": scoring.time_averaged(made, opened=q.opened, closes=closes,
                                                            outcome=outcome)})
    return Scores(**scoring.summarise(rows), not_scored=pending)


@dataclass(frozen=True)
class BacktestPlan:
    """The steps of a backtest: as-of days (on the weekly grid ending at the data's last day)."""

    steps: list[dt.date]
    horizons: tuple[int, ...]  # weeks
    window: int  # weeks of history each fit sees
    data_start: dt.date
    data_end: dt.date
    continuous_from: dt.date  # the first day after the last gap of GAP_WEEKS or more


#: Weeks without any event that break the data: a default backtest starts after the last such gap.
GAP_WEEKS = 4


def plan(con: duckdb.DuckDBPyConnection, *, start: dt.date | None, end: dt.date | None,
         step_weeks: int, horizons: tuple[int, ...], window: int) -> BacktestPlan:
    """Steps from `start` to `end` (default: the last day whose shortest-horizon question the
    data resolve). The default start is the first day with `window` weeks of data before it,
    counted from where the data become continuous (after their last gap of `GAP_WEEKS` weeks or
    more): one old event must not plan hundreds of steps over years without data."""
    first, last = con.execute("SELECT min(date), max(date) FROM events").fetchone() or (None, None)
    if first is None:
        raise NotAvailableError("no events stored: import some with `forecast events import`")
    (after_gap,) = con.execute(
        "SELECT max(date) FROM (SELECT date, lag(date) OVER (ORDER BY date) AS previous "
        "FROM (SELECT DISTINCT date FROM events)) WHERE date - previous >= ?",
        [7 * GAP_WEEKS]).fetchone() or (None,)
    continuous = after_gap or first
    latest = last - dt.timedelta(weeks=min(horizons))
    end = min(end or latest, latest)
    start = max(start or continuous + dt.timedelta(weeks=window), first)  # no step before data
    steps = []
    day = last - dt.timedelta(weeks=-(-(last - end).days // 7))  # on the grid, not after `end`
    while day >= start:
        steps.append(day)
        day -= dt.timedelta(weeks=step_weeks)
    if not steps:
        raise NotAvailableError(
            f"no backtest step between {start} and {end}: the events run from {first} "
            + (f"(continuous from {continuous}) " if continuous > first else "")
            + f"to {last}; each step needs a later {min(horizons)}-week horizon to resolve "
            "(lower --start, --window or --horizons)")
    return BacktestPlan(steps[::-1], horizons, window, first, last, continuous)


@dataclass(frozen=True)
class Backtest:
    """A backtest's scores: ``forecasts`` has one row per step and question (``as_of``,
    ``scenario``, ``horizon_weeks``, ``deadline``, ``outcome`` and each method's probability);
    ``methods`` the ``overall`` and ``calibration`` of `scoring.summarise` per method."""

    plan: BacktestPlan
    sampler: SamplerConfig
    forecasts: list[dict[str, Any]]
    methods: dict[str, dict[str, Any]]
    refitted: int  # steps fitted more than once
    dropped: list[str]  # the as-of days of steps dropped (their last fit failed the gate)
    unconverged: int  # steps scored although their fit failed the gate (allow_unconverged)
    resumed: int  # steps read back from the checkpoint of an interrupted run

    @property
    def brier_skill(self) -> dict[str, float | None]:
        """1 - Brier of the model / Brier of each baseline."""
        brier = {m: self.methods[m]["overall"]["brier"] for m in METHODS}
        return {m: 1 - brier["model"] / brier[m] if brier[m] else None for m in METHODS[1:]}

    def as_dict(self) -> dict[str, Any]:
        bp = self.plan
        return {"steps": [str(t) for t in bp.steps], "horizons_weeks": list(bp.horizons),
                "window_weeks": bp.window, "data": [str(bp.data_start), str(bp.data_end)],
                "questions": len(self.forecasts), "refitted": self.refitted,
                "dropped": self.dropped, "unconverged": self.unconverged,
                "resumed": self.resumed,
                "sampler": {k: getattr(self.sampler, k)
                            for k in ("draws", "tune", "chains", "seed")},
                "methods": self.methods, "brier_skill": self.brier_skill,
                "forecasts": self.forecasts}


def backtest(con: duckdb.DuckDBPyConnection, priors: Priors, backtest_plan: BacktestPlan, *,
             sampler: SamplerConfig, cache_dir: Path, allow_unconverged: bool = False,
             progress: Callable[[int, int, Diagnostics], None] | None = None,
             resumed: Callable[[int, int], None] | None = None) -> Backtest:
    """Replay the plan's steps; score the model and both baselines on the resolved questions.

    A step whose fit fails the diagnostics gate is fitted again with the next seed; if that
    fails too, the step is dropped for every method (a forecast the update would refuse is not
    scored), unless `allow_unconverged`: then it is scored and counted.

    Each finished step is appended to a checkpoint in `cache_dir`, named by everything the
    step depends on (data, priors, plan, sampler settings, code version), so a run that was
    killed resumes where it stopped, and `resumed` is told (steps done, steps in all).
    """
    bp = backtest_plan
    full = weekly_series(con, priors.scenarios, as_of=bp.data_end,
                         start=min(bp.data_start, bp.steps[0] - dt.timedelta(weeks=bp.window))
                         - dt.timedelta(weeks=1))
    weeks = full.week.values.astype("datetime64[D]").astype(dt.date)
    where = {w: i for i, w in enumerate(weeks)}
    members = {s: list(spec.members) for s, spec in priors.scenarios.items()}
    any_event = {s: (full.scenario_events.sel(scenario=m).sum("scenario") > 0).values
                 for s, m in members.items()}  # (week,) per scenario
    t0 = bp.steps[0]
    claims_only = claims_only_forecasts(priors, cache_dir, _asked(members, bp.horizons, t0), t0,
                                        seed=sampler.seed)
    key = _identity(full, priors, bp, sampler, allow_unconverged)
    checkpoint = cache_dir / f"backtest-{key}.jsonl"
    done = _read_steps(checkpoint, bp)
    if done and resumed is not None:
        resumed(len(done), len(bp.steps))
    n_resumed = len(done)
    compiled, claims = None, claim_terms(priors)
    for k, t in enumerate(bp.steps):
        if str(t) in done:
            continue
        i = where[t]
        fitted = window(full, i, bp.window)
        if compiled is None:
            model = build_model(fitted, claims, ModelConfig())
            names = gated(model)
            compiled = compile_model(model)
        tree, diagnostics, fits = sample_gated(compiled, names, sampler,
                                               model_data(fitted, claims),
                                               attempts=attempts(allow_unconverged))
        step: dict[str, Any] = {"as_of": str(t), "fits": fits,
                                "converged": diagnostics.converged, "rows": []}
        if diagnostics.converged or allow_unconverged:
            result = forecast_questions(tree.posterior.to_dataset(), fitted,
                                        _asked(members, bp.horizons, t), t, {},
                                        seed=sampler.seed)
            seen = full.volume.values[: i + 1] > 0
            for s in members:
                past = any_event[s][: i + 1][seen]
                rate = (past.sum() + 0.5) / (len(past) + 1)
                for h in bp.horizons:
                    if i + h >= len(weeks):  # the data do not reach the deadline yet
                        continue
                    step["rows"].append({
                        "scenario": s, "horizon_weeks": h,
                        "deadline": str(t + dt.timedelta(weeks=h)),
                        "outcome": int(any_event[s][i + 1: i + 1 + h].any()),
                        "model": float(result.probability.sel(question=f"{s}-{h}w")),
                        "claims_only": claims_only[f"{s}-{h}w"],
                        "base_rate": float(1 - (1 - rate) ** h)})
        _append_step(checkpoint, step)
        done[str(t)] = step
        if progress is not None:
            progress(k + 1, len(bp.steps), diagnostics)
    steps = [done[str(t)] for t in bp.steps]
    dropped = [s["as_of"] for s in steps if not s["converged"] and not allow_unconverged]
    rows = [{"as_of": dt.date.fromisoformat(s["as_of"]), **r,
             "deadline": dt.date.fromisoformat(r["deadline"])}
            for s in steps if s["as_of"] not in dropped for r in s["rows"]]
    if not rows:
        raise NotAvailableError(
            f"every step's last fit failed the diagnostics gate ({len(dropped)} dropped): "
            "raise --draws/--tune, or pass --allow-unconverged to score them anyway")
    methods = {}
    for m in METHODS:
        summary = scoring.summarise([{"question": f"{r['scenario']}-{r['horizon_weeks']}w",
                                      "probability": r[m], "outcome": r["outcome"]}
                                     for r in rows])
        methods[m] = {"overall": summary["overall"], "calibration": summary["calibration"]}
    return Backtest(bp, sampler, rows, methods,
                    refitted=sum(s["fits"] > 1 for s in steps), dropped=dropped,
                    unconverged=sum(not s["converged"] for s in steps) if allow_unconverged
                    else 0, resumed=n_resumed)


def _identity(full: xr.Dataset, priors: Priors, bp: BacktestPlan, sampler: SamplerConfig,
              allow_unconverged: bool) -> str:
    """A short hash of everything a backtest's steps depend on."""
    h = hashlib.sha256(repr((priors.digest(), code_version(), bp, asdict(sampler),
                             allow_unconverged)).encode())
    for name in ("scenario_events", "indicator_events", "volume"):
        h.update(np.ascontiguousarray(full[name].values).tobytes())
    return h.hexdigest()[:16]


def _read_steps(path: Path, bp: BacktestPlan) -> dict[str, dict[str, Any]]:
    """The steps of the plan recorded in the checkpoint `path` (a line cut short by a kill is
    ignored)."""
    if not path.is_file():
        return {}
    steps: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            step = json.loads(line)
        except json.JSONDecodeError:
            continue
        steps.setdefault(step["as_of"], step)
    return {str(t): steps[str(t)] for t in bp.steps if str(t) in steps}


def _append_step(path: Path, step: dict[str, Any]) -> None:
    """One line per finished step, on disk before the next fit starts; where it cannot be
    written (a read-only workspace, a full disk) the backtest goes on without it."""
    try:
        path.parent.mkdir(exist_ok=True)
        with path.open("a") as f:
            f.write("\n" + json.dumps(step) + "\n")  # after a torn line, a fresh one
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass


def _asked(members: dict[str, list[str]], horizons: tuple[int, ...],
           t: dt.date) -> list[QuestionSpec]:
    """The rolling questions asked on day `t`: each scenario in (t, t + h weeks]."""
    return [QuestionSpec(f"{s}-{h}w", s, tuple(m), t + dt.timedelta(days=1),
                         t + dt.timedelta(weeks=h)) for s, m in members.items() for h in horizons]
