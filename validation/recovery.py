"""Parameter recovery: do the 90% posterior intervals cover the true parameters 90% of the time?

Worlds are drawn from the model's own priors (`forecast.simulate.draw_parameters`, no claims) with
3 scenarios, 3 indicators and 104 weeks, and drawn again when implausible
(`forecast.simulate.plausible`; the rejected draws are counted); each is fitted with the
toolkit's sampler settings and refitted as an update refits a fit that fails the gate
(`forecast.fit.sample_gated`: the next seed, a low-rank mass matrix, then chains twice as long),
and we count how often each parameter's central 90% interval holds the truth (over every world: a
fit that still fails is counted, not left out). Over W worlds the coverage of one parameter has a
binomial standard error of about sqrt(0.09 / (W * elements)).

    python validation/recovery.py [--worlds 20] [--out reports/validation]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forecast.fit import SamplerConfig, compile_model, gated, sample_gated
from forecast.forecasts import draws_of
from forecast.model import build_model, model_data
from forecast.series import week_ends
from forecast.simulate import plausible_world
from validation import measured_at

MAIN = ("rho", "lambda", "mu", "phi", "gamma", "beta", "retaliation", "channel")
SCENARIOS, INDICATORS = ["s1", "s2", "s3"], ["k1", "k2", "k3"]


def run_recovery(n_worlds: int, *, seed: int = 0, weeks: int = 104,
                 sampler: SamplerConfig = SamplerConfig()) -> dict:
    rng = np.random.default_rng(seed)
    week = week_ends(dt.date(2024, 1, 1), dt.date(2024, 1, 1) + dt.timedelta(weeks=weeks))
    drawn = [plausible_world(rng, SCENARIOS, INDICATORS, week) for _ in range(n_worlds)]
    worlds, implausible = [w for w, _ in drawn], sum(n for _, n in drawn)
    model = build_model(worlds[0].series)
    compiled, names = compile_model(model), gated(model)
    hits: dict[str, list[bool]] = {p: [] for p in MAIN}
    diagnostics, refitted = [], 0
    for i, world in enumerate(worlds):
        tree, diagnosed, fits = sample_gated(compiled, names, replace(sampler, seed=100 * i),
                                             model_data(world.series))
        refitted += fits > 1
        diagnostics.append({**diagnosed.as_dict(), "fits": fits})
        post = tree.posterior.to_dataset()
        for name in MAIN:
            low, high = np.quantile(draws_of(post, name), [0.05, 0.95], axis=0)
            truth = np.asarray(world.params[name])
            hits[name].extend(np.atleast_1d((low <= truth) & (truth <= high)).tolist())
    coverage = {p: float(np.mean(h)) for p, h in hits.items()}
    every = [x for h in hits.values() for x in h]
    return {"worlds": n_worlds, "implausible_draws": implausible, "refitted": refitted,
            "diagnostics": diagnostics,
            "unconverged_fits": sum(not d["converged"] for d in diagnostics), "coverage": coverage,
            "elements": {p: len(h) for p, h in hits.items()},
            "overall": float(np.mean(every)), "overall_elements": len(every)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    result = {"measured_at_commit": measured_at(), **run_recovery(args.worlds, seed=args.seed)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recovery.json").write_text(json.dumps(result, indent=1))
    for name, c in result["coverage"].items():
        print(f"{name:>7}: 90% interval covers the truth in {c:.0%} of "
              f"{result['elements'][name]} cases")
    print(f"overall: {result['overall']:.1%} of {result['overall_elements']}; "
          f"{result['unconverged_fits']} of {result['worlds']} worlds' last fits failed the gate "
          f"({result['refitted']} refitted); {result['implausible_draws']} implausible worlds "
          "drawn again")
    for d in result["diagnostics"]:
        print(f"  R-hat {d['r_hat_max']:.3f}, ESS {d['ess_bulk_min']:.0f}, "
              f"{d['divergences']} divergences, worst {d['worst']}, {d['fits']} fit(s)")


if __name__ == "__main__":
    main()
