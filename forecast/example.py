"""The bundled example: the document's own events, and a simulated 2024–2026 world.

`forecast init --example` writes both as native event files into the workspace's `examples/`
folder (so they can be read and re-imported like any other feed), imports them, and keeps the
simulated world's true parameters beside them. Everything simulated says so: its notes read
"SIMULATED", its URLs are under `simulated.invalid`, and the workspace is marked `example = true`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from forecast.claims import ClaimSet
from forecast.events import ImportResult
from forecast.ingest import import_files
from forecast.platforms import example_platforms_toml
from forecast.priors import load_priors
from forecast.resolution import Resolution
from forecast.scenarios import EventFilter, all_indicators, load_scenarios
from forecast.series import week_ends
from forecast.simulate import World, simulate_world, world_events
from forecast.workspace import Workspace, bundled_priors, init_workspace

EXAMPLE_SEED = 2024
EXAMPLE_START = dt.date(2024, 1, 1)
EXAMPLE_AS_OF = dt.date(2026, 11, 22)
NATIVE_HEADER = ("date", "actor1", "actor2", "event_code", "num_sources", "source_url", "note")


def init_example(root: Path) -> Workspace:
    """A new workspace marked as the example, its questions mapped to fake platform ids (the
    events are loaded by `load_example`)."""
    questions = [q.id for s in load_scenarios(bundled_priors() / "scenarios").values()
                 for q in s.questions]
    return init_workspace(root, example=True,
                          platforms=example_platforms_toml(questions, due=EXAMPLE_AS_OF))


def document_events(claim_sets: tuple[ClaimSet, ...]) -> list[dict]:
    """The events the source document names (its triggers), as native event records."""
    return [{"date": t.date, "actor1": t.actor1, "actor2": t.actor2, "event_code": t.event_code,
             "num_sources": 1, "source_url": f"{cs.source.document.name}#{t.id}",
             "note": f"{t.id}: date precision {t.date_precision}; “{t.quote}”"}
            for cs in claim_sets for t in cs.triggers]


def write_native(events: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, NATIVE_HEADER)
        writer.writeheader()
        writer.writerows(events)


def _coded(flt: EventFilter, sources: int) -> tuple[str, str, str, int]:
    """A concrete event meeting `flt`: its first actors and code (a 2-digit root gets a 0)."""
    return flt.actor1[0], flt.actor2[0], flt.codes[0].ljust(3, "0"), max(sources, flt.min_sources)


def example_world(ws: Workspace, seed: int = EXAMPLE_SEED) -> tuple[World, list[dict]]:
    """The simulated world of the example (other seeds: other worlds like it), and its events."""
    priors = load_priors(ws.priors_dir)
    rng = np.random.default_rng(seed)
    rules = {s.id: _coded(s.resolution, s.resolution.min_sources + 1)
             for s in priors.scenarios.values() if s.resolution}
    indicators = all_indicators(priors.scenarios)
    rules |= {i.id: _coded(i.filter, 2) for i in indicators.values()}
    weeks = week_ends(EXAMPLE_START, EXAMPLE_AS_OF)
    scenarios = [s for s, sc in priors.scenarios.items() if sc.resolution]
    counter = {s for s in scenarios if priors.scenarios[s].counter}
    params = _plausible_parameters(rng, [s in counter for s in scenarios], len(indicators))
    world = simulate_world(rng, scenarios, list(indicators), weeks, params=params,
                           counter=counter)
    return world, world_events(world, rules, rng, ws.config.region)


def _plausible_parameters(rng: np.random.Generator, counter: list[bool],
                          n_indicators: int) -> dict[str, Any]:
    """A world like the one the document describes, rather than a draw from the wide priors
    (which happily make 8,000 sanctions a week): persistent escalation, indicators a few times a
    week, each retaliation channel about once a quarter to once a year when on, and direct
    military action (the counter-scenario) far rarer. Moscow retaliates (R = 1); each channel is
    on with probability 1 - Beta(2, 3)."""
    n = len(counter)
    beta = np.where(counter, -7.5, rng.normal(-4.5, 0.6, n))
    return {"rho": rng.beta(17, 3), "mu": rng.normal(1.0, 0.7, n_indicators),
            "lambda": rng.uniform(0.2, 0.6, n_indicators),
            "phi": rng.uniform(0.1, 0.5, n_indicators), "beta": beta,
            "gamma": rng.uniform(0.1, 0.5, n), "channel": 1 - rng.beta(2, 3, n),
            "retaliation": 1.0}


def load_example(ws: Workspace) -> tuple[list[ImportResult], list[Resolution]]:
    """Write, import and describe the example events; returns the import results and the
    resolutions the events imply (`forecast.ingest.import_files`)."""
    folder = ws.root / "examples"
    folder.mkdir(exist_ok=True)
    world, events = example_world(ws)
    files = {folder / "document-events.csv": document_events(load_priors(ws.priors_dir)
                                                              .claim_sets),
             folder / "simulated-world.csv": events}
    truth = {k: np.asarray(v).tolist() if np.asarray(v).dtype == bool
             else np.asarray(v).round(6).tolist() for k, v in world.params.items()}
    (folder / "simulated-world-truth.json").write_text(json.dumps(
        {"note": "SIMULATED: the true parameters of the example world (forecast.model notation)",
         "seed": EXAMPLE_SEED, "scenarios": list(world.series.scenario.values),
         "indicators": list(world.series.indicator.values), **truth}, indent=1))
    for path, rows in files.items():
        write_native(rows, path)
    return import_files(ws, list(files), fmt="native")
