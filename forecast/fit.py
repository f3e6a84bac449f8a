"""Sampling a model with nutpie, and the diagnostics gate that blocks unconverged forecasts.

Imports nothing heavy at module level: the CLI reads `SamplerConfig` for its option defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from forecast.errors import ConvergenceError

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

R_HAT_MAX = 1.01
ESS_BULK_MIN = 400
#: Fits `sample_gated` makes at most before a fit is reported as failing the gate.
ATTEMPTS = 3


def attempts(allow_unconverged: bool) -> int:
    """The fits an update or a backtest step makes: one, taken as it is, when the user allows
    an unconverged fit; else up to `ATTEMPTS`."""
    return 1 if allow_unconverged else ATTEMPTS


@dataclass(frozen=True)
class SamplerConfig:
    draws: int = 2000
    tune: int = 1000
    chains: int = 2
    seed: int = 20250701
    target_accept: float = 0.95
    adaptation: str = "diag"  # nutpie mass matrix: "diag" (default) or "low_rank"


@dataclass(frozen=True)
class Diagnostics:
    """The gate's inputs: worst R-hat, smallest bulk ESS, divergences, and who was worst."""

    r_hat_max: float
    ess_bulk_min: float
    divergences: int
    worst: str  # the parameter (with index) that fails the gate most, or has the lowest ESS

    @property
    def converged(self) -> bool:
        return (self.r_hat_max <= R_HAT_MAX and self.ess_bulk_min >= ESS_BULK_MIN
                and self.divergences == 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "converged": self.converged}

    def check(self) -> None:
        """Raise `ConvergenceError` (one line naming the worst parameter) unless converged."""
        if self.converged:
            return
        raise ConvergenceError(
            f"the fit did not converge: {self.divergences} divergence(s), max R-hat "
            f"{self.r_hat_max:.3f} (<= {R_HAT_MAX} needed), min bulk ESS {self.ess_bulk_min:.0f} "
            f"(>= {ESS_BULK_MIN} needed), worst parameter {self.worst}; raise --draws/--tune, "
            "or pass --allow-unconverged to publish it anyway (recorded)")


def compile_model(model: pm.Model) -> Any:
    """The model compiled for nutpie (numba backend, callbacks cached on disk: see
    `forecast.compiled`), reusable with new data of the same shapes."""
    from forecast.compiled import compile_model

    return compile_model(model)


def sample_compiled(compiled: Any, config: SamplerConfig,
                    data: dict[str, Any] | None = None) -> xr.DataTree:
    """Sample a compiled model, with `data` (``forecast.model.model_data``) swapped in if given;
    chains run in parallel. No progress callback: any, even one doing nothing, made nutpie 0.16
    sample 35% slower."""
    import nutpie

    from forecast.compiled import with_data

    if data is not None:
        compiled = with_data(compiled, data)
    tree = nutpie.sample(compiled, draws=config.draws, tune=config.tune, chains=config.chains,
                         cores=config.chains, seed=config.seed, target_accept=config.target_accept,
                         adaptation=config.adaptation, progress_bar=False, save_warmup=False)
    if tree.posterior.sizes["draw"] < config.draws:  # nutpie returns what it had on Ctrl-C
        raise KeyboardInterrupt("the fit was interrupted: nothing is recorded")
    return tree


def sample_gated(compiled: Any, names: list[str], config: SamplerConfig,
                 data: dict[str, Any] | None = None, *, attempts: int = ATTEMPTS
                 ) -> tuple[xr.DataTree, Diagnostics, int]:
    """Sample, and while the fit fails the gate sample again, up to `attempts` fits in all.
    Returns the last fit, its diagnostics and the number of fits made.

    A refit uses the next seed and nutpie's low-rank mass matrix adaptation, which follows the
    ridge between the indicators' loadings and the scale of the escalation path that a diagonal
    one crosses slowly, at about 3 times the sampling time; so the cheap fit comes first. The
    third fit also tunes and draws twice as long, with smaller steps (target_accept 0.99): what
    still fails then is the overdispersion of the indicator with the largest loading, a funnel
    (bulk ESS 200-300, or a few divergences at its narrow end) that longer chains with smaller
    steps cross (measurements: validation/README.md). The gate judges the last fit as it is.
    """
    for attempt in range(1, attempts + 1):
        last = attempt >= 3
        seeded = SamplerConfig(**{
            **asdict(config), "seed": config.seed + attempt - 1,
            "draws": config.draws * (2 if last else 1), "tune": config.tune * (2 if last else 1),
            "target_accept": max(config.target_accept, 0.99) if last else config.target_accept,
            "adaptation": config.adaptation if attempt == 1 else "low_rank"})
        tree = sample_compiled(compiled, seeded, data)
        diagnostics = diagnose(tree, names)
        if diagnostics.converged:
            break
    return tree, diagnostics, attempt


def sample(model: pm.Model, config: SamplerConfig) -> xr.DataTree:
    """Compile `model` and sample it."""
    return sample_compiled(compile_model(model), config)


def gated(model: pm.Model) -> list[str]:
    """The variables the gate judges: every free variable except the placeholders that reach
    the model through a deterministic (`forecast.model.UNJUDGED`), and the deterministics that
    stand for parameters (`forecast.model.JUDGED`)."""
    from forecast.model import JUDGED, UNJUDGED

    names = [v.name for v in model.free_RVs if v.name not in UNJUDGED]
    return names + [name for name in JUDGED if name in model.named_vars]


def diagnose(tree: xr.DataTree, var_names: list[str]) -> Diagnostics:
    """R-hat (rank-normalised) and bulk ESS of every element of `var_names`; divergences.
    Elements that are NaN in every draw are not parameters (the escalation in a week with no
    data, `forecast.model`) and are not judged; a NaN in some draws only counts as failing."""
    import arviz as az
    import numpy as np

    posterior = tree.posterior.to_dataset()[var_names]
    draws = ("chain", "draw")
    defined = [v > 0 for _, v in _flatten(posterior.notnull().any(draws).astype(float))]
    complete = posterior.notnull().all(draws)
    with np.errstate(invalid="ignore", divide="ignore"):  # the constant filled elements
        rhat = az.rhat(posterior.fillna(0.0)).where(complete)
        ess = az.ess(posterior.fillna(0.0), method="bulk").where(complete)
    flat_rhat = [(n, math.inf if math.isnan(v) else v)
                 for (n, v), keep in zip(_flatten(rhat), defined, strict=True) if keep]
    flat_ess = [(n, 0.0 if math.isnan(v) else v)
                for (n, v), keep in zip(_flatten(ess), defined, strict=True) if keep]
    divergences = int(tree.sample_stats.diverging.sum())
    worst_rhat = max(flat_rhat, key=lambda kv: kv[1])
    worst_ess = min(flat_ess, key=lambda kv: kv[1])
    worst = worst_rhat[0] if worst_rhat[1] > R_HAT_MAX else worst_ess[0]
    return Diagnostics(float(worst_rhat[1]), float(worst_ess[1]), divergences, worst)


def _flatten(stat: xr.Dataset) -> list[tuple[str, float]]:
    out = []
    for name, values in stat.data_vars.items():
        arr = values.values
        if arr.ndim == 0:
            out.append((str(name), float(arr)))
            continue
        labels = values.stack(i=values.dims).indexes["i"] if values.dims else [()]
        for label, value in zip(labels, arr.ravel(), strict=True):
            label = label if isinstance(label, tuple) else (label,)
            out.append((f"{name}[{', '.join(map(str, label))}]", float(value)))
    return out
