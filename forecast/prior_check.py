"""The model's prior predictive check of the claims: what the priors imply, next to what was said.

The "prior" of a scenario is the model's posterior given its claims alone (no events). For every
claim we sample that prior and report the implied P(scenario within horizon), computed exactly as
the claim constraint computes it, beside the claim's stated range and its own Beta constraint. A
claim whose stated range misses the implied 90% interval is marked: the other claims on the same
scenarios, or the model's structure, pull against it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import xarray as xr

from forecast.files import write_cache
from forecast.fit import Diagnostics, SamplerConfig, compile_model, gated, sample_gated
from forecast.forecasts import QuestionSpec, claim_draws, forecast_questions
from forecast.inputs import claim_terms, questions
from forecast.model import ModelConfig, build_model
from forecast.posterior import code_version, read_posterior
from forecast.priors import Priors
from forecast.series import make_series

PRIOR_SAMPLER = SamplerConfig(draws=1000, tune=1000, chains=2, seed=20250701)


def claims_only_posterior(priors: Priors, cache_dir: Path,
                          sampler: SamplerConfig = PRIOR_SAMPLER, *,
                          with_claims: bool = True, as_stated: bool = False) -> xr.DataTree:
    """The model fitted to the claims alone (one week without data: no likelihood), or with
    `with_claims` False to nothing (the broad priors alone), or with `as_stated` to the claims
    as the document states them (`forecast.inputs.claim_terms`). Cached in `cache_dir` by the
    priors' digest, the claims' Betas as the model takes them (they depend on the evidence budget
    too), the code version and the sampler settings; a fit that fails the gate is refitted
    (`forecast.fit.sample_gated`). Its ``constant_data`` is that empty week; its attrs hold the
    diagnostics."""
    kind = ("no-claims" if not with_claims else "as-stated" if as_stated else "claims-only")
    terms = claim_terms(priors, as_stated=as_stated) if with_claims else []
    digest = hashlib.sha256(f"{priors.digest()} {terms}".encode()).hexdigest()
    cache = cache_dir / (f"{kind}-{digest[:16]}-{code_version()}-"
                         f"{sampler.draws}-{sampler.tune}-{sampler.chains}-{sampler.seed}.nc")
    if cache.is_file():
        return read_posterior(cache, "then it is sampled again when needed")
    scenarios = [s for s, spec in priors.scenarios.items() if spec.resolution]
    series = make_series(np.array([np.datetime64(dt.date(2000, 1, 2), "D")]),
                         {s: np.zeros(1) for s in scenarios}, {}, np.zeros(1),
                         counter={s for s in scenarios if priors.scenarios[s].counter})
    model = build_model(series, terms, ModelConfig())
    tree, diagnostics, _fits = sample_gated(compile_model(model), gated(model), sampler)
    out = xr.DataTree.from_dict({"posterior": tree.posterior.to_dataset(),
                                 "constant_data": series})
    out.attrs = {k: int(v) if isinstance(v, bool) else v
                 for k, v in diagnostics.as_dict().items()}
    write_cache(cache, lambda tmp: out.to_netcdf(tmp, engine="h5netcdf"))
    return out


def prior_predictive(priors: Priors, cache_dir: Path) -> list[dict]:
    """Per claim: the model's prior mean and 90% interval of the claimed probability, and the
    prior fit's diagnostics (sampled once per priors version, see `claims_only_posterior`)."""
    tree = claims_only_posterior(priors, cache_dir)
    diagnostics = _diagnostics(tree)
    rows = claim_probabilities(priors, tree.posterior.to_dataset(),
                               tree["constant_data"].to_dataset())
    return [{**r, "diagnostics": diagnostics} for r in rows]


def claims_only_forecasts(priors: Priors, cache_dir: Path, questions: list[QuestionSpec],
                          as_of: dt.date, *, seed: int) -> dict[str, float]:
    """P(yes) of each question under the claims alone, for the part of its window after
    `as_of`: the forecast a forecaster would make from the document without any event data."""
    return _forecasts(claims_only_posterior(priors, cache_dir), questions, as_of, seed)


