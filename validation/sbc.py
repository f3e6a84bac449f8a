"""Simulation-based calibration (Talts et al. 2018) of the full model, escalation included.

For each of N datasets: draw every parameter from the model's priors
(`forecast.simulate.draw_parameters`, hyper-parameters included), simulate the weekly series
(`forecast.simulate.simulate_world`), fit the model without claims, and record the rank of the
true value among L thinned posterior draws. If the fit is calibrated the ranks are uniform on
0..L; we test that with a chi-square test on B bins per parameter group (the ranks of a group's
elements pooled) and save the rank histograms. Fits that fail the diagnostics gate are counted
and kept (dropping them would select datasets and bias the ranks); the count is reported.

    python validation/sbc.py [--datasets 200] [--out reports/validation]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forecast.fit import SamplerConfig, compile_model, diagnose, gated, sample_compiled
from forecast.forecasts import draws_of
from forecast.model import build_model, model_data
from forecast.series import week_ends
from forecast.simulate import simulate_world
from validation import measured_at

GROUPS = ("rho", "lambda", "mu", "gamma", "beta", "scenario_level_mean", "retaliation",
          "channel")


def run_sbc(n_datasets: int, *, draws_kept: int = 99, bins: int = 10, seed: int = 0,
            weeks: int = 52, scenarios: int = 2, indicators: int = 2,
            sampler: SamplerConfig = SamplerConfig(draws=1000, tune=1000)) -> dict:
    """Ranks of the true parameters and a chi-square uniformity test per parameter group."""
    rng = np.random.default_rng(seed)
    week = week_ends(dt.date(2024, 1, 1), dt.date(2024, 1, 1) + dt.timedelta(weeks=weeks))
    names = ([f"s{i}" for i in range(scenarios)], [f"k{i}" for i in range(indicators)])
    worlds = [simulate_world(rng, *names, week) for _ in range(n_datasets)]
    model = build_model(worlds[0].series)
    compiled = compile_model(model)
    ranks: dict[str, list[int]] = {p: [] for p in GROUPS}
    unconverged = 0
    for i, world in enumerate(worlds):
        # every dataset is ranked, converged or not, and none is redrawn: SBC needs the prior
        tree = sample_compiled(compiled, SamplerConfig(**{**sampler.__dict__, "seed": i}),
                               model_data(world.series))
        unconverged += not diagnose(tree, gated(model)).converged
        post = tree.posterior.to_dataset()
        for name in GROUPS:
            samples = draws_of(post, name).reshape(draws_of(post, name).shape[0], -1)
            thinned = samples[np.linspace(0, len(samples) - 1, draws_kept).astype(int)]
            truth = np.atleast_1d(world.params[name])
            ranks[name].extend((thinned < truth).sum(axis=0).tolist())
    result = {"datasets": n_datasets, "weeks": weeks, "scenarios": scenarios,
              "indicators": indicators, "draws_kept": draws_kept, "bins": bins,
              "unconverged_fits": unconverged, "params": {}}
    for name, r in ranks.items():
        counts, _ = np.histogram(r, bins=bins, range=(0, draws_kept + 1))
        chi2 = stats.chisquare(counts)
        result["params"][name] = {"ranks": r, "histogram": counts.tolist(),
                                  "chi2": float(chi2.statistic), "p_value": float(chi2.pvalue)}
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = result["params"]
    cols = 4
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    for ax, (name, r) in zip(np.ravel(axes), params.items(), strict=False):
        n = sum(r["histogram"])
        band = stats.binom(n, 1 / result["bins"]).ppf([0.005, 0.995])
        ax.bar(range(result["bins"]), r["histogram"], color="tab:blue", width=0.9)
        ax.axhline(n / result["bins"], color="black", lw=1)
        ax.axhspan(*band, color="0.85", zorder=0, label="99% band if uniform")
        ax.set_title(f"{name}: chi² p = {r['p_value']:.2f}", fontsize=9)
        ax.set_xlabel(f"rank bin (of {result['draws_kept'] + 1} ranks)", fontsize=8)
    for ax in np.ravel(axes)[len(params):]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize=7)
    fig.suptitle(f"SBC of the full model: {result['datasets']} simulated datasets, "
                 f"{result['weeks']} weeks, {result['unconverged_fits']} fits failed the gate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    result = {"measured_at_commit": measured_at(), **run_sbc(args.datasets, seed=args.seed)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sbc.json").write_text(json.dumps(result))
    plot(result, args.out / "sbc.png")
    for name, r in result["params"].items():
        print(f"{name}: histogram {r['histogram']}, chi² {r['chi2']:.1f}, p = {r['p_value']:.3f}")
    print(f"{result['unconverged_fits']} of {result['datasets']} fits failed the gate")


if __name__ == "__main__":
    main()
