"""The package's layers: imports point down, never up, and never in a circle.

Every import of a `forecast` module counts, also one deferred into a function; only imports for
type checking (``if TYPE_CHECKING:``) do not, since they never run.
"""

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "forecast"

#: Lowest first. A module may import modules of its own layer or of lower ones.
LAYERS = (
    # the floor: errors, file and TOML primitives, the event store, the model's mathematics
    {"errors", "files", "schema", "store", "compiled", "model"},
    # specs and settings: claims, scenarios, priors, platforms, forecast.toml, history tables
    {"claims", "scenarios", "priors", "platforms", "config", "history"},
    # the workspace and the data and fits it holds
    {"workspace", "posterior", "events", "series", "queries", "fit", "forecasts", "simulate",
     "plots", "scoring"},
    # the stages of a command
    {"inputs", "update", "resolution", "judgment", "ingest", "prior_check", "evaluate", "explain",
     "example", "doctor", "fetch"},
    # the services that combine stages
    {"report", "submission"},
)
LAYER = {module: i for i, layer in enumerate(LAYERS) for module in layer}


def _module(path: Path) -> str:
    """The layer name of a source file: its top-level module or subpackage."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The forecast modules (top level) that `path` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "forecast":
                found |= {a.name for a in node.names}
            elif node.module.startswith("forecast."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("forecast.")}
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        module = _module(path)
        graph.setdefault(module, set()).update(_imports(path) - {module})
    return graph


def test_every_module_has_a_layer():
    assert set(_graph()) == set(LAYER)


@pytest.mark.parametrize("module", sorted(LAYER))
def test_imports_point_down(module):
    up = {m: LAYER[m] for m in _graph()[module] if LAYER[m] > LAYER[module]}
    assert not up, f"{module} (layer {LAYER[module]}) imports from higher layers: {up}"


def test_the_cli_holds_no_lock_store_or_transaction_code():
    """cli.py parses, calls the library and renders: the library takes the lock, opens the store
    and runs the transactions."""
    tree = ast.parse((ROOT / "cli.py").read_text(encoding="utf-8"))
    names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree)
             if isinstance(n, ast.Attribute | ast.Name)}
    assert not names & {"lock", "writing", "store", "open_store", "transaction"}


def test_no_import_circle():
    graph, done, path = _graph(), set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(
                [*path[path.index(module):], module]))
        if module in done:
            return
        path.append(module)
        for other in sorted(graph[module]):
            visit(other)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)