def _forecasts(tree: xr.DataTree, questions: list[QuestionSpec], as_of: dt.date,
               seed: int) -> dict[str, float]:
    """P(yes) of each question from a fit without data (`claims_only_posterior`)."""
    result = forecast_questions(tree.posterior.to_dataset(), tree["constant_data"].to_dataset(),
                                questions, as_of, {}, seed=seed)
    return {str(q): float(p) for q, p in zip(result.question.values, result.probability.values,
                                              strict=True)}


def _diagnostics(tree: xr.DataTree) -> dict:
    """The diagnostics kept in a cached fit's attrs (NetCDF may read them back as text)."""
    a = tree.attrs
    return Diagnostics(float(a["r_hat_max"]), float(a["ess_bulk_min"]), int(a["divergences"]),
                       str(a["worst"])).as_dict()


def question_priors(priors: Priors, cache_dir: Path) -> tuple[list[dict], dict[str, dict]]:
    """Per question, before any event: P(yes) from the claims alone (``claims_only``, the
    document's forecast) and from the broad priors alone (``no_claims``), for the question's whole
    window; and the diagnostics of both fits. The gap between the two is what the document says
    beyond the model's weakly informative priors."""
    specs = questions(priors)
    as_of = min((q.opened for q in specs), default=dt.date.today()) - dt.timedelta(days=1)
    rows = {q.id: {"question": q.id, "scenario": q.scenario, "deadline": q.deadline}
            for q in specs}
    diagnostics = {}
    for kind, with_claims in (("claims_only", True), ("no_claims", False)):
        tree = claims_only_posterior(priors, cache_dir, with_claims=with_claims)
        for q, p in _forecasts(tree, specs, as_of, PRIOR_SAMPLER.seed).items():
            rows[q][kind] = p
        diagnostics[kind] = _diagnostics(tree)
    return list(rows.values()), diagnostics


def claim_probabilities(priors: Priors, posterior: xr.Dataset,
                        series: xr.Dataset) -> list[dict]:
    """Per claim: mean and 90% interval over `posterior` draws (fitted to `series`) of the
    probability the claim speaks of, computed as the model computes it (`forecast.model`), and
    whether the stated range overlaps that interval."""
    terms = claim_terms(priors)
    p = claim_draws(posterior, series, terms)  # (sample, claim)
    rows = []
    for j, (term, constraint) in enumerate(zip(terms, priors.constraints(), strict=True)):
        low, high = np.quantile(p[:, j], [0.05, 0.95])
        stated = constraint.claim.stated
        rows.append({"id": term.id, "mean": float(p[:, j].mean()),
                     "interval": [float(low), float(high)], "stated_range": list(stated),
                     "consistent": bool(low <= stated[1] and high >= stated[0])})
    return rows


def plot_prior_check(priors: Priors, predictive: list[dict], path: Path) -> None:
    """One row per claim: stated range (grey band), rated constraint (blue), model prior (black)."""
    from forecast.plots import plt, save_png

    constraints = priors.constraints()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(constraints) + 1.4))
    for i, (c, pred) in enumerate(zip(constraints, predictive, strict=True)):
        y = len(constraints) - 1 - i
        lo, hi = c.claim.stated
        ax.barh(y, hi - lo, left=lo, height=0.8, color="0.85",
                label="stated range" if i == 0 else None)
        ax.plot(c.interval(), [y + 0.18] * 2, color="tab:blue", lw=3,
                label="claim's rated Beta, 90%" if i == 0 else None)
        ax.plot(pred["interval"], [y - 0.18] * 2, color="black", lw=2,
                label="model prior, 90%" if i == 0 else None)
        ax.plot(pred["mean"], y - 0.18, "o", color="black", ms=4)
    labels = [f"{c.claim.id} ({c.claim.horizon.phrase})" for c in constraints]
    ax.set_yticks(range(len(constraints)), labels[::-1], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(scenario happens within the horizon)")
    ax.set_title("Claims and the model's prior (given the claims alone)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.06), ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    save_png(fig, path)
