"""`forecast explain`: why the forecasts moved between the last two updates.

Method: sequential counterfactual refits. Between the previous update A and the latest B we change
one input at a time, refit the model (same seed and sampler settings as B) and recompute every
question's probability; each step's change is that cause's contribution:

1. **changed priors**: A's data with B's priors (from the copy kept in each posterior file).
   Skipped (zero) when the priors and sampler settings did not change.
2. **passage of time**: B's as-of date, but no rule or indicator events after A's as-of date: the
   new weeks are quiet weeks. Events dated before A's as-of but imported since also enter here.
3. **new indicator events**, one indicator at a time (in the order of the model's indicators).
4. **new scenario events and resolutions**: the rule events and resolutions known at B. This last
   refit is B's own inputs, so it should reproduce B; whatever it does not reproduce is reported
   as the residual.

After a single update there is no A: the update is explained against the document alone, the
forecast of each question from the claims without any event (`forecast.prior_check`), and
steps 2-4 start from no event known at all (every week with data taken as quiet).

An explanation is kept in the workspace's posteriors folder, named by what it depends on (both
runs, the imports, the resolutions by hand, the code), so asking again (for one question, or in
`forecast report --explain`) refits nothing.

The contributions telescope: previous + sum(contributions) + residual = latest, exactly. Each
contribution depends on the order of the steps (an interaction is credited to the later step),
and is subject to the Monte Carlo error of two fits; both are the price of an exact sum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import xarray as xr

from forecast import history, posterior, resolution
from forecast.errors import ForecastError
from forecast.events import list_events
from forecast.files import write_cache
from forecast.fit import SamplerConfig, attempts, compile_model, gated, sample_gated
from forecast.forecasts import forecast_questions
from forecast.inputs import claim_terms, questions, read_inputs, store_digest
from forecast.model import ModelConfig, build_model, model_data
from forecast.prior_check import PRIOR_SAMPLER, claims_only_forecasts
from forecast.priors import Priors, load_priors
from forecast.scenarios import Verdict
from forecast.workspace import Workspace


def _priors_of(tree: xr.DataTree, folder: Path) -> Priors:
    """The priors an update was fitted with, from the copy in its posterior file."""
    for name, text in json.loads(tree.attrs["priors_files"]).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_priors(folder)


def _compiled(priors: Priors, series: xr.Dataset) -> tuple[Any, list[str]]:
    """The model of `series` compiled, and the names its gate judges."""
    model = build_model(series, claim_terms(priors), ModelConfig())
    return compile_model(model), gated(model)


def _probabilities(priors: Priors, series: xr.Dataset, as_of: dt.date,
                   resolved: dict[str, Verdict], sampler: SamplerConfig, tries: int,
                   compiled: tuple[Any, list[str]] | None = None) -> dict[str, float]:
    model, names = compiled or _compiled(priors, series)
    # as the update sampled (a fit failing the gate refitted, unless the update took its first
    # fit as it was), so that the last refit is B
    tree, _diagnostics, _fits = sample_gated(model, names, sampler,
                                             model_data(series, claim_terms(priors)),
                                             attempts=tries)
    result = forecast_questions(tree.posterior.to_dataset(), series, questions(priors), as_of,
                                resolved, seed=sampler.seed)
    return {str(q): float(p) for q, p in zip(result.question.values,
                                              result.probability.values, strict=True)}


@dataclass(frozen=True)
class Explanation:
    """Per question (``question``, ``previous``, ``latest``, ``change``, ``contributions`` by
    cause, ``residual``), from `previous_as_of` (None: the claims alone) to `as_of`."""

    previous_as_of: dt.date | None
    as_of: dt.date
    method: str
    questions: list[dict[str, Any]]
    events: list[dict[str, Any]]  # the new events that count for a rule or an indicator
    warnings: list[str]  # unconverged fits

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(ws: Workspace, question: str | None = None) -> Explanation:
    """Contributions of each cause to the change of every question (or one) between the last
    two updates (after a single one: from the claims alone to it), and the new events that
    drove the largest contributions."""
    nothing = ForecastError("nothing to explain: run `forecast update` first")
    if not ws.store_path.exists():
        raise nothing
    with ws.store(read_only=True) as con:
        runs = history.current_runs(con)  # what-ifs are not explained
        if not runs:
            raise nothing
        before, after = runs[-2] if len(runs) > 1 else None, runs[-1]
        rows_before, rows_after = ({r["question"]: r for r in history.question_rows(
            con, run_id=run["run_id"])} if run else {} for run in (before, after))
        (first_event,) = con.execute("SELECT min(date) FROM events").fetchone() or (None,)
        cache = ws.posteriors_dir / f"explain-{_key(con, before, after)}.json"
    if question is not None and question not in rows_after:
        raise ForecastError(f"unknown question '{question}'; known: {', '.join(rows_after)}")
    if cache.is_file():
        full = _read(cache)
    else:
        full = _explain_all(ws, before, after, rows_before, rows_after, first_event)
        text = json.dumps(full.as_dict(), default=str)
        write_cache(cache, lambda tmp: Path(tmp).write_text(text))
    return replace(full, questions=[q for q in full.questions
                                    if question is None or q["question"] == question])


def _key(con: Any, before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """What an explanation depends on: both runs (data, priors, code), and the store's imports
    and resolutions by hand (events imported since B enter its counterfactuals)."""
    h = hashlib.sha256(repr((before and before["run_id"], after["run_id"],
                             posterior.code_version())).encode())
    h.update(store_digest(con))
    return h.hexdigest()[:16]


def _read(path: Path) -> Explanation:
    data = json.loads(path.read_text())
    day = {k: data[k] and dt.date.fromisoformat(data[k]) for k in ("previous_as_of", "as_of")}
    return Explanation(**{**data, **day})


def _explain_all(ws: Workspace, before: dict[str, Any] | None, after: dict[str, Any],
                 rows_before: dict[str, dict], rows_after: dict[str, dict],
                 first_event: dt.date | None) -> Explanation:
    """The explanation of every question (`explain`)."""
    trees = [posterior.open_run(ws, r) for r in (before, after) if r is not None]
    if any("priors_files" not in t.attrs for t in trees):
        raise ForecastError("the posterior of an update has no copy of its priors (made by an "
                            "older version): run `forecast update` twice with this version")
    sampler = SamplerConfig(draws=after["draws"], tune=after["tune"], chains=after["chains"],
                            seed=after["seed"])
    tries = attempts(after["allow_unconverged"])  # as the update sampled
    as_of_b = after["as_of"]
    with tempfile.TemporaryDirectory() as folder:
        priors = _priors_of(trees[-1], Path(folder))
        steps: list[tuple[str, dict[str, float]]] = []
        if before is None:  # against the document alone: no event known at all
            as_of_a = (first_event or as_of_b) - dt.timedelta(days=1)
            specs = questions(priors)
            previous = claims_only_forecasts(priors, ws.posteriors_dir, specs,
                                             min(q.opened for q in specs) - dt.timedelta(days=1),
                                             seed=PRIOR_SAMPLER.seed)
        else:
            as_of_a = before["as_of"]
            previous = {q: r["probability"] for q, r in rows_before.items()}
        same_settings = before is None or all(
            before[k] == after[k] for k in ("priors_hash", "seed", "draws", "tune", "chains"))
        if not same_settings:
            series_a = trees[0]["constant_data"].to_dataset()
            with ws.store(read_only=True) as con:
                resolved_a = resolution.verdicts(con, priors, until=as_of_a)
            steps.append(("changed priors (and sampler settings)",
                          _probabilities(priors, series_a, as_of_a, resolved_a, sampler, tries)))
        with ws.store(read_only=True) as con:
            weeks = ws.config.history_weeks
            quiet, resolved_quiet = read_inputs(con, priors, as_of_b, weeks, known_until=as_of_a)
            latest, resolved_latest = read_inputs(con, priors, as_of_b, weeks)
            events = _events_that_mattered(con, priors, as_of_a + dt.timedelta(days=1), as_of_b)
        compiled = _compiled(priors, quiet)
        steps.append(("passage of time (quiet weeks)",
                      _probabilities(priors, quiet, as_of_b, resolved_quiet, sampler, tries,
                                     compiled)))
        counterfactual = quiet.copy(deep=True)
        for indicator in latest.indicator.values:
            new = latest.indicator_events.sel(indicator=indicator)
            if (new == counterfactual.indicator_events.sel(indicator=indicator)).all():
                continue
            counterfactual["indicator_events"].loc[{"indicator": indicator}] = new
            steps.append((f"new events: indicator {indicator}",
                          _probabilities(priors, counterfactual, as_of_b, resolved_quiet,
                                         sampler, tries, compiled)))
        steps.append(("new scenario events and resolutions",
                      _probabilities(priors, latest, as_of_b, resolved_latest, sampler,
                                     tries, compiled)))
    out = []
    for q in rows_after:
        level, contributions = previous.get(q), {}
        for cause, probabilities in steps:
            if level is not None:
                contributions[cause] = probabilities[q] - level
            level = probabilities[q]
        total = rows_after[q]["probability"] - previous[q] if q in previous else None
        out.append({"question": q, "previous": previous.get(q),
                    "latest": rows_after[q]["probability"], "change": total,
                    "contributions": contributions,
                    "residual": None if level is None else rows_after[q]["probability"] - level})
    warnings = [f"the update as of {run['as_of']} did not pass the diagnostics gate (published "
                f"with --allow-unconverged: R-hat max {run['r_hat_max']:.3f}, bulk ESS min "
                f"{run['ess_bulk_min']:.0f}, {run['divergences']} divergences): its numbers, and "
                "so this explanation, are not reliable"
                for run in (before, after) if run is not None and not run["converged"]]
    method = "sequential counterfactual refits (see forecast/explain.py)" + (
        "" if before else "; the previous forecast is the claims' alone, before any event")
    return Explanation(as_of_a if before else None, as_of_b, method, out, events, warnings)


def _events_that_mattered(con: Any, priors: Priors, since: dt.date,
                          until: dt.date) -> list[dict]:
    """New events that meet a scenario's rule or an indicator's filter, most-reported first."""
    filters = [(s.id, s.resolution) for s in priors.scenarios.values() if s.resolution]
    filters += [(i.id, i.filter) for s in priors.scenarios.values() for i in s.indicators]
    out = []
    for ident, flt in filters:
        for e in list_events(con, since=since, until=until, actor1=flt.actor1, actor2=flt.actor2,
                             codes=flt.codes, min_sources=flt.min_sources):
            out.append({"date": e["date"], "actor1": e["actor1"], "actor2": e["actor2"],
                        "event_code": e["event_code"], "num_sources": e["num_sources"],
                        "source_url": e["source_url"], "counts_for": ident})
    return sorted(out, key=lambda e: (-e["num_sources"], e["date"]))[:20]
