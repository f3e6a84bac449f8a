"""Backtests on simulated worlds where the truth is known: is the model worth more than a base rate?

Three families of worlds, each with the bundled scenarios and indicators, 104 weeks from
2024-07-07 (so the document, published 2025-07-01, speaks of weeks inside them):

- **broad**: every parameter drawn from the model's own priors (`forecast.simulate`): the
  document may be wrong;
- **claims**: the scenario parameters (rates, loadings, P(retaliation), P(channel | R)) taken
  from one draw of the model fitted to the claims alone (`forecast.prior_check`), the claims
  rated and within the document's budget as the model takes them, the rest from the priors:
  the world is as uncertain as our reading of the document, so the claims can help there only by
  the few events they are worth;
- **right**: the same with the claims as the document states them (each claim's unrated Beta,
  90% of it in the stated range, no budget: `forecast.inputs.claim_terms`): the document is
  right, and the model still weighs it as a C-rated op-ed.

At as-of weeks 26, 52 and 78 every method sees the same history (every week up to the as-of
day) and forecasts "will it happen in the next h weeks?" for every scenario (and the union) and
h = 4, 13, 26 weeks, which the world's later weeks resolve:

- **model**: the toolkit's fit, with the update's sampler settings, the document's claims;
- **no_claims**: the same fit without the claims;
- **base_rate**: the share of past weeks with an event, Jeffreys-smoothed, as in `forecast
  backtest`;
- **oracle**: knows the true parameters, but neither the future nor whether Moscow retaliates
  or which channels are on: the escalation path is filtered from the history (indicators and
  scenario events; a particle filter), and P(R), P(on | R) follow from the quiet so far.

A world that is not plausible (`forecast.simulate.plausible`: an indicator averaging more
events a week than the feed's volume, or a scenario firing more than once a week) is drawn
again, and the rejected draws are counted. A fit that fails the diagnostics gate is refitted
as an update refits it (`forecast.fit.sample_gated`); if the last fit fails too, the step is
dropped for every method and counted.

    python validation/worlds.py [--worlds 20] [--families broad,claims,right] [--budget B]
                                [--out reports/validation] [--name worlds.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import forecast.priors
from forecast.fit import SamplerConfig, compile_model, gated, sample_gated
from forecast.forecasts import QuestionSpec, draws_of, forecast_questions
from forecast.inputs import claim_terms
from forecast.model import ModelConfig, build_model, model_data
from forecast.prior_check import claims_only_posterior
from forecast.priors import Priors, load_priors
from forecast.scenarios import all_indicators
from forecast.series import week_ends, window
from forecast.simulate import World, draw_parameters, plausible_world
from forecast.workspace import bundled_priors
from validation import measured_at

START, WEEKS = dt.date(2024, 7, 7), 104
STEPS = (26, 52, 78)
HORIZONS = (4, 13, 26)
METHODS = ("model", "no_claims", "base_rate", "oracle")
PARTICLES = 4000
SCENARIO_PARAMS = ("beta", "gamma", "retaliation", "channel")


def draw_world(family: str, rng: np.random.Generator, scenarios: list[str],
               indicators: list[str], counter: set[str], claims_prior: dict
               ) -> tuple[World, int]:
    """A plausible world of the family, and how many implausible ones were drawn before it;
    `claims_prior` holds the scenario parameters' draws of each claims-conditioned family."""
    def draw() -> dict:
        params = draw_parameters(rng, len(scenarios), len(indicators), WEEKS,
                                 counter=np.isin(scenarios, list(counter)))
        if family in claims_prior:
            prior = claims_prior[family]
            j = rng.integers(prior["beta"].shape[0])
            params |= {k: prior[k][j] for k in SCENARIO_PARAMS}
        return params

    weeks = week_ends(START, START + dt.timedelta(weeks=WEEKS))
    return plausible_world(rng, scenarios, indicators, weeks, draw, counter=counter)


