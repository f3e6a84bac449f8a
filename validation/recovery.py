"""Parameter recovery: do the 90% posterior intervals cover the true parameters 90% of the time?

Worlds are drawn from the model's own priors (`forecast.simulate.draw_parameters`, no claims) with
3 scenarios, 3 indicators and 104 weeks; each is fitted with the toolkit's sampler settings, and
we count how often each parameter's central 90% interval holds the truth. Over W worlds the
coverage of one parameter has a binomial standard error of about sqrt(0.09 / (W * elements)).

    python validation/recovery.py [--worlds 20] [--out reports/validation]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forecast.fit import SamplerConfig, diagnose, gated
from forecast.forecasts import draws_of
from forecast.model import build_model
from forecast.series import week_ends
from forecast.simulate import simulate_world
from validation.common import compile_once, refit

MAIN = ("rho", "lambda", "mu", "phi", "gamma", "beta", "retaliation", "channel")
SCENARIOS, INDICATORS = ["s1", "s2", "s3"], ["k1", "k2", "k3"]


def run_recovery(n_worlds: int, *, seed: int = 0, weeks: int = 104) -> dict:
    rng = np.random.default_rng(seed)
    week = week_ends(dt.date(2024, 1, 1), dt.date(2024, 1, 1) + dt.timedelta(weeks=weeks))
    worlds = [simulate_world(rng, SCENARIOS, INDICATORS, week) for _ in range(n_worlds)]
    model = build_model(worlds[0].series)
    compiled = compile_once(model)
    hits: dict[str, list[bool]] = {p: [] for p in MAIN}
    diagnostics = []
    for i, world in enumerate(worlds):
        tree = refit(compiled, world.series, SamplerConfig(seed=i))
        diagnostics.append(diagnose(tree, gated(model)).as_dict())
        post = tree.posterior.to_dataset()
        for name in MAIN:
            low, high = np.quantile(draws_of(post, name), [0.05, 0.95], axis=0)
            truth = np.asarray(world.params[name])
            hits[name].extend(np.atleast_1d((low <= truth) & (truth <= high)).tolist())
    coverage = {p: float(np.mean(h)) for p, h in hits.items()}
    every = [x for h in hits.values() for x in h]
    return {"worlds": n_worlds, "diagnostics": diagnostics,
            "unconverged_fits": sum(not d["converged"] for d in diagnostics), "coverage": coverage,
            "elements": {p: len(h) for p, h in hits.items()},
            "overall": float(np.mean(every)), "overall_elements": len(every)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    result = run_recovery(args.worlds, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recovery.json").write_text(json.dumps(result, indent=1))
    for name, c in result["coverage"].items():
        print(f"{name:>7}: 90% interval covers the truth in {c:.0%} of "
              f"{result['elements'][name]} cases")
    print(f"overall: {result['overall']:.1%} of {result['overall_elements']}; "
          f"{result['unconverged_fits']} of {result['worlds']} fits failed the gate")
    for d in result["diagnostics"]:
        print(f"  R-hat {d['r_hat_max']:.3f}, ESS {d['ess_bulk_min']:.0f}, "
              f"{d['divergences']} divergences, worst {d['worst']}")


if __name__ == "__main__":
    main()
