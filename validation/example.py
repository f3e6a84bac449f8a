"""The shipped example's backtest, with an oracle beside it.

A fresh example workspace (`forecast init --example`, in a temporary folder) is backtested as a
user would (`forecast backtest --step 4w --horizons 4,13,26`, the update's sampler settings).
The example is one simulated world whose true parameters ship with it, so the same questions
are also scored for the oracle of `validation/worlds.py`: it knows those parameters, but
neither the future nor whether Moscow retaliates or which channels are on (the escalation path
is filtered from the history). The oracle's gain over the base rate is what any forecaster
could hope to gain in this world: one world's outcomes are a small sample, and a base rate can
beat even the truth there by luck.

    python validation/example.py [--out reports/validation]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forecast.example import example_world
from forecast.priors import load_priors
from forecast.workspace import open_workspace
from validation import measured_at
from validation.worlds import HORIZONS, oracle

METHODS = ("model", "claims_only", "base_rate", "oracle")
COMMAND = ("backtest", "--step", "4w", "--horizons", ",".join(map(str, HORIZONS)), "--json")


def run_example() -> dict:
    forecast = str(Path(sys.executable).parent / "forecast")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "example"
        subprocess.run([forecast, "--workspace", root, "init", "--example"], check=True,
                       capture_output=True)
        result = json.loads(subprocess.run([forecast, "--workspace", root, *COMMAND],
                                           check=True, capture_output=True, text=True).stdout)
        ws = open_workspace(root)
        world, _events = example_world(ws)
        priors = load_priors(ws.priors_dir)
    scenarios = list(world.series.scenario.values)
    asked = {s: [scenarios.index(m) for m in spec.members]
             for s, spec in priors.scenarios.items()}
    weeks = [str(w)[:10] for w in world.series.week.values.astype("datetime64[D]")]
    rng, by_step = np.random.default_rng(0), {}
    for row in result["forecasts"]:
        if row["as_of"] not in by_step:
            by_step[row["as_of"]] = oracle(world, weeks.index(row["as_of"]),
                                           list(asked.values()), rng)
        row["oracle"] = float(by_step[row["as_of"]][list(asked).index(row["scenario"]),
                                                     HORIZONS.index(row["horizon_weeks"])])
    rows = result["forecasts"]
    brier = {m: _brier(rows, m) for m in METHODS}
    return {"measured_at_commit": measured_at(), "command": "forecast " + " ".join(COMMAND),
            "brier": brier,
            "skill_vs_base_rate": {m: 1 - brier[m] / brier["base_rate"] for m in METHODS},
            "by_scenario": {s: {m: _brier([r for r in rows if r["scenario"] == s], m)
                                for m in METHODS} for s in asked},
            "by_horizon": {h: {m: _brier([r for r in rows if r["horizon_weeks"] == h], m)
                               for m in METHODS} for h in HORIZONS},
            "backtest": result}


def _brier(rows: list[dict], method: str) -> float:
    return float(np.mean([(r[method] - r["outcome"]) ** 2 for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    result = run_example()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "example-backtest.json").write_text(json.dumps(result, indent=1))
    b = result["backtest"]
    print(f"{len(result['backtest']['forecasts'])} questions, {len(b['steps'])} steps "
          f"({b['refitted']} refitted, {len(b['dropped'])} dropped): Brier "
          + ", ".join(f"{m} {v:.4f}" for m, v in result["brier"].items())
          + "; skill vs base rate " + ", ".join(
              f"{m} {v:+.1%}" for m, v in result["skill_vs_base_rate"].items()))


if __name__ == "__main__":
    main()
