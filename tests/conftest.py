import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from forecast.workspace import bundled_priors, init_workspace

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
