"""The model compiled for nutpie, with C callbacks that numba caches on disk across processes.

`nutpie.compile_pymc_model` (0.16) spends about 10 of its 15 s per update compiling the two numba
C callbacks that wrap PyTensor's logp and expand functions, in every process: numba cannot cache
them, because they embed this process's data arrays and random (uuid) field names. PyTensor's
own functions are cached already. The callbacks here read the data through a plain array of
pointers instead, so numba caches them under a key made of PyTensor's cache key for the function
they wrap and the data's shapes. Everything else is nutpie's, through its private helpers
`_make_functions` and `_prepare_dims_and_coords` (so nutpie is pinned to 0.16 in
pyproject.toml); when PyTensor has no cache key for a function, `compile_model` falls back to
`nutpie.compile_pymc_model`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

CALLBACK_VERSION = 1  # part of the cache key: raise it when the callbacks' source changes

LOGP_SOURCE = """
def callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        pointers = numba.carray(user_data_, ({n_data},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        logp_value, grad = function(x, {arrays})
        logp[()] = logp_value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_value):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
"""

EXPAND_SOURCE = """
def callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    try:
        pointers = numba.carray(user_data_, ({n_data},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = function(x, {arrays})
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
"""


def compile_model(model: Any) -> Any:
    """nutpie's compiled model of `model` (numba backend), with disk-cached callbacks."""
    import nutpie
    import nutpie.compile_pymc as npc
    from numba.types import CPointer, double, int64, uint64, voidptr
    from pymc.initial_point import make_initial_point_fn

    initial_point = npc._wrap_with_lock(make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), default_strategy="support_point",
        return_transformed=True))
    (n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info,
     reparameterized) = npc._make_functions(model, mode="NUMBA", compute_grad=True,
                                            join_expanded=True,
                                            pymc_initial_point_fn=initial_point)
    shared = {v.name: v for f in (logp_pt, expand_pt) for v in f.get_shared()}
    data = {name: _frozen(shared[name].get_value()) for name in sorted(shared)}
    try:
        logp = _callback(LOGP_SOURCE, int64(uint64, CPointer(double), CPointer(double),
                                            CPointer(double), voidptr),
                         logp_pt, data, n_dim=n_dim)
        expand = _callback(EXPAND_SOURCE, int64(uint64, uint64, CPointer(double),
                                                CPointer(double), voidptr),
                           expand_pt, data, n_dim=n_dim, n_expanded=n_expanded)
    except _Uncacheable:
        return nutpie.compile_pymc_model(model)
    dims, coords = npc._prepare_dims_and_coords(model, shape_info, reparameterized)
    return npc.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp, compiled_expand_func=expand,
        initial_point_func=initial_point_fn, shared_data=data, shared_var_keys={},
        user_data=_pointers(data), n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_pt, expand_func=expand_pt, reparameterized_names=reparameterized)


def with_data(compiled: Any, data: dict[str, Any]) -> Any:
    """`compiled` reading `data` (arrays of the shapes it was compiled with) instead of its own;
    nutpie's ``with_data`` for a model from `nutpie.compile_pymc_model` (the fallback)."""
    if compiled.user_data.dtype != np.uint64:
        return compiled.with_data(**data)
    new = dict(compiled.shared_data)
    for name, value in data.items():
        # in the dtype the model was compiled for (pm.Data stores int64 indices as int32): the
        # callbacks read the raw buffer
        value = _frozen(np.asarray(value).astype(new[name].dtype, casting="same_kind"))
        if value.shape != new[name].shape:
            raise ValueError(f"data {name!r} has shape {value.shape}; the model was compiled "
                             f"for {new[name].shape}")
        new[name] = value
    return dataclasses.replace(compiled, shared_data=new, user_data=_pointers(new))


class _Uncacheable(Exception):
    pass


def _callback(source: str, signature: Any, function_pt: Any, data: dict[str, np.ndarray],
              **sizes: int) -> Any:
    """The C callback of `source` around `function_pt`, compiled by numba or loaded from its
    disk cache."""
    import numba
    import nutpie.compile_pymc as npc

    try:  # PyTensor's numba cache (3.3); without it, nutpie compiles its own callbacks
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
    except ImportError as error:
        raise _Uncacheable from error
    function = function_pt.vm.jit_fn
    key = CACHED_SRC_FUNCTIONS.get(function.py_func)
    if key is None:
        raise _Uncacheable
    names = list(data)
    arrays = ", ".join(
        f"numba.carray(address_as_void_pointer(pointers[{i}]), {data[names[i]].shape}, "
        f"np.{data[names[i]].dtype})" for i in (names.index(v.name) for v in
                                                function_pt.get_shared()))
    text = source.format(n_data=len(names), arrays=arrays, **sizes)
    digest = hashlib.sha256(f"{CALLBACK_VERSION}\n{key}\n{text}".encode()).hexdigest()
    py_function = compile_numba_function_src(
        text, "callback",
        {"__name__": __name__, "numba": numba, "np": np, "function": function,
         "address_as_void_pointer": npc.address_as_void_pointer},
        cache_key=f"forecast-nutpie-callback-{digest}")
    try:
        return numba.cfunc(signature, cache=True)(py_function)
    except Exception:  # an unreadable cache entry: compile afresh
        return numba.cfunc(signature)(py_function)


def _frozen(value: Any) -> np.ndarray:
    array = np.array(value, order="C", copy=True)
    array.flags.writeable = False
    return array


def _pointers(data: dict[str, np.ndarray]) -> np.ndarray:
    """The callbacks' user data: the address of each array, in `data`'s (sorted) order. The
    arrays themselves are kept alive by the compiled model's ``shared_data``."""
    return np.array([array.ctypes.data for array in data.values()], dtype=np.uint64)
