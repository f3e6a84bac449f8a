"""Fitted posteriors: the code version that identifies a fit, and the NetCDF files of runs.

A run's posterior file (``posteriors/<run id>.nc``, an ArviZ DataTree) holds the draws, the
sampler's statistics, the fitted weekly series (``constant_data``) and the run's row as
attributes. It is read only from inside the workspace's posteriors folder, and a file that
cannot be read names the command that fits the run again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import forecast
from forecast.errors import PosteriorError, WorkspaceError, first_line
from forecast.files import atomic_file
from forecast.schema import inside, show_value

if TYPE_CHECKING:
    import xarray as xr

    from forecast.workspace import Workspace


def code_version() -> str:
    """The package version and a hash of every source file of the package, subpackages
    included: any change to the library's code invalidates the stored fits."""
    root = Path(forecast.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{forecast.__version__}+{h.hexdigest()[:12]}"


def posterior_path(ws: Workspace, name: str) -> Path:
    """The posterior file a run row names (relative to the workspace), refused unless it lies
    inside the workspace's `posteriors/` folder (symlinks followed): the store is data, and a
    path in it must not make us read files elsewhere."""
    path = inside(ws.posteriors_dir, ws.root / name)
    if path is None:
        raise WorkspaceError(f"{ws.store_path}: the posterior file {show_value(name)} of a run "
                             f"is not inside {ws.posteriors_dir}; refusing to read it")
    return path


def read_posterior(path: Path, then: str, run: dict[str, Any] | None = None) -> xr.DataTree:
    """A posterior NetCDF file (ArviZ DataTree with ``posterior`` and ``constant_data``), read
    whole into memory and closed; with `run` (its row in the history), only if the file was
    written by that run: its attributes hold the run's id and the hash of the data it fitted.

    Raises
    ------
    PosteriorError
        The file cannot be read (truncated, overwritten), or belongs to another run (copied from
        elsewhere): names it and the recovery, `forecast doctor --repair` moving it aside and
        `then` saying what follows.
    """
    import xarray as xr

    recovery = f"run `forecast doctor --repair` to move it aside, {then}"
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            missing = {"posterior", "constant_data"} - set(tree.children)
            if missing:
                raise ValueError(f"no {' or '.join(sorted(missing))} group")
            tree = tree.load()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise PosteriorError(f"{path}: cannot read this posterior file ({first_line(exc)}); "
                             f"{recovery}") from exc
    own = {k: tree.attrs.get(k) for k in ("run_id", "data_hash")}
    if run is not None and any(str(v) != str(run[k]) for k, v in own.items()):
        raise PosteriorError(
            f"{path}: this posterior was not fitted by the update as of {run['as_of']} (run "
            f"{show_value(own['run_id'])}, data {show_value(own['data_hash'])}; the update's "
            f"are {run['run_id']}, {run['data_hash']}); {recovery}")
    return tree


def open_run(ws: Workspace, run: dict[str, Any]) -> xr.DataTree:
    """The posterior file of a recorded run, read whole.

    Raises
    ------
    PosteriorError
        The file is missing or cannot be read; the message gives the command that fits the run
        again (`refit_command`).
    """
    path = posterior_path(ws, run["posterior_file"])
    if not path.is_file():
        raise PosteriorError(f"{path}: the posterior of the update as of {run['as_of']} is "
                             f"missing; {refit_command(run)} fits it again")
    return read_posterior(path, f"then {refit_command(run)} fits it again", run)


def refit_command(run: dict[str, Any]) -> str:
    """The command that fits a recorded run again with the same settings: with the same data,
    the same run (its posterior is written again and its history rows are kept)."""
    return ("`forecast update --as-of {as_of} --seed {seed} --draws {draws} --tune {tune} "
            "--chains {chains}").format(**run) + (
        "`" if run["converged"] else " --allow-unconverged`")


def save(path: Path, tree: xr.DataTree, series: xr.Dataset, run: dict[str, Any]) -> None:
    """Write posterior, sample stats and the fitted series as one NetCDF file, atomically."""
    import xarray as xr

    out = xr.DataTree.from_dict({
        "posterior": tree.posterior.to_dataset(),
        "sample_stats": tree.sample_stats.to_dataset().drop_vars(
            [v for v in tree.sample_stats.data_vars if tree.sample_stats[v].dtype == object]),
        "constant_data": series,
    })
    # NetCDF attributes: numbers and strings only
    out.attrs = {k: int(v) if isinstance(v, bool) else v if isinstance(v, int | float | str)
                 else str(v) for k, v in run.items()}
    path.parent.mkdir(exist_ok=True)
    atomic_file(path, lambda tmp: out.to_netcdf(tmp, engine="h5netcdf"))
