"""Backtests on simulated worlds, where the truth is known: does the model beat its baselines?

Each world is drawn like the example's (`forecast.example.example_world`, one seed per world:
persistent escalation, channels firing about once a quarter to once a year when on), written as
events and imported into a fresh workspace with the bundled priors, then backtested exactly as
`forecast backtest` does. Beside the model and the two baselines of the backtest (the claims
alone; each scenario's base rate) we score an oracle: the probability under the world's true
parameters and its true escalation level on the as-of day (the future path is still unknown to
it), the best any forecaster could do.

    python validation/backtest_worlds.py [--worlds 20] [--step 8] [--out reports/validation]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forecast import evaluate, scoring
from forecast.events import import_events
from forecast.example import EXAMPLE_AS_OF, example_world, write_native
from forecast.fit import SamplerConfig
from forecast.priors import load_priors
from forecast.simulate import World
from forecast.store import open_store
from forecast.workspace import init_workspace

HORIZONS = (4, 13, 26)
PATHS = 4000


def oracle(world: World, members: list[str], as_of: dt.date, h: int,
           rng: np.random.Generator) -> float:
    """P(an event of any of `members` in the h weeks after `as_of`) under the true parameters,
    given the true escalation level on `as_of`, averaging over the future escalation paths."""
    p = world.params
    weeks = world.series.week.values.astype("datetime64[D]").astype(dt.date).tolist()
    i = weeks.index(as_of)
    idx = [list(world.series.scenario.values).index(m) for m in members]
    x = np.full(PATHS, p["escalation"][i])
    hazard = np.zeros(PATHS)
    for _ in range(h):
        x = p["rho"] * x + rng.standard_normal(PATHS)
        hazard += sum(p["on"][s] * np.exp(p["beta"][s] + p["gamma"][s] * x) for s in idx)
    return float(1 - np.exp(-hazard).mean())


def run_world(seed: int, *, step: int, window: int, sampler: SamplerConfig) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        ws = init_workspace(Path(folder) / "ws")
        priors = load_priors(ws.priors_dir)
        world, events = example_world(ws, seed=seed)
        path = ws.root / "world.csv"
        write_native(events, path)
        con = open_store(ws.store_path)
        try:
            import_events(con, path, fmt="native", region=ws.config.region)
            bp = evaluate.plan(con, start=None, end=None, step_weeks=step, horizons=HORIZONS,
                               window=window)
            if bp.data_end != EXAMPLE_AS_OF:
                raise RuntimeError(f"world {seed}: data end {bp.data_end} is off the weekly grid")
            result = evaluate.backtest(con, priors, bp, sampler=sampler,
                                       cache_dir=ws.posteriors_dir)
        finally:
            con.close()
    rng = np.random.default_rng(seed)
    for row in result["forecasts"]:
        spec = priors.scenarios[row["scenario"]]
        row["oracle"] = oracle(world, list(spec.union or (spec.id,)), row["as_of"],
                               row["horizon_weeks"], rng)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=20)
    parser.add_argument("--step", type=int, default=8, help="weeks between as-of days")
    parser.add_argument("--window", type=int, default=52)
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    sampler = SamplerConfig(draws=1000, tune=1000)
    methods = (*evaluate.METHODS, "oracle")
    per_world, rows = [], []
    for seed in range(1, args.worlds + 1):
        result = run_world(seed, step=args.step, window=args.window, sampler=sampler)
        brier = {m: float(np.mean([scoring.brier(r[m], r["outcome"])
                                   for r in result["forecasts"]])) for m in methods}
        per_world.append({"seed": seed, "questions": result["questions"],
                          "unconverged": result["unconverged"], "steps": len(result["steps"]),
                          "brier": brier})
        rows += [{**r, "seed": seed} for r in result["forecasts"]]
        print(f"world {seed}: " + ", ".join(f"{m} {b:.4f}" for m, b in brier.items())
              + f"; {result['unconverged']}/{len(result['steps'])} fits failed the gate",
              flush=True)
    overall = {m: float(np.mean([scoring.brier(r[m], r["outcome"]) for r in rows]))
               for m in methods}
    mean_forecast = {m: float(np.mean([r[m] for r in rows])) for m in methods}
    wins = {m: sum(w["brier"]["model"] < w["brier"][m] for w in per_world)
            for m in evaluate.METHODS[1:]}
    by_horizon = {h: {m: float(np.mean([scoring.brier(r[m], r["outcome"]) for r in rows
                                        if r["horizon_weeks"] == h])) for m in methods}
                  for h in HORIZONS}
    summary = {"worlds": args.worlds, "step_weeks": args.step, "window_weeks": args.window,
               "horizons_weeks": HORIZONS, "questions": len(rows),
               "sampler": {"draws": sampler.draws, "tune": sampler.tune, "seed": sampler.seed},
               "brier": overall, "brier_by_horizon": by_horizon,
               "mean_forecast": mean_forecast,
               "observed": float(np.mean([r["outcome"] for r in rows])),
               "worlds_where_model_beats": wins, "per_world": per_world}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backtest-worlds.json").write_text(json.dumps(summary, indent=1))
    print("overall Brier: " + ", ".join(f"{m} {b:.4f}" for m, b in overall.items()))
    print("mean forecast: " + ", ".join(f"{m} {p:.3f}" for m, p in mean_forecast.items())
          + f"; observed frequency {summary['observed']:.3f}")
    print("model beats: " + ", ".join(f"{m} in {n}/{args.worlds} worlds" for m, n in wins.items()))


if __name__ == "__main__":
    main()
