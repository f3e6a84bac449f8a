"""`forecast update`: fit the model to the events up to a date, gate it, record the forecasts.

An update is identified by the hash of everything that determines its numbers: the as-of date,
the weekly series and resolutions (data), the priors' files, the code version, the seed and the
sampler settings. If a run with the same identity is stored with its posterior, it is reused
instead of sampled again.

Finding that identity means building the weekly series, which needs the numerical libraries. So
each run also keeps a cheaper fingerprint of its raw inputs (`inputs_fingerprint`: the imports
and event count of the store, the resolutions by hand, the priors' files, the code version and
the settings), read with DuckDB alone: when nothing at all changed, the stored run is found
without importing NumPy, xarray, SciPy or PyMC. Those are imported only when needed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from forecast import history, posterior
from forecast.errors import AsOfError, ForecastError, NotAvailableError
from forecast.fit import SamplerConfig
from forecast.inputs import claim_terms, questions, read_inputs, store_digest
from forecast.posterior import code_version
from forecast.store import transaction
from forecast.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from forecast.scenarios import Verdict



@dataclass(frozen=True)
class UpdateResult:
    run: dict[str, Any]
    forecasts: list[dict[str, Any]]  # stable JSON rows, see `forecast.history`
    reused: bool


def inputs_fingerprint(con: duckdb.DuckDBPyConnection, ws: Workspace, as_of: dt.date,
                       sampler: SamplerConfig) -> str:
    """SHA-256 over every raw input of an update; equal fingerprints mean equal runs (the
    converse need not hold: an event outside the fitted weeks changes the fingerprint only)."""
    h = hashlib.sha256(repr((as_of, sorted(asdict(sampler).items()), ws.config.history_weeks,
                             code_version())).encode())
    for path in sorted(p for p in ws.priors_dir.rglob("*") if p.is_file()):
        h.update(path.relative_to(ws.priors_dir).as_posix().encode() + b"\0" + path.read_bytes())
    h.update(store_digest(con))
    return h.hexdigest()


def _data_hash(series: xr.Dataset, resolved: dict[str, Verdict]) -> str:
    import numpy as np

    h = hashlib.sha256()
    for name in ("scenario_events", "indicator_events", "volume", "scenario_events_before",
                 "weeks_before"):
        h.update(name.encode() + np.ascontiguousarray(series[name].values).tobytes())
    for dim in ("scenario", "indicator", "week"):
        h.update(" ".join(map(str, series[dim].values)).encode())
    h.update(repr(sorted(resolved.items())).encode())
    return h.hexdigest()


def run_update(ws: Workspace, *, as_of: dt.date, today: dt.date,
               sampler: SamplerConfig = SamplerConfig(), allow_unconverged: bool = False,
               what_if: bool = False) -> UpdateResult:
    """Fit, gate, save the posterior and record one history row per question; the run becomes
    the current forecast (`forecast.history.current_runs`), also when a stored one is reused.

    Parameters
    ----------
    today
        An as-of after it is refused, as is one before the first stored event, unless
        `what_if`: then the run is recorded as a what-if and never becomes the current forecast.

    Raises
    ------
    AsOfError
        The as-of date is after `today` or before the first stored event (without `what_if`).
    ConvergenceError
        When the fit fails the diagnostics gate and `allow_unconverged` is False (after the
        refits of `forecast.fit.sample_gated`); nothing is recorded then. With
        `allow_unconverged`, one fit is made and recorded as it is.
    """
    with ws.lock():
        # the store is opened only to read inputs and to record, not while sampling, so that
        # readers (show, history, events list) are not locked out for the length of a fit
        with ws.store() as con:
            _check_as_of(con, as_of, today, what_if=what_if)
            fingerprint = inputs_fingerprint(con, ws, as_of, sampler)
            stored = _reusable(ws, con, "inputs_hash", fingerprint, allow_unconverged)
            if stored:
                with transaction(con):
                    history.make_current(con, stored["run_id"], what_if=what_if)
                return UpdateResult(stored, history.question_rows(con, run_id=stored["run_id"]),
                                    True)
            from forecast import resolution
            from forecast.priors import load_priors

            priors = load_priors(ws.priors_dir)
            series, resolved = read_inputs(con, priors, as_of, ws.config.history_weeks)
            identity = {"as_of": as_of, "data_hash": _data_hash(series, resolved),
                        "priors_hash": priors.digest(), "code_version": code_version(),
                        **asdict(sampler)}
            run_id = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:16]
            if _reusable(ws, con, "run_id", run_id, allow_unconverged):
                with transaction(con):
                    con.execute("UPDATE runs SET inputs_hash = ? WHERE run_id = ?",
                                [fingerprint, run_id])
                    history.make_current(con, run_id, what_if=what_if)
                    resolution.sync(con, priors, by="forecast update", today=today)
                return UpdateResult(history.find_run(con, run_id) or {},
                                    history.question_rows(con, run_id=run_id), True)

        import numpy as np

        from forecast.fit import attempts, compile_model, gated, sample_gated
        from forecast.forecasts import PARETO_K_MAX, forecast_questions
        from forecast.model import ModelConfig, build_model

        claims = claim_terms(priors)
        model = build_model(series, claims, ModelConfig())
        # a failing fit is refitted (low-rank mass matrix, longer chains: `sample_gated`), unless
        # the user takes the first fit as it is
        tries = attempts(allow_unconverged)
        tree, diagnostics, _fits = sample_gated(compile_model(model), gated(model), sampler,
                                                attempts=tries)
        if not allow_unconverged:
            diagnostics.check()
        result = forecast_questions(tree.posterior.to_dataset(), series, questions(priors),
                                    as_of, resolved, seed=sampler.seed, claims=claims)
        k = result.attrs.get("claims_pareto_k")  # None without claims
        if k is not None and k > PARETO_K_MAX:
            # the claims move the posterior too far for reweighting: fit without them, and say
            # nothing (NaN) if that fit fails the gate
            bare_model = build_model(series, (), ModelConfig())
            bare, bare_diagnostics, _fits = sample_gated(compile_model(bare_model),
                                                         gated(bare_model), sampler,
                                                         attempts=tries)
            result["without_claims"] = forecast_questions(
                bare.posterior.to_dataset(), series, questions(priors), as_of, resolved,
                seed=sampler.seed).probability.where(bare_diagnostics.converged)
        _check_probabilities(result)
        posterior_file = f"posteriors/{run_id}.nc"
        run = {**identity, "run_id": run_id, "inputs_hash": fingerprint,
               "posterior_file": posterior_file,
               **asdict(diagnostics), "converged": diagnostics.converged,
               "allow_unconverged": allow_unconverged, "simulated": ws.config.example,
               "claims_pareto_k": k, "what_if": what_if}
        # the priors are kept beside the posterior, so that a later explanation can refit with them
        posterior.save(posterior.posterior_path(ws, posterior_file), tree, series,
                       {**run, "priors_files": json.dumps(priors.files())})
        rows = [{"question": str(q), "scenario": str(f.scenario.item()),
                 "deadline": _date(f.deadline.values), "probability": float(f.probability),
                 "interval": [float(f.low), float(f.high)], "status": str(f.status.item()),
                 "without_claims": float(f.without_claims)
                 if claims and np.isfinite(f.without_claims) else None}
                for q, f in ((q, result.sel(question=q)) for q in result.question.values)]
        with ws.store() as con:
            with transaction(con):
                history.record_run(con, run, rows)
                resolution.sync(con, priors, by="forecast update", today=today)
            return UpdateResult(run, history.question_rows(con, run_id=run_id), False)


#: The as-of days any update may have, what-ifs included: past them, the weeks before and the
#: questions' horizons after leave the calendar.
AS_OF_RANGE = (dt.date(1979, 1, 1), dt.date(2199, 12, 31))


def _check_as_of(con: duckdb.DuckDBPyConnection, as_of: dt.date, today: dt.date, *,
                 what_if: bool) -> None:
    """Refuse an as-of in the future or before the data, unless `what_if`; a what-if's outside
    `AS_OF_RANGE` (see `run_update`)."""
    if what_if:
        low, high = AS_OF_RANGE
        if not low <= as_of <= high:
            raise AsOfError(f"--as-of {as_of}: expected a day from {low} to {high}")
        return
    hint = ("; pass --what-if to fit it anyway (recorded as a what-if, never the current "
            "forecast)")
    if as_of > today:
        raise AsOfError(f"--as-of {as_of} is after today ({today}): a forecast uses the events "
                        f"known by a day that has come{hint}")
    (first,) = con.execute("SELECT min(date) FROM events").fetchone() or (None,)
    if first is None:
        raise NotAvailableError("no events stored: import some with `forecast events import`")
    if as_of < first:
        raise AsOfError(f"--as-of {as_of} is before the first stored event ({first}): there "
                        f"is nothing to fit{hint}")


def _check_probabilities(result: xr.Dataset) -> None:
    """Refuse forecasts that are not probabilities (NaN from a broken fit), whatever the flags:
    nothing is recorded then. The mean may lie outside the 90% interval (a few draws that
    surely fire), so each number is checked on its own."""
    ok = ((result.probability >= 0) & (result.probability <= 1) & (result.low >= 0)
          & (result.low <= 1) & (result.high >= 0) & (result.high <= 1))  # NaN compares false
    if not bool(ok.all()):
        bad = [str(q) for q in result.question.values[~ok.values]]
        raise ForecastError(f"the fit gave {len(bad)} question(s) no probability ("
                            f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): nothing is "
                            "recorded; run `forecast update` again")


def _reusable(ws: Workspace, con: duckdb.DuckDBPyConnection, key: str, value: str,
              allow_unconverged: bool) -> dict[str, Any] | None:
    """The latest stored run with `key` = `value` whose posterior is still there, unless it
    failed the gate and `allow_unconverged` is off."""
    for run in reversed(history.query(con, f"SELECT * FROM runs WHERE {key} = ? "
                                      "ORDER BY created_at", [value])):
        if (ws.root / run["posterior_file"]).is_file() and (run["converged"]
                                                             or allow_unconverged):
            return run
    return None


def _date(value: np.datetime64) -> dt.date:
    return value.astype("datetime64[D]").astype(dt.date)
