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

What remains is PyTensor's graph rewriting in `_make_functions` (about 3 s of an update, in
every process). Its result, the two PyTensor functions, is kept on disk beside PyTensor's own
cache (`_stored_functions`), under a key computed from the model's graph before any rewriting:
every operation, every constant's value, the data's names, types and shapes (not their values:
the model's own data are set into the loaded functions), with the library versions and
PyTensor's configuration. So a cached function is reused only for the very graph it was
compiled from; anything else, or an unreadable entry, compiles afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

CALLBACK_VERSION = 1  # part of the cache key: raise it when the callbacks' source changes
FUNCTIONS_VERSION = 1  # part of the stored functions' key: raise it when what is stored changes
#: Stored functions kept (about 2 MB each); the least recently used beyond it are removed.
FUNCTIONS_KEPT = 64

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
     reparameterized) = _stored_functions(model, initial_point)
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


def _stored_functions(model: Any, initial_point: Any) -> tuple:
    """nutpie's `_make_functions` for `model`, or its result for the same graph from disk (see
    the module docs), with `model`'s data set into the functions."""
    import nutpie.compile_pymc as npc

    def compile_functions() -> tuple:
        return npc._make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                   pymc_initial_point_fn=initial_point)

    try:
        key, data = _graph_key(model)
    except Exception:  # a graph it cannot hash is compiled, and not stored
        return compile_functions()
    path = functions_dir() / f"{key}.pkl"
    try:
        if not _private(path):
            raise PermissionError(path)
        logp_pt, expand_pt, n_dim, n_expanded, shape_info, reparameterized = pickle.loads(
            path.read_bytes())
        for function in (logp_pt, expand_pt):
            for shared in function.get_shared():
                shared.set_value(data[shared.name].get_value())
    except Exception:  # none stored, unreadable, or not this model's: compile it
        made = compile_functions()
        n_dim, n_expanded, logp_pt, expand_pt, _, shape_info, reparameterized = made
        _store(path, (logp_pt, expand_pt, n_dim, n_expanded, shape_info, reparameterized))
        return made
    with contextlib.suppress(OSError):
        path.touch()  # recently used
    names, _, shapes = shape_info
    free = len(model.free_RVs)
    return (n_dim, n_expanded, logp_pt, expand_pt,
            npc._rv_dict_to_flat_array_wrapper(initial_point, names=names[:free],
                                               shapes=shapes[:free]),
            shape_info, reparameterized)


def functions_dir() -> Path:
    """Where the compiled functions are kept: in PyTensor's compile folder."""
    import pytensor

    return Path(pytensor.config.compiledir) / "forecast-functions"


def _private(path: Path) -> bool:
    """Whether `path` and its folder are this user's and nobody else may write them. A stored
    function is unpickled, that is run: it is trusted as PyTensor and numba trust the compiled
    code they keep in the same folder, and no further (`tests/test_safety.py`)."""
    for p in (path.parent, path):
        status = p.stat()
        if status.st_uid != os.getuid() or status.st_mode & 0o022:
            return False
    return True


def _store(path: Path, functions: tuple) -> None:
    """Write `functions` to `path` atomically, readable by this user only, and keep the
    `FUNCTIONS_KEPT` most recently used files of its folder; a cache that cannot be written is
    only slower."""
    import cloudpickle  # plain pickle cannot write PyTensor's OpFromGraph closures

    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(cloudpickle.dumps(functions))
        tmp.replace(path)
        stored = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in stored[FUNCTIONS_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def _graph_key(model: Any) -> tuple[str, dict[str, Any]]:
    """A hash of everything `_make_functions` compiles from `model`: its log density and the
    values it stores, node by node (`_hash_graph`), the order of the free variables, the library
    versions and PyTensor's configuration; and the data's shared variables by name (their values
    are set afresh, `_stored_functions`)."""
    import numba
    import nutpie
    import pymc
    import pytensor

    h = hashlib.sha256(repr((FUNCTIONS_VERSION, pytensor.__version__, pymc.__version__,
                             nutpie.__version__, numba.__version__, np.__version__,
                             pytensor.config.get_config_hash(), model.check_bounds,
                             [v.name for v in model.free_RVs])).encode())
    data: dict[str, Any] = {}
    _hash_graph(h, [model.logp(), *model.unobserved_value_vars], data)
    return h.hexdigest(), data


def _hash_graph(h: Any, outputs: list, data: dict[str, Any]) -> None:
    """Feed the graph of `outputs` to `h` node by node: each operation, which inputs it takes,
    each root's type and name, each constant's value and the data's dtypes and shapes (the
    shared variables found are put in `data` by name). An operation holding a graph of its own
    (an OpFromGraph) is hashed the same way; any other is pickled. Pickling a graph whole is not
    stable: the inner variables' automatic names, and which nodes share one operation object,
    depend on what the process built before."""
    import cloudpickle
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import io_toposort

    index: dict[Any, int] = {}

    def ref(variable: Any) -> int:
        if variable not in index:  # a root: an input, a constant or the data
            index[variable] = len(index)
            h.update(f"root {type(variable).__name__} {variable.type} {variable.name}".encode())
            if isinstance(variable, Constant):
                h.update(pickle.dumps(variable.data))
            elif hasattr(variable, "get_value"):
                data[variable.name] = variable
                value = np.asarray(variable.get_value())
                h.update(f" {value.dtype} {value.shape}".encode())
        return index[variable]

    for node in io_toposort([], outputs):
        inner = getattr(node.op, "fgraph", None)
        if inner is not None:
            h.update(f"graph {type(node.op).__name__} {inner.inputs}".encode())
            _hash_graph(h, list(inner.outputs), data)
        else:
            h.update(cloudpickle.dumps(node.op))
        h.update(repr([ref(v) for v in node.inputs]).encode())
        for out in node.outputs:
            index[out] = len(index)
            h.update(f"out {out.type} {out.name}".encode())
    h.update(repr([ref(v) for v in outputs]).encode())


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
