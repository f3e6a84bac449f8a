"""The `forecast` command line: a thin Click layer over the `forecast` library.

Heavy libraries (PyMC, preliz, DuckDB) are imported inside the commands that need them, so that
`forecast --help` stays fast. Data go to stdout, progress and warnings to stderr. Library errors
(`ForecastError`) become one `Error:` line and exit status 1; bad usage exits with status 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from forecast import __version__
from forecast.errors import ForecastError, NotAvailableError


class _Group(click.Group):
    """Turns the library's errors into one-line `Error:` messages with exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ForecastError as exc:
            raise click.ClickException(str(exc)) from None


def emit_json(data: Any) -> None:
    """The one way results are printed as JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def output_options(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")(f)


def _workspace(ctx: click.Context):  # -> forecast.workspace.Workspace
    from forecast.workspace import open_workspace

    return open_workspace(ctx.obj["workspace"])


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "workspace", type=click.Path(file_okay=False, path_type=Path),
              envvar="FORECAST_WORKSPACE", default=Path("workspace"), show_default=True,
              help="Workspace folder (env FORECAST_WORKSPACE).")
@click.version_option(__version__, prog_name="forecast")
@click.pass_context
def main(ctx: click.Context, workspace: Path) -> None:
    """Probabilities that Russia retaliates against Azerbaijan, and how, by given deadlines.

    Priors come from the claims of the op-ed "From Allies to Adversaries"; they are updated with
    coded events (GDELT, ICEWS, ACLED, hand-coded). Start with `forecast init --example`.
    """
    ctx.obj = {"workspace": workspace}


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=True, path_type=Path))
@click.option("--example", is_flag=True,
              help="Load the bundled example events (the document's own events).")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, example: bool) -> None:
    """Create a workspace (default: the --workspace folder) with a copy of the bundled priors."""
    from forecast.workspace import init_workspace

    root = directory or ctx.obj["workspace"]
    ws = init_workspace(root, example=example)
    click.echo(f"Created workspace {ws.root} (priors in {ws.priors_dir}).")
    if example:
        click.echo("Example events are not available yet (issue #3); the workspace has the "
                   "bundled priors only.", err=True)
    click.echo(f"Next: forecast --workspace {ws.root} priors check")


# --- priors -----------------------------------------------------------------------------------

@main.group()
def priors() -> None:
    """The document's claims as priors: check them, show a scenario's."""


def _constraint_json(c) -> dict[str, Any]:
    claim = c.claim
    low, high = c.interval()
    return {
        "id": claim.id, "quote": claim.quote, "scenario": claim.scenario,
        "horizon": claim.horizon.text, "horizon_weeks": claim.horizon.weeks,
        "stated": claim.wording, "stated_range": list(claim.stated),
        "rating": str(claim.rating), "weight": round(c.weight, 4),
        "constraint": {"alpha": round(c.alpha, 4), "beta": round(c.beta, 4),
                       "mean": round(c.mean, 4), "interval": [round(low, 4), round(high, 4)]},
        "note": claim.note,
    }


def _constraint_lines(c) -> list[str]:
    claim, (low, high) = c.claim, c.interval()
    lo, hi = claim.stated
    stated = f"{claim.term} ({lo:.0%}–{hi:.0%})" if claim.term else claim.wording
    return [
        f"{claim.id}  [{claim.scenario}, {claim.horizon.phrase}]",
        f"    “{claim.quote}”",
        f"    stated {stated}; rated {claim.rating} (weight {c.weight:.2f}) → "
        f"Beta({c.alpha:.1f}, {c.beta:.1f}), mean {c.mean:.0%}, 90% in {low:.0%}–{high:.0%}",
    ]


@priors.command("check")
@output_options
@click.pass_context
def priors_check(ctx: click.Context, as_json: bool) -> None:
    """Each claim's stated range and its Beta constraint; flags claims that contradict each other.

    Exits with status 1 when there are conflicts.
    """
    from forecast.priors import load_priors

    p = load_priors(_workspace(ctx).priors_dir)
    constraints, conflicts = p.constraints(), p.conflicts()
    if as_json:
        emit_json({"claims": [_constraint_json(c) for c in constraints],
                   "conflicts": [{"narrower": c.narrower.id, "wider": c.wider.id,
                                  "message": str(c)} for c in conflicts]})
    else:
        for c in constraints:
            click.echo("\n".join(_constraint_lines(c)))
        click.echo(f"\n{len(constraints)} claims on {len({c.claim.scenario for c in constraints})}"
                   f" scenarios; {len(conflicts)} conflict(s).")
    for conflict in conflicts:
        click.echo(f"conflict: {conflict}", err=True)
    if conflicts:
        raise click.ClickException(f"{len(conflicts)} pair(s) of claims contradict each other "
                                   f"(listed above); fix them in {p.directory}")


@priors.command("show")
@click.argument("scenario")
@output_options
@click.pass_context
def priors_show(ctx: click.Context, scenario: str, as_json: bool) -> None:
    """A scenario's resolution rule, indicators, questions and claims."""
    from forecast.priors import load_priors
    from forecast.schema import did_you_mean

    p = load_priors(_workspace(ctx).priors_dir)
    if scenario not in p.scenarios:
        raise click.BadParameter(f"unknown scenario '{scenario}'"
                                 + did_you_mean(scenario, p.scenarios)
                                 + "; known: " + ", ".join(p.scenarios), param_hint="SCENARIO")
    s = p.scenarios[scenario]
    constraints = [c for c in p.constraints() if c.claim.scenario == scenario]
    if as_json:
        emit_json({
            "scenario": s.id, "title": s.title, "description": s.description,
            "resolution": s.resolution and vars(s.resolution), "union": list(s.union),
            "indicators": [{"id": i.id, "title": i.title, **vars(i.filter)}
                           for i in s.indicators],
            "questions": [{"question": q.id, "opened": q.opened, "deadline": q.deadline}
                          for q in s.questions],
            "claims": [_constraint_json(c) for c in constraints],
        })
        return
    lines = [f"{s.title} ({s.id})", f"  {s.description}", ""]
    if s.resolution:
        lines.append(f"Resolves YES on: {s.resolution.describe()}")
    else:
        lines.append(f"Resolves YES when any of these does: {', '.join(s.union)}")
    lines += ["", "Indicators:"] + ([f"  {i.id}: {i.title} ({i.filter.describe()})"
                                     for i in s.indicators] or ["  (none)"])
    lines += ["", "Questions:"] + [f"  {q.id}: opened {q.opened}, deadline {q.deadline}"
                                   for q in s.questions]
    lines += ["", "Claims:"] + [line for c in constraints for line in _constraint_lines(c)]
    click.echo("\n".join(lines))


# --- commands of later issues -----------------------------------------------------------------

def _not_yet(name: str, issue: int, help_text: str) -> None:
    @main.command(name, help=f"{help_text} (not available yet: issue #{issue}).",
                  context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def command() -> None:
        raise NotAvailableError(f"`forecast {name}` is not available yet (issue #{issue})")


for _name, _issue, _help in (
    ("events", 3, "Import coded events; list them; weekly counts"),
    ("update", 4, "Fit the model with the events up to a date; record the forecasts"),
    ("show", 4, "The latest probability of every question, with its interval"),
    ("history", 4, "Every recorded update of a question"),
    ("explain", 5, "Why the forecast moved since the previous update"),
    ("report", 5, "Markdown + HTML + PNG probability report"),
    ("resolve", 6, "Resolve a question by hand: yes, no or annulled"),
    ("submit", 6, "Tournament submission files (Metaculus, ForecastBench, CSV)"),
    ("score", 6, "Brier, log and baseline scores of resolved questions"),
    ("backtest", 6, "Replay the event history and score the forecasts"),
):
    _not_yet(_name, _issue, _help)


if __name__ == "__main__":
    sys.exit(main())