def oracle(world: World, t: int, members: list[list[int]], rng: np.random.Generator
           ) -> np.ndarray:
    """P(an event of each member set in the h weeks after week t), for every h of HORIZONS, under
    the true parameters: a bootstrap particle filter over x on the indicators, weighted at the
    end by the scenario events given each particle's path (R and z marginalised)."""
    p, s = world.params, world.series
    y = s.indicator_events.values[:, : t + 1]
    n = s.scenario_events.values[:, : t + 1]
    exposure = (s.volume.values / s.volume.values.mean())[: t + 1]
    x = rng.standard_normal(PARTICLES) / np.sqrt(1 - p["rho"] ** 2)
    paths = np.empty((PARTICLES, t + 1))
    shape = 1 / np.maximum(p["phi"], 1e-9)[:, None]
    for week in range(t + 1):
        if week:
            x = p["rho"] * x + rng.standard_normal(PARTICLES)
        paths[:, week] = x
        mean = exposure[week] * np.exp(p["mu"][:, None] + p["lambda"][:, None] * x)
        # negative binomial log-likelihood of the week's indicator counts, up to a constant
        logw = (y[:, week, None] * np.log(mean / (mean + shape))
                + shape * np.log(shape / (mean + shape))).sum(axis=0)
        w = np.exp(logw - logw.max())
        pick = rng.choice(PARTICLES, PARTICLES, p=w / w.sum())
        x, paths = x[pick], paths[pick]
    rate = np.exp(p["beta"][None, :, None] + p["gamma"][None, :, None] * paths[:, None, :])
    hazard = rate.sum(axis=2)  # (particle, scenario)
    log_counts = (n[None] * np.log(rate)).sum(axis=2) - hazard
    happened = n.sum(axis=1) > 0
    q, channel, counter = p["retaliation"], p["channel"], p["counter"]
    quiet = channel * np.exp(-hazard) + 1 - channel
    own = np.where(happened, np.log(channel) + log_counts, np.log(quiet))  # (particle, scenario)
    # R is judged from the forms of retaliation; a counter-scenario's switch is its own
    log_r = np.log(q) + own[:, ~counter].sum(1)
    known = (happened & ~counter).any()
    log_forms = log_r if known else np.logaddexp(log_r, np.log1p(-q))
    log_weight = log_forms + own[:, counter].sum(1)
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    p_r = np.ones(PARTICLES) if known else np.exp(log_r - log_forms)
    p_on = np.where(happened, 1.0, channel * np.exp(-hazard) / quiet)
    ahead = np.empty((PARTICLES, max(HORIZONS)))
    x = paths[:, -1]
    for h in range(max(HORIZONS)):
        x = p["rho"] * x + rng.standard_normal(PARTICLES)
        ahead[:, h] = x
    future = np.cumsum(np.exp(p["beta"][None, :, None] + p["gamma"][None, :, None]
                              * ahead[:, None, :]), axis=2)  # (particle, scenario, week)
    out = np.empty((len(members), len(HORIZONS)))
    for i, m in enumerate(members):
        for k, h in enumerate(HORIZONS):
            quiet_ahead = 1 + p_on[:, m] * np.expm1(-future[:, m, h - 1])
            forms = np.prod(quiet_ahead, axis=1, where=~counter[m])
            out[i, k] = weight @ (1 - np.prod(quiet_ahead, axis=1, where=counter[m])
                                  * (1 - p_r + p_r * forms))
    return out


class Fitter:
    """The model with or without claims, compiled once per number of weeks."""

    def __init__(self, priors: Priors, sampler: SamplerConfig):
        self.claims, self.sampler, self.compiled = claim_terms(priors), sampler, {}

    def posterior(self, series, with_claims: bool):
        claims = self.claims if with_claims else ()
        key = (series.sizes["week"], with_claims)
        if key not in self.compiled:
            model = build_model(series, claims, ModelConfig())
            self.compiled[key] = (compile_model(model), gated(model))
        compiled, names = self.compiled[key]
        tree, diagnostics, fits = sample_gated(compiled, names, self.sampler,
                                               model_data(series, claims))
        return (tree.posterior.to_dataset() if diagnostics.converged else None), fits - 1


def run_world(family: str, seed: int, priors: Priors, fitter: Fitter, claims_prior) -> dict:
    rng = np.random.default_rng(seed)
    scenarios = [s for s, spec in priors.scenarios.items() if spec.resolution]
    indicators = list(all_indicators(priors.scenarios))
    counter = {s for s in scenarios if priors.scenarios[s].counter}
    world, rejected = draw_world(family, rng, scenarios, indicators, counter, claims_prior)
    asked = {s: list(spec.members) for s, spec in priors.scenarios.items()}
    members = [[scenarios.index(m) for m in ms] for ms in asked.values()]
    weeks = world.series.week.values.astype("datetime64[D]").astype(dt.date)
    fires = np.stack([world.series.scenario_events.values[m].sum(axis=0) > 0
                      for m in members])  # (question set, week)
    rows, refits, dropped = [], 0, 0
    for t in STEPS:
        as_of = weeks[t - 1]
        history = window(world.series, t - 1, t)
        questions = [QuestionSpec(f"{s}-{h}w", s, tuple(m), as_of + dt.timedelta(days=1),
                                  as_of + dt.timedelta(weeks=h))
                     for s, m in asked.items() for h in HORIZONS]
        probs = {}
        for method, with_claims in (("model", True), ("no_claims", False)):
            post, attempts = fitter.posterior(history, with_claims)
            refits += attempts > 0
            if post is None:
                break
            f = forecast_questions(post, history, questions, as_of, {}, seed=seed)
            probs[method] = f.probability.values.reshape(len(asked), len(HORIZONS))
        if len(probs) < 2:
            dropped += 1
            continue
        probs["oracle"] = oracle(world, t - 1, members, rng)
        for i, s in enumerate(asked):
            past = fires[i, :t]
            rate = (past.sum() + 0.5) / (t + 1)
            for k, h in enumerate(HORIZONS):
                rows.append({"as_of": str(as_of), "scenario": s, "horizon_weeks": h,
                             "outcome": int(fires[i, t: t + h].any()),
                             "base_rate": float(1 - (1 - rate) ** h),
                             **{m: float(probs[m][i, k]) for m in ("model", "no_claims",
                                                                   "oracle")}})
    return {"seed": seed, "family": family, "rows": rows, "refits": refits, "dropped": dropped,
            "implausible_draws": rejected,
            "on": world.params["on"].tolist(),
            "events": world.series.scenario_events.sum("week").values.tolist()}


