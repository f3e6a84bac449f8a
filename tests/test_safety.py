"""Secrets and unsafe input: no code runs from data, no path from data leaves the workspace, and
the Metaculus token comes from the environment only and is never written down.

`tests/test_platforms.py` and `tests/test_submission.py` check that the token is sent and never
shown; `tests/data/bad/` (run by `tests/test_bad_inputs.py`) has forecast.toml files that put a
token or an escaping path in the config. This file adds what they do not cover.
"""

import ast
import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from forecast import history
from forecast.errors import ConfigError, PriorSpecError, WorkspaceError
from forecast.example import init_example
from forecast.posterior import posterior_path
from forecast.priors import load_priors
from forecast.store import open_store, transaction
from forecast.workspace import CONFIG_FILE, open_workspace

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "forecast").rglob("*.py")), ROOT / "cli.py"]

# --------------------------------------------------------------------------- (a) unsafe code

#: Modules that turn bytes into objects or code.
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal",
                  "shelve"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
SHELL_CALLS = {"os.system", "os.popen", "os.spawnl", "os.spawnlp", "os.execl", "os.execlp"}


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for a name or an attribute chain, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source: str) -> list[str]:
    """Every use in `source` of a way to run code or unpickle objects from data, by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            found += [f"line {line}: import {n}" for n in names
                      if n.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Name) and node.id in UNSAFE_BUILTINS:
            found.append(f"line {line}: {node.id}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            last = name.rsplit(".", 1)[-1]
            if last in UNSAFE_BUILTINS and name.startswith("builtins."):
                found.append(f"line {line}: {name}")
            if name.startswith("yaml.") and last in ("unsafe_load", "full_load", "unsafe_load_all",
                                                       "full_load_all"):
                found.append(f"line {line}: {name}")
            if name.startswith("yaml.") and last in ("load", "load_all"):
                loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
                if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                    found.append(f"line {line}: {name} without a safe Loader")
            if name in SHELL_CALLS or (name.startswith("subprocess.")
                                       and _is_true(keywords.get("shell"))):
                found.append(f"line {line}: {name} through a shell")
            if last == "import_module" and not (node.args and isinstance(node.args[0],
                                                                         ast.Constant)):
                found.append(f"line {line}: {name} of a computed name")
            if _is_true(keywords.get("allow_pickle")) or last == "read_pickle":
                found.append(f"line {line}: {name} unpickling")
    return found


@pytest.mark.parametrize("snippet", [
    "import pickle", "from pickle import loads", "import marshal", "import shelve",
    "import dill", "from joblib import load", "eval(text)", "exec(code)", "f = eval",
    "__import__(name)", "builtins.eval(x)", "compile(src, 'f', 'exec')",
    "yaml.load(f)", "yaml.load(f, Loader=yaml.Loader)", "yaml.unsafe_load(f)",
    "yaml.full_load(f)", "subprocess.run(cmd, shell=True)", "subprocess.Popen(c, shell=True)",
    "os.system(cmd)", "os.popen(cmd)", "importlib.import_module(name)",
    "np.load(path, allow_pickle=True)", "pd.read_pickle(path)",
])
def test_the_checker_finds_unsafe_code(snippet: str) -> None:
    assert unsafe_uses(snippet)


@pytest.mark.parametrize("snippet", [
    "yaml.load(f, Loader=yaml.SafeLoader)", "yaml.safe_load(f)", "subprocess.run(['git', 'x'])",
    "importlib.import_module('forecast.model')", "np.load(path)", "model.eval_points()",
    "json.loads(text)", "tomllib.loads(text)", "re.compile('x')",
])
def test_the_checker_lets_safe_code_pass(snippet: str) -> None:
    assert unsafe_uses(snippet) == []


#: The one place that unpickles: the model's compiled functions in PyTensor's compile folder,
#: which is code already (PyTensor and numba load their own compiled code from it); files that
#: another user could have written are not read (`forecast.compiled._private`, tested in
#: tests/test_compiled.py). No workspace file, import or config reaches it.
COMPILE_CACHE = {"forecast/compiled.py": ["import pickle", "import cloudpickle"]}


def test_no_code_runs_from_data() -> None:
    found = {str(p.relative_to(ROOT)): uses for p in SOURCES
             if (uses := [u for u in unsafe_uses(p.read_text(encoding="utf-8"))
                          if u.split(": ", 1)[1] not in COMPILE_CACHE.get(
                              str(p.relative_to(ROOT)), [])])}
    assert found == {}


# --------------------------------------------------------------------------- (b) paths


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the workspace, with priors and a posterior-like file in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for the forecaster's eyes\n")
    (folder / "outside.nc").write_bytes(b"not a NetCDF file")
    return folder


def _set_priors(ws_root: Path, value: str) -> None:
    path = ws_root / CONFIG_FILE
    path.write_text(path.read_text().replace('priors = "priors"', f'priors = "{value}"'))


@pytest.mark.parametrize("how", ["dotdot-inside-first", "symlinked-folder", "symlinked-priors"])
def test_config_paths_cannot_leave_the_workspace(workspace, outside: Path, how: str) -> None:
    root = workspace.root
    if how == "dotdot-inside-first":
        value = "priors/../../outside"
    elif how == "symlinked-folder":
        (root / "elsewhere").symlink_to(outside, target_is_directory=True)
        value = "elsewhere"
    else:  # the priors folder itself replaced by a link to another folder
        (root / "priors").rename(root / "priors.orig")
        (root / "priors").symlink_to(outside, target_is_directory=True)
        value = "priors"
    _set_priors(root, value)
    with pytest.raises(ConfigError) as err:
        open_workspace(root)
    assert str(err.value) == (f"{root / CONFIG_FILE}: workspace.priors: must be a folder inside "
                              f"the workspace, got '{value}'")


def test_a_symlink_cannot_take_the_source_document_out_of_the_priors(workspace,
                                                                    outside: Path) -> None:
    document = workspace.priors_dir / "source" / "allies-to-adversaries.txt"
    document.unlink()
    document.symlink_to(outside / "secret.txt")
    with pytest.raises(PriorSpecError) as err:
        load_priors(workspace.priors_dir)
    assert "source.document: expected a file inside" in str(err.value)
    assert "not for the forecaster" not in str(err.value)


@pytest.mark.parametrize("name", ["posteriors/run.nc", "posteriors/sub/../run.nc"])
def test_a_posterior_inside_the_workspace_is_read(workspace, name: str) -> None:
    assert posterior_path(workspace, name) == (workspace.posteriors_dir / "run.nc").resolve()


@pytest.mark.parametrize("name", ["../outside/outside.nc", "{outside}/outside.nc",
                                  "posteriors/../store.duckdb", "posteriors/link.nc",
                                  "posteriors/\x00.nc"])
def test_a_posterior_outside_the_workspace_is_refused(workspace, outside: Path,
                                                      name: str) -> None:
    (workspace.posteriors_dir / "link.nc").symlink_to(outside / "outside.nc")
    name = name.replace("{outside}", str(outside))
    with pytest.raises(WorkspaceError) as err:
        posterior_path(workspace, name)
    assert str(err.value).startswith(f"{workspace.store_path}: the posterior file ")
    assert len(str(err.value).splitlines()) == 1


def _record_fake_run(root: Path, posterior_file: str) -> None:
    """A run row as `forecast update` records it, naming `posterior_file` (no fit is run)."""
    ws = open_workspace(root)
    con = open_store(ws.store_path)
    try:
        history.ensure_schema(con)
        run = {"run_id": "r1", "inputs_hash": "i", "as_of": dt.date(2026, 5, 31), "seed": 1,
               "draws": 10, "tune": 10, "chains": 1, "data_hash": "d", "priors_hash": "p",
               "code_version": "c", "posterior_file": posterior_file, "r_hat_max": 1.0,
               "ess_bulk_min": 500.0, "divergences": 0, "worst": "", "converged": True,
               "allow_unconverged": False, "simulated": False}
        row = {"question": "proxy-strikes-by-2026-06-30", "scenario": "proxy-strikes",
               "deadline": dt.date(2026, 6, 30), "probability": 0.1, "interval": [0.05, 0.2],
               "status": "open"}
        with transaction(con):
            history.record_run(con, run, [row])
    finally:
        con.close()


@pytest.mark.parametrize("command", [["report", "--out", "{tmp}/report"],
                                     ["submit", "--platform", "csv", "--force"]])
def test_commands_refuse_a_posterior_path_from_the_store_that_leaves_it(
        workspace, outside: Path, tmp_path: Path, command: list[str]) -> None:
    _record_fake_run(workspace.root, "../outside/outside.nc")
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])
    assert result.exit_code == 1, result.output
    assert result.stderr == (f"Error: {workspace.store_path}: the posterior file "
                             f"'../outside/outside.nc' of a run is not inside "
                             f"{workspace.posteriors_dir}; refusing to read it\n")


def test_a_posteriors_folder_that_leads_outside_is_refused(workspace, outside: Path) -> None:
    workspace.posteriors_dir.rmdir()
    workspace.posteriors_dir.symlink_to(outside, target_is_directory=True)
    before = sorted(outside.iterdir())
    for args in (["show"], ["report"], ["update"]):
        result = CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])
        assert result.exit_code == 1
        assert result.stderr == (f"Error: {workspace.posteriors_dir} leads outside the workspace "
                                 f"(to {outside.resolve()}); fits are read and written only "
                                 "inside it: make it a folder of the workspace\n")
    assert sorted(outside.iterdir()) == before


@pytest.mark.slow
def test_a_posterior_copied_from_another_run_is_refused(fitted_copy, tmp_path: Path) -> None:
    """Each run's file says which run and data it fitted; another run's file put in its place
    (as if copied from another workspace) is refused by report and named by doctor."""
    ws = open_workspace(fitted_copy)
    with ws.store(read_only=True) as con:
        runs = history.current_runs(con)
    older, latest = (posterior_path(ws, r["posterior_file"]) for r in runs[-2:])
    shutil.copyfile(older, latest)
    runner = CliRunner()
    result = runner.invoke(main, ["--workspace", str(fitted_copy), "report", "--out",
                                  str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {latest}: this posterior was not fitted by the "
                                    f"update as of {runs[-1]['as_of']} (run ")
    assert result.stderr.count("\n") == 1
    doctor = runner.invoke(main, ["--workspace", str(fitted_copy), "doctor"])
    assert "this posterior was not fitted by the update" in doctor.stdout


# --------------------------------------------------------------------------- (c) the token


@pytest.mark.parametrize("table", ["", "[workspace]", "[submit]", "[aggregation]", "[platforms]",
                                   "[platforms.metaculus]", "[platforms.forecastbench]"])
@pytest.mark.parametrize("key", ["token", "metaculus_token", "api_key", "METACULUS_TOKEN"])
def test_a_token_in_forecast_toml_is_refused_and_not_echoed(tmp_path: Path, table: str,
                                                            key: str) -> None:
    root = init_example(tmp_path / "ws").root
    secret = f"tok-{uuid.uuid4().hex}"
    path = root / CONFIG_FILE
    lines = path.read_text().splitlines(keepends=True)
    entry = f'{key} = "{secret}"\n'
    at = next((i + 1 for i, line in enumerate(lines) if line.split("#")[0].strip() == table),
              0 if not table else None)
    if at is None:  # a table the file does not have yet (TOML allows it after its sub-tables)
        lines += [f"\n{table}\n", entry]
    else:
        lines.insert(at, entry)
    path.write_text("".join(lines))
    with pytest.raises(ConfigError) as err:
        open_workspace(root)
    assert "unknown key" in str(err.value) and secret not in str(err.value)


def test_the_token_is_read_only_where_it_is_posted() -> None:
    """`token_from_env()` is only ever the `token=` argument of `metaculus.post(...)`, so the
    token cannot reach a file, a log or a message through the library's own code."""
    reads, posted = [], []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _dotted(node.func).endswith("token_from_env"):
                reads.append(node)
            if isinstance(node, ast.Call) and _dotted(node.func) == "metaculus.post":
                posted += [k.value for k in node.keywords if k.arg == "token"]
    assert reads and all(any(r is p for p in posted) for r in reads)


def test_the_token_is_never_written_to_the_workspace(tmp_path: Path) -> None:
    """Every command that writes, run with the token in the environment (submitting fails: there
    is no update, and fitting one is a slow test's job); then no file holds the token."""
    secret = f"tok-{uuid.uuid4().hex}"
    env = {"METACULUS_TOKEN": secret}
    root = tmp_path / "ws"
    runner = CliRunner()
    question = "proxy-strikes-by-2026-06-30"
    for args in (["init"],
                 ["events", "import", str(ROOT / "tests" / "data" / "native-sample.csv")],
                 ["judge", question, "0.2", "--note", "a hunch"],
                 ["resolve", question, "no", "--date", "2026-06-30"],
                 ["priors", "check", "--no-model"],
                 ["submit", "--platform", "metaculus", "--post"]):
        result = runner.invoke(main, ["--workspace", str(root), *args], env=env)
        assert secret not in result.output
        assert result.exit_code == (1 if args[0] == "submit" else 0), result.output
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "store.duckdb" for p in files)
    assert not [p for p in files if secret.encode() in p.read_bytes()]
    assert os.environ.get("METACULUS_TOKEN") != secret  # the runner's env did not leak out
