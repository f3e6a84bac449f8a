"""Shared pieces of the validation scripts: compile a model once, refit it on new data."""

from __future__ import annotations

import numpy as np
import nutpie
import pymc as pm
import xarray as xr

from forecast.fit import SamplerConfig


def compile_once(model: pm.Model):
    return nutpie.compile_pymc_model(model)


def refit(compiled, series: xr.Dataset, sampler: SamplerConfig) -> xr.DataTree:
    """Sample the compiled model on the data of `series` (same shapes as when compiled)."""
    data = {"scenario_events": series.scenario_events.values.astype("float64")}
    if series.sizes.get("indicator"):
        volume = series.volume.values.astype("float64")
        data["indicator_events"] = series.indicator_events.values
        data["log_exposure"] = np.log(volume / volume.mean())
    return nutpie.sample(compiled.with_data(**data), draws=sampler.draws, tune=sampler.tune,
                         chains=sampler.chains, cores=sampler.chains, seed=sampler.seed,
                         adaptation=sampler.adaptation, target_accept=sampler.target_accept,
                         progress_bar=False, save_warmup=False)
