"""Real file-system faults, not simulated ones: a workspace on a read-only mount and one on a
full disk (a tiny tmpfs). Every command answers in one line, the commands that only read still
work, and the store keeps what it held (issue 17, item 6). Needs permission to mount (root);
skipped otherwise."""

import errno
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import duckdb
import pytest

from cli import main
from forecast.store import refusal
from tests.conftest import events_csv

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"


@pytest.fixture
def mount():
    """`mount(*options, source, target)` mounts for the test and unmounts after it."""
    mounted: list[Path] = []

    def do(*args: str, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", *args, str(target)], capture_output=True, check=False)
        if done.returncode:
            pytest.skip(f"cannot mount here: {done.stderr.decode().strip()}")
        mounted.append(target)

    yield do
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


def _run(runner, root, *args):
    return runner.invoke(main, ["--workspace", str(root), *args])


def _one_line(result, *words):
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    for w in words:
        assert w in result.stderr


def test_a_read_only_workspace(runner, fitted_example, tmp_path, mount):
    source, ro = tmp_path / "rw", tmp_path / "ro"
    shutil.copytree(fitted_example, source / "ws")
    mount("--bind", str(source), target=ro)
    mount("-o", "remount,bind,ro", str(source), target=ro)
    ws = ro / "ws"
    before = {p.name: p.stat().st_mtime_ns for p in ws.iterdir()}
    for command in (["show"], ["doctor"], ["score"], ["report", "--out", str(tmp_path / "r")],
                    ["priors", "check", "--no-model"]):
        result = _run(runner, ws, *command)
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "r" / "report.html").is_file()
    for command in (["update", "--as-of", "2026-11-22"], ["events", "import",
                                                          str(DATA / "acled-sample.csv")],
                    ["judge", "hybrid-retaliation-by-2026-12-31", "0.3"], ["doctor", "--repair"],
                    ["submit", "--platform", "csv", "--force"],
                    ["report", "--out", str(ws / "r")]):
        _one_line(_run(runner, ws, *command), "Read-only file system",
                  "need a writable workspace")
    assert {p.name: p.stat().st_mtime_ns for p in ws.iterdir()} == before


def _fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _events(runner, root) -> str:
    """The stored events, as listed."""
    result = _run(runner, root, "events", "list")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_full_disk(runner, tmp_path, mount):
    disk = tmp_path / "disk"
    mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", target=disk)
    ws = disk / "ws"
    assert _run(runner, ws, "init").exit_code == 0
    assert _run(runner, ws, "events", "import", str(DATA / "native-sample.csv")).exit_code == 0
    held = _events(runner, ws)
    _fill(disk)
    _one_line(_run(runner, ws, "events", "import", str(DATA / "acled-sample.csv")),
              "No space left on device", "free some space")
    assert _events(runner, ws) == held  # the store reads whole and holds what it held
    # room for the scratch folder, not for the archive's decompressed copy: the disk is named,
    # not the archive
    os.truncate(disk / "filler", (disk / "filler").stat().st_size - 1_000_000)
    archive = tmp_path / "events.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(events_csv(tmp_path / "many.csv", 200_000), "many.csv")
    result = _run(runner, ws, "events", "import", str(archive))
    _one_line(result, "events.txt: No space left on device", "free some space")
    assert "zip archive" not in result.stderr
    assert _events(runner, ws) == held
    (disk / "filler").unlink()
    again = _run(runner, ws, "events", "import", str(DATA / "acled-sample.csv"))
    assert again.exit_code == 0, (again.output, sorted(os.listdir(disk)), os.listdir(ws))
    assert _events(runner, ws) != held
    doctor = _run(runner, ws, "doctor")
    assert doctor.exit_code == 0 and "no problems found" in doctor.stdout, doctor.output


# where mounting is not permitted, the same code paths with the failure put in by hand

def test_a_backup_the_disk_refuses_says_the_work_is_stored(runner, workspace, monkeypatch):
    import forecast.workspace as module

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(workspace.store_path))

    monkeypatch.setattr(module.shutil, "copy2", full)
    result = _run(runner, workspace.root, "judge", "hybrid-retaliation-by-2026-12-31", "0.3")
    _one_line(result, "the command's changes are stored, but the store's backup could not be "
              f"made ({workspace.store_path}: No space left on device; the disk is full")
    monkeypatch.undo()
    shown = _run(runner, workspace.root, "resolve", "hybrid-retaliation-by-2026-12-31")
    assert shown.exit_code == 0


def test_a_commit_the_disk_refuses_is_one_line(tmp_path):
    store = tmp_path / "store.duckdb"
    error = refusal(duckdb.TransactionException(
        f'TransactionContext Error: Failed to commit: Could not write file "{store}.wal": '
        "No space left on device"), store)
    assert str(error) == (f"{store}: No space left on device; the disk is full; free some space "
                          "and run the command again (nothing of this command was stored)")
    assert refusal(duckdb.TransactionException("Conflict on update"), store) is None
