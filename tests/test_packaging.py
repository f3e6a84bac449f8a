"""The wheel carries the priors, so a non-editable install works outside the checkout."""

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_wheel_install_works_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    (wheel,) = (tmp_path / "dist").glob("forecast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"cli.py", "forecast/priors.py", "priors/claims/allies-to-adversaries.toml",
            "priors/scenarios/proxy-strikes.toml", "priors/source/allies-to-adversaries.txt",
            "priors/source/ATTRIBUTION.md"} <= names
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    run = [sys.executable, "-c", "import cli; cli.main()", "--workspace", str(tmp_path / "ws")]
    out = tmp_path / "elsewhere"
    out.mkdir()
    where = subprocess.run([sys.executable, "-c", "import forecast; print(forecast.__file__)"],
                           cwd=out, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(tmp_path / "site"))
    subprocess.run([*run, "init"], cwd=out, env=env, check=True, capture_output=True)
    check = subprocess.run([*run, "priors", "check"], cwd=out, env=env, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    assert "0 conflict(s)" in check.stdout
