import datetime as dt
import shutil
from pathlib import Path

import filelock
import pytest
from click.testing import CliRunner

from forecast.workspace import bundled_priors, init_workspace
from tests.fake_metaculus import start_servers

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "priors" / "source" / "allies-to-adversaries.txt"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def priors_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled priors."""
    target = tmp_path / "priors"
    shutil.copytree(bundled_priors(), target, ignore=shutil.ignore_patterns("__*"))
    return target


@pytest.fixture
def workspace(tmp_path: Path):
    return init_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def fitted_example(tmp_path_factory, worker_id):
    """An example workspace with three recorded updates (short fits, published with
    --allow-unconverged so that they are quick): 2026-05-31, before the deadline of the questions
    "by 2026-06-30", then 2026-11-15 and 2026-11-22, and the priors checked. Shared by the slow
    tests that read forecasts, and made once for all pytest-xdist workers (the first that needs
    it makes it, under a lock); tests that write to it work on a copy (`fitted_copy`)."""
    if worker_id == "master":  # one process
        return _fitted_example(tmp_path_factory.mktemp("fitted") / "ex")
    shared = tmp_path_factory.getbasetemp().parent / "fitted"
    shared.mkdir(exist_ok=True)
    with filelock.FileLock(shared / ".lock"):
        if not (shared / "done").exists():
            _fitted_example(shared / "ex")
            (shared / "done").touch()
    return shared / "ex"


def _fitted_example(root: Path) -> Path:
    from cli import main

    runner = CliRunner()
    ws = ["--workspace", str(root)]
    assert runner.invoke(main, [*ws, "init", "--example"]).exit_code == 0
    config = root / "forecast.toml"
    config.write_text(config.read_text().replace("history_weeks = 156", "history_weeks = 20"))
    for as_of in ("2026-05-31", "2026-11-15", "2026-11-22"):
        result = runner.invoke(main, [*ws, "update", "--as-of", as_of, "--draws", "100",
                                      "--tune", "200", "--allow-unconverged"])
        assert result.exit_code == 0, result.output
    # the fits of the claims alone and of the broad priors, cached in posteriors/ for the
    # report's, explain's and the copies' use
    result = runner.invoke(main, [*ws, "priors", "check"])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def fitted_copy(fitted_example, tmp_path):
    """A private copy of `fitted_example`, for tests that write to it."""
    target = tmp_path / "ex"
    shutil.copytree(fitted_example, target)
    return target


@pytest.fixture
def metaculus(monkeypatch):
    """`start(*replies)` starts a fake Metaculus (see `tests.fake_metaculus`)."""
    yield from start_servers(monkeypatch)


def events_csv(path: Path, n: int) -> Path:
    """`n` distinct hand-coded events of 2025 (before the example's questions opened, outside
    the fitted weeks)."""
    start = dt.date(2025, 1, 1)
    lines = ["date,actor1,actor2,event_code,num_sources,source_url,note"]
    lines += [f"{start + dt.timedelta(days=i % 300)},RUS,AZE,163,1,https://example.org/{i},"
              for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path
