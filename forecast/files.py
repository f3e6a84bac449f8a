"""Files written so that a command killed at any moment leaves the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    raw = data.encode() if isinstance(data, str) else data
    atomic_file(path, lambda tmp: Path(tmp).write_bytes(raw))


def atomic_file(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(temporary path)`, then rename the file over `path` (same folder, so the rename
    is atomic): a command killed at any moment leaves the old file or the new one, whole. The
    file is flushed to disk before the rename and gets the usual permissions (mkstemp's are
    owner-only). The temporary file is ``.<name>.<pid>.<random>.tmp``; a killed command's stays
    behind and is removed by the next writer or `forecast doctor`
    (`forecast.workspace.stray_temp_files`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, where folders can be synced
        _fsync(path.parent)


def write_cache(path: Path, write: Callable[[str], object]) -> bool:
    """`atomic_file` for a file that only saves work: where it cannot be written (a read-only
    workspace, a full disk) the command goes on without it. Returns whether it was written."""
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_file(path, write)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An `OSError` of the block that names no file (a failed write) names `path`."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_output(path: Path, write: Callable[[str], object]) -> None:
    """Write a file the user named (``--out``, ``--plot``) by calling `write(path to write)`.

    ``-`` is standard output; a path that exists and is not a regular file (a device, a FIFO,
    ``/proc/self/fd/1``) is written through, never replaced by a file; a regular file, or a new
    one, is written atomically where its symbolic links lead (`atomic_file`), so the links stay.
    Check the path first with `forecast.workspace.Workspace.check_output`.
    """
    with naming(path):
        if str(path) == "-":
            with tempfile.TemporaryDirectory(prefix="forecast-out-") as folder:
                tmp = os.path.join(folder, "out")
                write(tmp)
                sys.stdout.flush()
                sys.stdout.buffer.write(Path(tmp).read_bytes())
                sys.stdout.buffer.flush()
        elif path.exists() and not stat.S_ISREG(path.stat().st_mode):
            write(str(path))
        else:
            atomic_file(Path(os.path.realpath(path)), write)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"\.(?P<name>.+?)(\.(?P<pid>\d+))?\.[a-z0-9_]+\.tmp")


def is_stray_temp(path: Path) -> bool:
    """Whether `path` is a temporary file of `atomic_file` whose process is gone."""
    match = _TEMP_NAME.fullmatch(path.name)
    return match is not None and path.is_file() and not _running(match["pid"])


def _running(pid: str | None) -> bool:
    """Whether the process named in a temporary file's name runs (None: a name without one)."""
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)  # signal 0 only asks whether the process is there
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove(path: Path) -> None:
    """Delete a file or a folder with its content, if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
