"""Where commands write what the user asked for (``--out``, ``--plot``): never over the
workspace's own files, through devices and FIFOs instead of over them, ``-`` to stdout, and one
line, not a traceback, when the file system refuses (issue 17, items 1 and 6)."""

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cli import main

pytestmark = pytest.mark.slow


def _run(runner, root, *args):
    return runner.invoke(main, ["--workspace", str(root), *args])


def _submit(runner, root, out):
    return _run(runner, root, "submit", "--platform", "csv", "--force", "--out", str(out))


@pytest.mark.parametrize("name", ["forecast.toml", "store.duckdb", "store.backup.duckdb",
                                  "priors/claims.toml", "posteriors/new.csv"])
def test_an_output_over_the_workspaces_own_files_is_refused(runner, fitted_copy, name):
    target = fitted_copy / name
    before = target.read_bytes() if target.exists() else None
    result = _submit(runner, fitted_copy, target)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {target}: that is the workspace's own ")
    assert result.stderr.count("\n") == 1
    assert (target.read_bytes() if target.exists() else None) == before


def test_a_link_to_the_workspaces_store_is_refused(runner, fitted_copy, tmp_path):
    link = tmp_path / "innocent.csv"
    link.symlink_to(fitted_copy / "store.duckdb")
    before = (fitted_copy / "store.duckdb").read_bytes()
    result = _submit(runner, fitted_copy, link)
    assert result.exit_code == 1 and "the workspace's own store.duckdb" in result.stderr
    assert (fitted_copy / "store.duckdb").read_bytes() == before and link.is_symlink()


def test_a_fifo_is_written_through_not_replaced(runner, fitted_copy, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = _submit(runner, fitted_copy, fifo)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith(b"question,")


def test_dev_null_stays_a_device(runner, fitted_copy):
    result = _submit(runner, fitted_copy, "/dev/null")
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_link_to_a_file_stays_a_link(runner, fitted_copy, tmp_path):
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    assert _submit(runner, fitted_copy, link).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("question,")


def test_dash_is_stdout(runner, fitted_copy):
    result = _submit(runner, fitted_copy, "-")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("question,") and not Path("-").exists()
    plot = _run(runner, fitted_copy, "score", "--plot", "-")
    assert plot.exit_code == 0, plot.output
    assert plot.stdout_bytes.startswith(b"\x89PNG") and not Path("-").exists()


def test_an_output_in_a_missing_folder_is_one_line(runner, fitted_copy, tmp_path):
    out = tmp_path / "no" / "such" / "submission.csv"
    result = _submit(runner, fitted_copy, out)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {out}: the folder {out.parent} does not exist; create it "
                             "first or name another\n")
    plot = _run(runner, fitted_copy, "score", "--plot", str(out))
    assert plot.exit_code == 1 and plot.stderr.count("\n") == 1


def test_a_full_device_is_one_line(runner, fitted_copy):
    result = _run(runner, fitted_copy, "score", "--plot", "/dev/full")
    assert result.exit_code == 1
    assert result.stderr == ("Error: /dev/full: No space left on device; the disk is full; free "
                             "some space and run the command again\n")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_report_into_the_workspaces_own_folder_is_refused(runner, fitted_copy):
    before = sorted(p.name for p in (fitted_copy / "posteriors").iterdir())
    result = _run(runner, fitted_copy, "report", "--out", str(fitted_copy / "posteriors"))
    assert result.exit_code == 1 and "the workspace's own posteriors" in result.stderr
    assert sorted(p.name for p in (fitted_copy / "posteriors").iterdir()) == before


def test_output_to_a_closed_pipe_or_a_full_device(tmp_path: Path) -> None:
    # `forecast events list | head -1`: head leaves after its line; the rest has nowhere to go
    forecast = [str(Path(sys.executable).with_name("forecast")), "--workspace", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "FORECAST_WORKSPACE"}
    sample = Path(__file__).parent / "data" / "native-sample.csv"
    for args in (["init"], ["events", "import", str(sample)]):
        subprocess.run([*forecast, *args], env=env, check=True, capture_output=True)
    read, write = os.pipe()
    os.close(read)  # gone before the first line is written
    done = subprocess.run([*forecast, "events", "list"], env=env, stdout=write,
                          stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert (done.returncode, done.stderr) == (128 + signal.SIGPIPE, "")
    if Path("/dev/full").exists():  # an output that cannot be written is named as such
        with open("/dev/full", "w") as full:
            done = subprocess.run([*forecast, "events", "list"], env=env, stdout=full,
                                  stderr=subprocess.PIPE, text=True)
        assert done.returncode == 1
        assert done.stderr.startswith("Error: the command's output: No space left on device")
