"""Validation scripts: each writes its figures as JSON into reports/validation/."""

import subprocess
from pathlib import Path


def measured_at() -> str:
    """The commit the figures were measured at, marked "+changes" when the tree has any."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain")
                                                  else "")
