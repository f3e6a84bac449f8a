"""Simulation-based calibration (Talts et al. 2018) of the scenario channel.

The reduced model is one scenario channel with its "never" fraction and no escalation or claims:
the part of the model whose censoring logic (quiet weeks as evidence, an event as decisive) is
new. For each of N datasets: draw (beta, never) from the prior, simulate 104 weeks, fit, and
record the rank of the true value among L thinned posterior draws. If the fit is calibrated the
ranks are uniform on 0..L; we test that with a chi-square test on B bins and save the rank
histograms.

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

from forecast.fit import SamplerConfig
from forecast.model import ModelConfig, build_model
from forecast.series import make_series, week_ends
from validation.common import compile_once, refit

CONFIG = ModelConfig(escalation=False)
PARAMS = ("beta", "never")


def run_sbc(n_datasets: int, *, draws_kept: int = 99, bins: int = 10, seed: int = 0,
            weeks: int = 104) -> dict:
    """Ranks of the true parameters and a chi-square uniformity test per parameter."""
    rng = np.random.default_rng(seed)
    week = week_ends(dt.date(2024, 1, 1), dt.date(2024, 1, 1) + dt.timedelta(weeks=weeks))
    template = make_series(week, {"s": np.zeros(weeks)}, {}, np.full(weeks, 100))
    compiled = compile_once(build_model(template, (), CONFIG))
    ranks = {p: [] for p in PARAMS}
    for i in range(n_datasets):
        beta = rng.normal(CONFIG.beta_mu, CONFIG.beta_sd)
        never = rng.beta(*CONFIG.never)
        on = rng.random() >= never
        counts = rng.poisson(on * np.exp(beta), weeks)
        series = make_series(week, {"s": counts}, {}, np.full(weeks, 100))
        tree = refit(compiled, series, SamplerConfig(draws=1000, tune=1000, chains=2, seed=i))
        post = tree.posterior.to_dataset()
        for name, truth in (("beta", beta), ("never", never)):
            samples = post[name].values.reshape(-1)
            thinned = samples[np.linspace(0, samples.size - 1, draws_kept).astype(int)]
            ranks[name].append(int((thinned < truth).sum()))
    result = {"datasets": n_datasets, "draws_kept": draws_kept, "bins": bins, "params": {}}
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
    fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.4))
    expected = result["datasets"] / result["bins"]
    band = stats.binom(result["datasets"], 1 / result["bins"]).ppf([0.005, 0.995])
    for ax, (name, r) in zip(np.atleast_1d(axes), params.items(), strict=True):
        ax.bar(range(result["bins"]), r["histogram"], color="tab:blue", width=0.9)
        ax.axhline(expected, color="black", lw=1)
        ax.axhspan(*band, color="0.85", zorder=0, label="99% band if uniform")
        ax.set_title(f"{name}: chi² p = {r['p_value']:.2f}")
        ax.set_xlabel(f"rank bin (of {result['draws_kept'] + 1} ranks)")
        ax.set_ylabel("datasets")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"SBC of the scenario channel, {result['datasets']} simulated datasets")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args()
    result = run_sbc(args.datasets, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sbc.json").write_text(json.dumps(result))
    plot(result, args.out / "sbc.png")
    for name, r in result["params"].items():
        print(f"{name}: histogram {r['histogram']}, chi² {r['chi2']:.1f}, p = {r['p_value']:.3f}")


if __name__ == "__main__":
    main()
