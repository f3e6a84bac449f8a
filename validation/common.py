"""Shared pieces of the validation scripts: compile a model once, refit it on new data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from forecast.fit import SamplerConfig, compile_model, sample_compiled
from forecast.model import ClaimTerm, model_data

compile_once = compile_model


def refit(compiled: Any, series: xr.Dataset, sampler: SamplerConfig,
          claims: Sequence[ClaimTerm] = ()) -> xr.DataTree:
    """Sample the compiled model on the data of `series` (same shapes as when compiled)."""
    return sample_compiled(compiled, sampler, data=model_data(series, claims))