def brier(rows: list[dict], method: str) -> float:
    return float(np.mean([(r[method] - r["outcome"]) ** 2 for r in rows])) if rows else np.nan


def summarise(worlds: list[dict]) -> dict:
    rows = [r for w in worlds for r in w["rows"]]
    b = {m: brier(rows, m) for m in METHODS}
    per_world = [{m: brier(w["rows"], m) for m in METHODS} for w in worlds if w["rows"]]
    gain = b["base_rate"] - b["oracle"]
    return {
        "worlds": len(worlds), "scored_worlds": sum(bool(w["rows"]) for w in worlds),
        "questions": len(rows),
        "refitted_fits": sum(w["refits"] for w in worlds),
        "dropped_steps": sum(w["dropped"] for w in worlds),
        "implausible_draws": sum(w["implausible_draws"] for w in worlds),
        "brier": b,
        "skill_vs_base_rate": {m: 1 - b[m] / b["base_rate"] for m in METHODS},
        "skill_of_claims": 1 - b["model"] / b["no_claims"],
        "share_of_oracle_gain": (b["base_rate"] - b["model"]) / gain if gain else None,
        "worlds_where_model_beats_base_rate": sum(w["model"] < w["base_rate"]
                                                  for w in per_world),
        "worlds_where_model_beats_no_claims": sum(w["model"] < w["no_claims"]
                                                  for w in per_world),
        "observed_frequency": float(np.mean([r["outcome"] for r in rows])),
        "by_horizon": {h: {m: brier([r for r in rows if r["horizon_weeks"] == h], m)
                           for m in METHODS} for h in HORIZONS},
        "by_scenario": {s: {m: brier([r for r in rows if r["scenario"] == s], m)
                            for m in METHODS} for s in dict.fromkeys(r["scenario"] for r in rows)},
        "per_world": [{"seed": w["seed"], "on": w["on"], "events": w["events"],
                       "refits": w["refits"], "dropped": w["dropped"], "brier": pw}
                      for w, pw in zip([w for w in worlds if w["rows"]], per_world,
                                       strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=20)
    parser.add_argument("--families", default="broad,claims,right")
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    parser.add_argument("--name", default="worlds.json", help="the output file's name in --out")
    parser.add_argument("--budget", type=float, default=forecast.priors.EVIDENCE_BUDGET,
                        help="EVIDENCE_BUDGET to weigh the document with [the bundled one]")
    args = parser.parse_args()
    forecast.priors.EVIDENCE_BUDGET = args.budget
    priors = load_priors(bundled_priors())
    sampler = SamplerConfig()
    fitter = Fitter(priors, sampler)
    cache = args.out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    families = args.families.split(",")
    if unknown := set(families) - {"broad", "claims", "right"}:
        parser.error(f"--families: unknown {', '.join(sorted(unknown))}; expected broad, "
                     "claims, right")
    claims_prior = {}
    for family, as_stated in (("claims", False), ("right", True)):
        if family in families:  # each family's prior is fitted only when it is asked for
            prior = claims_only_posterior(priors, cache, as_stated=as_stated)
            claims_prior[family] = {k: draws_of(prior.posterior.to_dataset(), k)
                                    for k in SCENARIO_PARAMS}
    result = {"measured_at_commit": measured_at(), "sampler": sampler.__dict__,
              "steps_weeks": STEPS, "horizons_weeks": HORIZONS, "world_weeks": WEEKS,
              "evidence_budget": args.budget, "families": {}}
    for family in families:
        worlds = []
        for seed in range(1, args.worlds + 1):
            started = time.perf_counter()
            worlds.append(run_world(family, seed, priors, fitter, claims_prior))
            w = summarise(worlds[-1:])
            print(f"{family} world {seed} ({time.perf_counter() - started:.0f} s): " + ", ".join(
                f"{m} {v:.4f}" for m, v in w["brier"].items()), flush=True)
        result["families"][family] = summarise(worlds)
        s = result["families"][family]
        print(f"{family}: Brier " + ", ".join(f"{m} {v:.4f}" for m, v in s["brier"].items())
              + f"; skill vs base rate {s['skill_vs_base_rate']['model']:+.1%}, of claims "
              f"{s['skill_of_claims']:+.1%}, model beats base rate in "
              f"{s['worlds_where_model_beats_base_rate']}/{s['scored_worlds']} scored worlds "
              f"(of {s['worlds']}), share of the oracle's "
              f"gain {s['share_of_oracle_gain']}", flush=True)
        (args.out / args.name).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
