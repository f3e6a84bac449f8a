"""Ctrl-C (SIGINT) and SIGTERM sent to real `forecast` processes at seeded moments of an import
and an update: one line saying what was kept, exit status 128 + the signal, nothing half-stored
(the store reads whole, the import or run is all there or absent) and no temporary file left
(issue 17, item 11). `tests/test_crash.py` does the same with SIGKILL, which nothing can catch."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forecast.store import open_store, verify
from forecast.workspace import open_workspace
from tests.conftest import events_csv

pytestmark = pytest.mark.slow

FORECAST = Path(sys.executable).with_name("forecast")
ENV = {k: v for k, v in os.environ.items() if k != "FORECAST_WORKSPACE"}
MESSAGE = ("what the command had finished is kept, whole; the step it was in is not (each "
           "imported file, each update with its fit, is stored whole or not at all)")


def _forecast(root: Path, *args: object) -> subprocess.Popen:
    return subprocess.Popen([str(FORECAST), "--workspace", str(root), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _counts(root: Path) -> tuple[int, int, int]:
    con = open_store(open_workspace(root).store_path, read_only=True)
    try:
        return con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM imports), "
                           "(SELECT count(*) FROM runs)").fetchone()  # type: ignore[return-value]
    finally:
        con.close()


def test_an_interrupted_command_says_what_was_kept(tmp_path: Path):
    rng = random.Random(20261201)
    root = tmp_path / "ws"
    subprocess.run([str(FORECAST), "--workspace", str(root), "init", "--example"], env=ENV,
                   check=True, capture_output=True)
    n = 600_000  # about 5 s to import
    big = events_csv(tmp_path / "big.csv", n)
    for sig in (signal.SIGINT, signal.SIGTERM):
        for args, moment, whole in (
                (["events", "import", big], rng.uniform(1.5, 3.5), (n, 1, 0)),
                (["update", "--as-of", "2026-11-22", "--draws", "400", "--tune", "400",
                  "--allow-unconverged"], rng.uniform(3.0, 7.0), (0, 0, 1))):
            before = _counts(root)
            proc = _forecast(root, *args)
            time.sleep(moment)
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 128 + sig, (sig, args, moment, stderr)
            assert stderr.splitlines()[-1] == f"Error: interrupted ({sig.name}): {MESSAGE}"
            verify(open_workspace(root).store_path)
            # the step it was in is stored whole or not at all
            after = tuple(b + w for b, w in zip(before, whole, strict=True))
            assert _counts(root) in (before, after), (sig, args, moment)
            assert not list(root.rglob("*.tmp")) and not list(root.glob("forecast-import-*"))
    doctor = subprocess.run([str(FORECAST), "--workspace", str(root), "doctor"], env=ENV,
                            capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
