import subprocess
import sys
import textwrap

import pytest

from forecast.errors import ConfigError, WorkspaceBusyError, WorkspaceError
from forecast.example import init_example
from forecast.files import atomic_write
from forecast.workspace import CONFIG_FILE, init_workspace, open_workspace


def test_init_copies_the_priors_and_writes_a_readable_config(tmp_path):
    ws = init_example(tmp_path / "ws")
    again = open_workspace(tmp_path / "ws")
    assert again.config == ws.config
    assert ws.config.example and ws.config.region == ("RUS", "AZE", "IRN", "ARM", "GEO", "TUR")
    assert (ws.priors_dir / "claims" / "allies-to-adversaries.toml").is_file()
    assert (ws.priors_dir / "source" / "allies-to-adversaries.txt").is_file()
    assert not (ws.priors_dir / "__init__.py").exists()
    assert ws.posteriors_dir.is_dir()


def test_init_refuses_an_existing_workspace(workspace):
    with pytest.raises(WorkspaceError, match="is already a workspace"):
        init_workspace(workspace.root)


def test_a_missing_workspace_says_how_to_create_one(tmp_path):
    with pytest.raises(WorkspaceError) as err:
        open_workspace(tmp_path / "nope")
    assert str(err.value) == (f"no workspace at {tmp_path / 'nope'}: create one with "
                              f"`forecast init {tmp_path / 'nope'}` (or choose another with "
                              "--workspace DIR / FORECAST_WORKSPACE)")


@pytest.mark.parametrize(("line", "value", "problem"), [
    ("lock_timeout", '"soon"', "workspace.lock_timeout: expected a number, got 'soon'"),
    ("example", "1", "workspace.example: expected true or false, got 1"),
    ("priors", '"../../etc"', "workspace.priors: must be a folder inside the workspace, "
     "got '../../etc'"),
    ("region", '["Russia"]', "workspace.region: expected one or more CAMEO country codes like "
     "'RUS' (an empty region would keep every event), got ['Russia']"),
    ("region", "[]", "workspace.region: expected one or more CAMEO country codes like 'RUS' (an "
     "empty region would keep every event), got []"),
    ("version", "2", "workspace.version: expected 1 (the only version this toolkit reads), got 2"),
    ("history_weeks", "4", "workspace.history_weeks: expected an integer from 8 to 5200, got 4"),
    ("history_weeks", "52.5",
     "workspace.history_weeks: expected an integer from 8 to 5200, got 52.5"),
])
def test_config_errors_name_the_key(workspace, line, value, problem):
    path = workspace.root / CONFIG_FILE
    text = "\n".join(f"{line} = {value}" if row.startswith(f"{line} =") else row
                     for row in path.read_text().splitlines())
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        open_workspace(workspace.root)
    assert str(err.value) == f"{path}: {problem}"


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_second_writer_waits_then_is_refused(workspace):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from forecast.workspace import open_workspace
            with open_workspace(Path({str(workspace.root)!r})).lock():
                print("locked", flush=True)
                sys.stdin.readline()
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = workspace.config.__class__(**{**vars(workspace.config), "lock_timeout": 0.2})
        busy = workspace.__class__(workspace.root, config)
        with pytest.raises(WorkspaceBusyError, match=r"is busy: .*\(waited 0\.2 s\)"), busy.lock():
            pass
    finally:
        holder.communicate("\n", timeout=10)
    with workspace.lock():  # released when the holder finished
        pass


def test_init_never_overwrites_edited_priors(runner, tmp_path):
    """`init DIR` on a folder without forecast.toml overwrote edited claims."""
    from cli import main

    root = tmp_path / "ws"
    assert runner.invoke(main, ["init", str(root)]).exit_code == 0
    (root / "forecast.toml").unlink()  # say, a workspace whose config was lost
    claims = next((root / "priors" / "claims").glob("*.toml"))
    claims.write_text(claims.read_text() + "\n# my edits\n")
    result = runner.invoke(main, ["init", str(root)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {root} holds priors files init would overwrite ({claims}): "
                             "init never overwrites a file; move them away, or init elsewhere\n")
    assert claims.read_text().endswith("# my edits\n")
    claims.write_text(claims.read_text().removesuffix("\n# my edits\n"))  # as bundled again
    assert runner.invoke(main, ["init", str(root)]).exit_code == 0  # an interrupted init reruns
