"""The `forecast` command line: a thin Click layer over the `forecast` library.

Heavy libraries (PyMC, DuckDB) are imported inside the commands that need them, so that
`forecast --help` stays fast. Data go to stdout, progress and warnings to stderr. Library errors
(`ForecastError`) become one `Error:` line and exit status 1; bad usage exits with status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from forecast import __version__
from forecast.errors import ForecastError, NotAvailableError, one_line, os_error_line


class Interrupted(click.ClickException):
    """Ctrl-C or SIGTERM, in one line saying what was kept; exit status 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted ({signal.Signals(signum).name}): what the command had "
                         "finished is kept, whole; the step it was in is not (each imported "
                         "file, each update with its fit, is stored whole or not at all)")
        self.exit_code = 128 + signum  # type: ignore[misc]  # click's is a class attribute


_SIGNALLED: list[int] = []  # SIGTERMs received by this command


def _on_sigterm(signum: int, _frame: Any) -> None:
    """SIGTERM as Ctrl-C: the command unwinds (transactions roll back, temporary files go, the
    lock is released) instead of vanishing."""
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt(signum)


def _signal() -> int:
    """The signal that interrupted the command: SIGTERM if we had one, else Ctrl-C's."""
    return _SIGNALLED[-1] if _SIGNALLED else signal.SIGINT


class _Group(click.Group):
    """Turns the library's errors into one-line `Error:` messages with exit status 1, and an
    interruption (Ctrl-C, SIGTERM) into one line with exit status 130 or 143."""

    def invoke(self, ctx: click.Context) -> Any:
        main_thread = threading.current_thread() is threading.main_thread()
        _SIGNALLED.clear()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted(_signal()) from None
        except ForecastError as exc:
            raise click.ClickException(one_line(str(exc))) from None
        except OSError as exc:  # a read-only or full disk, a missing folder, a looping link
            if isinstance(exc, BrokenPipeError) and _reader_gone():
                # what reads our output stopped (`forecast events list | head`): stop quietly,
                # as `cat` does, with SIGPIPE's status; nothing more can be written there
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(128 + signal.SIGPIPE)
            if exc.filename is None and _output_fails(exc):  # `> /dev/full`: name it
                exc = OSError(exc.errno, exc.strerror, "the command's output")
            raise click.ClickException(one_line(os_error_line(exc))) from None
        except Exception as exc:  # a damaged store found while reading it, past its opening
            if isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted"):
                # DuckDB stops a query on Ctrl-C, and on our SIGTERM's KeyboardInterrupt
                raise Interrupted(_signal()) from None
            if type(exc).__module__.partition(".")[0] not in ("duckdb", "_duckdb"):
                raise
            from forecast.store import damage, refusal

            path = ctx.obj["workspace"] / "store.duckdb"
            error = damage(exc, path) or refusal(exc, path)
            if error is None:
                raise
            raise click.ClickException(one_line(str(error))) from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's), or no poll
        return False


def _output_fails(exc: OSError) -> bool:
    """Whether `exc` came from printing (click.echo, to standard output or error)."""
    import traceback

    return any(frame.name == "echo" and "click" in frame.filename
               for frame in traceback.extract_tb(exc.__traceback__))


def emit_json(data: Any) -> None:
    """The one way results are printed as JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def output_options(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")(f)


#: Bounds of the sampler's options: past them a fit runs out of memory or numpy's seed range.
SAMPLER_RANGES = {"draws": (1, 100_000), "tune": (1, 100_000), "chains": (1, 64),
                  "seed": (0, 2**32 - 1)}
MAX_WEEKS = 5200  # 100 years: more is a typo, and overflows date arithmetic


def sampler_options(**overrides: int) -> Callable[[Callable], Callable]:
    """--draws --tune --chains --seed, defaulting to `SamplerConfig`'s or to `overrides`."""
    from forecast.fit import SamplerConfig

    defaults = {**vars(SamplerConfig()), **overrides}

    def decorate(f: Callable) -> Callable:
        for name, help_text in reversed((("draws", "Posterior draws per chain."),
                                         ("tune", "Tuning draws per chain."),
                                         ("chains", "Chains (run in parallel)."),
                                         ("seed", "Random seed: same inputs and seed, same "
                                                  "numbers."))):
            f = click.option(f"--{name}", type=click.IntRange(*SAMPLER_RANGES[name]),
                             default=defaults[name], show_default=True, help=help_text)(f)
        return f

    return decorate


DATE = click.DateTime(formats=["%Y-%m-%d"])


def _workspace(ctx: click.Context, *outputs: Path | None):  # -> forecast.workspace.Workspace
    """The workspace, with the user's output paths checked before any work (`check_output`)."""
    from forecast.workspace import open_workspace

    ws = open_workspace(ctx.obj["workspace"])
    for path in outputs:
        if path is not None:
            ws.check_output(path)
    return ws


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
              help="Load the example events: the document's own, and a simulated 2024–2026 world.")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, example: bool) -> None:
    """Create a workspace (default: the --workspace folder) with a copy of the bundled priors."""
    from forecast.workspace import init_workspace

    root = directory or ctx.obj["workspace"]
    if example:
        from forecast.example import init_example

        ws = init_example(root)
    else:
        ws = init_workspace(root)
    click.echo(f"Created workspace {ws.root} (priors in {ws.priors_dir}).")
    if example:
        from forecast.example import EXAMPLE_AS_OF, load_example

        results, resolved = load_example(ws)
        for result in results:
            click.echo(_import_line(result.as_dict()))
        click.echo(f"{len(resolved)} question(s) resolved by the events (`forecast show` after "
                   "an update; `forecast resolve QUESTION` for why).")
        click.echo("The example events are SIMULATED, except the document's own events.")
        click.echo(f"Next: forecast --workspace {ws.root} update --as-of {EXAMPLE_AS_OF}")
    else:
        click.echo(f"Next: forecast --workspace {ws.root} events import FILE...")


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
        "published": str(c.published), "pseudo_observations": round(c.pseudo_observations, 4),
        "constraint": {"alpha": round(c.alpha, 4), "beta": round(c.beta, 4),
                       "mean": round(c.mean, 4), "interval": [round(low, 4), round(high, 4)]},
        "note": claim.note,
    }


def _document_json(d) -> dict[str, Any]:
    return {"title": d.source.title, "published": str(d.source.published),
            "reliability": d.source.reliability, "budget": round(d.budget, 4),
            "rated": round(d.rated, 4), "used": round(d.used, 4)}


def _document_line(d) -> str:
    return (f"“{d.source.title}” ({d.source.published}, reliability {d.source.reliability}): "
            f"its claims count as {d.used:.1f} observations (budget {d.budget:.1f}; "
            f"{d.rated:.0f} before the budget)")


def _constraint_lines(c) -> list[str]:
    claim = c.claim
    lo, hi = claim.stated
    stated = f"{claim.term} ({lo:.0%}–{hi:.0%})" if claim.term else claim.wording
    return [
        f"{claim.id}  [{claim.scenario}, {claim.horizon.phrase}]",
        f"    “{claim.quote}”",
        f"    stated {stated}; {c.describe()}",
    ]


@priors.command("check")
@click.option("--model/--no-model", default=True, show_default=True,
              help="Also sample the model's prior given the claims (cached per priors version).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the check as a PNG (needs --model).")
@output_options
@click.pass_context
def priors_check(ctx: click.Context, model: bool, plot: Path | None, as_json: bool) -> None:
    """Each claim's stated range, its Beta constraint and the model's prior probability; flags
    claims that contradict each other.

    Exits with status 1 when there are conflicts.
    """
    from forecast.priors import load_priors

    ws = _workspace(ctx, plot)
    p = load_priors(ws.priors_dir)
    constraints, conflicts = p.constraints(), p.conflicts()
    predictive = _prior_predictive(ws, p) if model and not conflicts else None
    asked, asked_diagnostics = _question_priors(ws, p) if predictive else ([], None)
    if plot is not None and predictive is not None:
        from forecast.prior_check import plot_prior_check

        plot_prior_check(p, predictive, plot)
    if as_json:
        claims = [_constraint_json(c) for c in constraints]
        for claim, pred in zip(claims, predictive or [], strict=False):
            claim["model_prior"] = {k: pred[k] for k in ("mean", "interval", "consistent")}
        emit_json({"documents": [_document_json(d) for d in p.documents()], "claims": claims,
                   "model_diagnostics": predictive[0]["diagnostics"] if predictive else None,
                   "questions": asked, "questions_diagnostics": asked_diagnostics,
                   "conflicts": [{"narrower": c.narrower.id, "wider": c.wider.id,
                                  "message": str(c)} for c in conflicts]})
    else:
        for i, c in enumerate(constraints):
            click.echo("\n".join(_constraint_lines(c)))
            if predictive:
                pred = predictive[i]
                low, high = pred["interval"]
                flag = "" if pred["consistent"] else "  <- the stated range is outside it"
                click.echo(f"    model prior {pred['mean']:.0%}, 90% in {low:.0%}–{high:.0%}"
                           f"{flag}")
        click.echo(f"\n{len(constraints)} claims on {len({c.claim.scenario for c in constraints})}"
                   f" scenarios; {len(conflicts)} conflict(s).")
        for d in p.documents():
            click.echo(_document_line(d))
        if asked:
            click.echo(f"\nBefore any event, P(yes) of each question\n{'question':<42} "
                       f"{'document':>9} {'no claims':>10}")
            for q in asked:
                click.echo(f"{q['question']:<42} {q['claims_only']:>9.1%} {q['no_claims']:>10.1%}")
    for conflict in conflicts:
        click.echo(f"conflict: {conflict}", err=True)
    if conflicts:
        raise click.ClickException(f"{len(conflicts)} pair(s) of claims contradict each other "
                                   f"(listed above); fix them in {p.directory}")


def _prior_predictive(ws, p) -> list[dict]:
    from forecast.prior_check import prior_predictive

    click.echo("The model's prior given the claims (sampled once per priors version)...",
               err=True)
    return prior_predictive(p, ws.posteriors_dir)


def _question_priors(ws, p) -> tuple[list[dict], dict]:
    from forecast.prior_check import question_priors

    return question_priors(p, ws.posteriors_dir)


@priors.command("show")
@click.argument("scenario")
@output_options
@click.pass_context
def priors_show(ctx: click.Context, scenario: str, as_json: bool) -> None:
    """A scenario's resolution rule, indicators, questions and claims."""
    from forecast.priors import load_priors

    ws = _workspace(ctx)
    s = _scenario(ws, scenario, "SCENARIO")
    p = load_priors(ws.priors_dir)
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


# --- events -----------------------------------------------------------------------------------

def _import_line(r: dict[str, Any]) -> str:
    return (f"{r['file']} ({r['format']}): read {r['read']}, imported {r['imported']}, "
            f"duplicate {r['duplicate']}, outside region {r['outside_region']}, "
            f"rejected {r['rejected']}")


@main.group()
def events() -> None:
    """Coded events: import feeds (GDELT, ICEWS, ACLED, hand-coded), list them, count them."""


@events.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "gdelt1", "gdelt2", "icews", "acled", "native"]),
              help="The files' format; auto detects it from the content.")
@output_options
@click.pass_context
def events_import(ctx: click.Context, files: tuple[Path, ...], fmt: str, as_json: bool) -> None:
    """Import event files into the store (plain, .gz or .zip), keeping the region's events.

    A FILE of - reads standard input; a pipe or FIFO is read once, whole, before importing.

    Prints read / imported / duplicate / outside-region / rejected counts per file; rejected
    rows are listed on stderr with their line and reason.
    """
    from forecast.ingest import import_files

    def each(path: Path, result) -> None:
        path = Path(one_line(str(path)))
        for rejection in result.rejections:
            click.echo(f"{path}:{rejection.line}: rejected: {rejection.reason}", err=True)
        if result.rejected > len(result.rejections):
            click.echo(f"{path}: ... and {result.rejected - len(result.rejections)} more "
                       "rejected rows", err=True)
        if fmt == "auto" and not as_json:
            click.echo(f"{path}: detected format {result.format}", err=True)

    imported, resolved = import_files(_workspace(ctx), files, fmt=fmt,  # type: ignore[arg-type]
                                      each=each)
    results = [r.as_dict() for r in imported]
    for r in resolved:
        click.echo(f"resolved: {r.line()}", err=True)
    if as_json:
        emit_json(results if len(results) > 1 else results[0])
    else:
        click.echo("\n".join(one_line(_import_line(r)) for r in results))


@events.command("fetch")
@click.argument("feed", type=click.Choice(["gdelt2"]))
@click.option("--since", type=DATE, required=True, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--until", type=DATE, help="Last day (YYYY-MM-DD), inclusive [today].")
@output_options
@click.pass_context
def events_fetch(ctx: click.Context, feed: str, since, until, as_json: bool) -> None:
    """Download a feed's files of a day range that are not imported yet, and import them.

    GDELT 2.0: the 15-minute exports of GDELT's master file list ([fetch] gdelt2_master in
    forecast.toml), each checked against the list's size and MD5. A killed fetch resumes where
    it stopped: run it again. A file that cannot be had whole is named and skipped (exit 1).
    """
    from forecast.fetch import fetch_gdelt2

    started, tty = time.monotonic(), sys.stderr.isatty() and not as_json

    def progress(done: int, total: int, problem: str | None) -> None:
        if problem:
            click.echo(("\n" if tty else "") + f"error: {problem}", err=True)
        if tty:
            left = (time.monotonic() - started) / done * (total - done)
            click.echo(f"\r{feed}: {done}/{total} files, about {_duration(left)} left   ",
                       nl=done == total, err=True)

    result = fetch_gdelt2(_workspace(ctx), since=since.date(),
                          until=until.date() if until else _today(), progress=progress)
    if as_json:
        emit_json(result.as_dict())
    else:
        events = sum(r.imported for r in result.imported)
        click.echo(f"{feed}: {result.listed} file(s) from {since:%Y-%m-%d}; "
                   f"{len(result.imported)} imported ({events} new events), {result.already} "
                   f"imported before, {len(result.failed)} failed")
    if result.unreadable_lines:
        click.echo(f"warning: {result.unreadable_lines} line(s) of the master list are not "
                   "'size md5 url' and were skipped", err=True)
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} file(s) could not be fetched whole "
                                   "(named above): run the command again to retry them")


@events.command("merge-feeds")
@click.option("--days", type=click.IntRange(0, 30), default=1, show_default=True,
              help="How many days apart the two feeds may date the same event.")
@click.option("--dry-run", is_flag=True, help="List the merges; change nothing.")
@output_options
@click.pass_context
def events_merge_feeds(ctx: click.Context, days: int, dry_run: bool, as_json: bool) -> None:
    """Fold machine-coded events (GDELT, ICEWS) into the curated ones (ACLED, hand-coded) that
    report the same happening, so that it counts once.

    The same happening: the same actors, the same CAMEO root and at most --days days apart. The
    curated event stays; the other is marked folded into it and no longer counted. Optional and
    never done by `import`: run it after importing both feeds (and again after new files).
    """
    from forecast.ingest import merge_feeds

    pairs, resolved = merge_feeds(_workspace(ctx), days=days, apply=not dry_run)
    if as_json:
        emit_json(pairs)
        return
    for p in pairs:
        click.echo(one_line(
            f"{p['date']}  {p['actor1'] or '---'}→{p['actor2'] or '---'}  {p['event_code']:<5} "
            f"{p['feed']} {p['file']}:{p['line']} → {p['into_feed']} {p['into_date']} "
            f"{p['into_code']} {p['into_file']}:{p['into_line']}"))
    for r in resolved:
        click.echo(f"resolved: {r.line()}", err=True)
    verb = "would fold" if dry_run else "folded"
    click.echo(f"{verb} {len(pairs)} machine-coded event(s) into curated ones", err=True)


@events.command("sql")
@click.option("--engine", type=click.Choice(["bigquery"]), default="bigquery", show_default=True,
              help="The warehouse: BigQuery's public GDELT 2.0 table.")
@click.option("--since", type=DATE, help="First event day (YYYY-MM-DD), inclusive.")
@click.option("--until", type=DATE, help="Last event day (YYYY-MM-DD), inclusive.")
@click.pass_context
def events_sql(ctx: click.Context, engine: str, since, until) -> None:
    """Print the query that selects the workspace region's GDELT events in a warehouse.

    Years of GDELT are 100,000 files; the warehouse holds them as one table. The query keeps the
    importer's region rule and columns: export its result tab-separated without a header row,
    then `forecast events import FILE --format gdelt2`.
    """
    from forecast.events import warehouse_sql

    click.echo(warehouse_sql(_workspace(ctx).config.region, since=since and since.date(),
                             until=until and until.date()) + ";")
    click.echo(f"-- {engine}: export the result tab-separated without a header row (bq extract "
               "--field_delimiter=tab --print_header=false), then: forecast events import FILE "
               "--format gdelt2", err=True)


@events.command("list")
@click.option("--since", type=DATE, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--until", type=DATE, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--scenario", help="Only events that meet this scenario's resolution rule.")
@click.option("--limit", type=click.IntRange(1, 10**9), default=100, show_default=True)
@output_options
@click.pass_context
def events_list(ctx: click.Context, since, until, scenario: str | None, limit: int,
                as_json: bool) -> None:
    """Stored events, by date."""
    from forecast import queries

    ws = _workspace(ctx)
    rule = None
    if scenario is not None:
        rule = _scenario(ws, scenario).resolution
        if rule is None:
            raise click.BadParameter(f"'{scenario}' is a union; list its members' events",
                                     param_hint="--scenario")
    rows = queries.events(ws, since=since and since.date(), until=until and until.date(),
                          rule=rule, limit=limit)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['date']}  {r['actor1'] or '---'}→{r['actor2'] or '---'}  "
                   f"{r['event_code']:<5} sources {r['num_sources']:<3} {r['source_url'] or ''}")
    click.echo(f"{len(rows)} event(s){' (limit reached)' if len(rows) == limit else ''}",
               err=True)


@events.command("stats")
@output_options
@click.pass_context
def events_stats(ctx: click.Context, as_json: bool) -> None:
    """Counts of stored events by week, actor pair and indicator."""
    from forecast import queries

    stats = queries.stats(_workspace(ctx))
    if as_json:
        emit_json(stats)
        return
    folded = f"; {stats['folded']} folded into another feed's" if stats["folded"] else ""
    click.echo(f"{stats['events']} events from {stats['source_rows']} source rows{folded}")
    click.echo("\nBy week (last 12):")
    for w in stats["by_week"][-12:]:
        click.echo(f"  {w['week']}  {w['events']}")
    click.echo("\nBy actor pair (top 10):")
    for p in stats["by_actor_pair"][:10]:
        click.echo(f"  {p['actor1'] or '---'}→{p['actor2'] or '---'}  {p['events']}")
    click.echo("\nBy indicator:")
    for ident, n in stats["by_indicator"].items():
        click.echo(f"  {ident}  {n}")


def _scenario(ws, scenario: str, param_hint: str = "--scenario"):
    from forecast.priors import load_priors
    from forecast.schema import did_you_mean

    scenarios = load_priors(ws.priors_dir).scenarios
    if scenario not in scenarios:
        raise click.BadParameter(f"unknown scenario '{scenario}'"
                                 + did_you_mean(scenario, scenarios)
                                 + "; known: " + ", ".join(scenarios), param_hint=param_hint)
    return scenarios[scenario]


# --- update, show, history -------------------------------------------------------------------

def _forecast_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'question':<42} {'P(yes)':>7}  {'90% interval':<15} {'no claims':>9}  status"]
    for r in rows:
        low, high = r["interval"]
        bare = "–" if r["without_claims"] is None else f"{r['without_claims']:.1%}"
        lines.append(f"{r['question']:<42} {r['probability']:>7.1%}  "
                     f"{low:>6.1%}–{high:<8.1%} {bare:>9}  {r['status']}")
    return lines


def _run_header(r: dict[str, Any]) -> str:
    d = r["diagnostics"]
    text = (f"as of {r['as_of']} (seed {r['seed']}; R-hat max {d['r_hat_max']:.3f}, "
            f"bulk ESS min {d['ess_bulk_min']:.0f}, divergences {d['divergences']})")
    if r["simulated"]:
        text += "\nSIMULATED example data"
    if r["what_if"]:
        text += "\nWHAT-IF: recorded, but not the current forecast (--what-if)"
    if not d["converged"]:
        text += "\nWARNING: published with --allow-unconverged: the fit did NOT converge"
    if r["without_claims"] is not None:
        text += ("\n'no claims': the same forecast without the document's claims (how much "
                 "rests on them)")
    return text


@main.command()
@click.option("--as-of", "as_of", type=DATE, help="Fit with events up to this day [today].")
@sampler_options()
@click.option("--allow-unconverged", is_flag=True,
              help="One fit, recorded as it is even if it fails the diagnostics gate (marked), "
                   "instead of refitting and refusing a fit that still fails.")
@click.option("--what-if", is_flag=True,
              help="Allow an as-of after today or before the data; the run is recorded as a "
                   "what-if and never becomes the current forecast.")
@output_options
@click.pass_context
def update(ctx: click.Context, as_of, draws: int, tune: int, chains: int, seed: int,
           allow_unconverged: bool, what_if: bool, as_json: bool) -> None:
    """Fit the model with the events up to a date and record every question's forecast.

    The fit must pass the gate (R-hat <= 1.01, bulk ESS >= 400, no divergences). With no new data
    and unchanged priors, the stored result is reused instead of sampling again. The run (fitted
    or reused) becomes the current forecast that show, report and submit use.
    """
    from forecast.fit import SamplerConfig
    from forecast.update import run_update

    ws = _workspace(ctx)
    today = _today()
    sampler = SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed)
    with _elapsed("fitting: compiling, then sampling", quiet=as_json):
        result = run_update(ws, as_of=as_of.date() if as_of else today, today=today,
                            sampler=sampler, allow_unconverged=allow_unconverged,
                            what_if=what_if)
    if as_json:
        emit_json({"reused": result.reused, "forecasts": result.forecasts})
        return
    if result.reused:
        click.echo("No new data and unchanged priors: reused the stored fit.", err=True)
    click.echo(_run_header(result.forecasts[0]))
    click.echo("\n".join(_forecast_lines(result.forecasts)))


@contextlib.contextmanager
def _elapsed(what: str, *, quiet: bool = False) -> Iterator[None]:
    """"<what>... N s" on stderr, redrawn every second after the first, when stderr is a terminal.

    Only the time: nutpie's progress callback (draws, divergences) made sampling 35% slower.
    """
    import threading

    if quiet or not sys.stderr.isatty():
        yield
        return
    start, stop = time.monotonic(), threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            click.echo(f"\r{what}... {time.monotonic() - start:.0f} s", nl=False, err=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if time.monotonic() - start >= 1.0:
            click.echo("", err=True)


@main.command()
@output_options
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """The latest probability of every question, with its 90% interval."""
    rows = _history_rows(ctx)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        raise NotAvailableError("no forecasts yet: run `forecast update` first")
    click.echo(_run_header(rows[0]))
    click.echo("\n".join(_forecast_lines(rows)))


@main.command()
@click.argument("question", required=False)
@output_options
@click.pass_context
def history(ctx: click.Context, question: str | None, as_json: bool) -> None:
    """Every recorded update of a question (or of every question)."""
    rows = _history_rows(ctx, question=question, every=True)
    if as_json:
        emit_json(rows)
        return
    from forecast.resolution import workspace_trail

    trail = workspace_trail(_workspace(ctx), question) if question else []
    if not rows and not trail:
        if question is not None:  # a misspelled id: say so, with a suggestion
            from forecast.priors import load_priors
            from forecast.resolution import find_question

            find_question(load_priors(_workspace(ctx).priors_dir), question)
        what = f" for '{question}'" if question else ""
        raise NotAvailableError(f"no forecasts recorded{what}: run `forecast update` first")
    for r in rows:
        low, high = r["interval"]
        flag = ("" if r["diagnostics"]["converged"] else "  UNCONVERGED") + (
            "  WHAT-IF" if r["what_if"] else "")
        click.echo(f"{r['as_of']}  {r['question']:<42} {r['probability']:>7.1%}  "
                   f"{low:>6.1%}–{high:<8.1%} {r['status']}{flag}")
    if question is not None:
        click.echo("\n".join(["Resolutions:", *(r.line() for r in trail)]) if trail
                   else "Resolutions: none (open)")


def _history_rows(ctx: click.Context, *, question: str | None = None,
                  every: bool = False) -> list[dict[str, Any]]:
    from forecast import queries

    return queries.forecast_rows(_workspace(ctx), question=question, every=every)


@main.command()
@click.argument("question", required=False)
@output_options
@click.pass_context
def explain(ctx: click.Context, question: str | None, as_json: bool) -> None:
    """Why the forecasts moved since the previous update, by cause.

    Each cause's contribution comes from refitting the model with one input changed at a time
    (changed priors, quiet weeks, new events of each indicator, new scenario events and
    resolutions); the contributions add up to the change. Takes one fit per cause.
    """
    from forecast.explain import explain as run_explain

    result = run_explain(_workspace(ctx), question)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json(result.as_dict())
        return
    start = result.previous_as_of or "the claims alone (before any event)"
    click.echo(f"From {start} to {result.as_of} ({result.method}):")
    for q in result.questions:
        if q["change"] is None:
            click.echo(f"\n{q['question']}: new, {q['latest']:.1%}")
            continue
        click.echo(f"\n{q['question']}: {q['previous']:.1%} → {q['latest']:.1%} "
                   f"({q['change'] * 100:+.1f} pts)")
        for cause, delta in q["contributions"].items():
            click.echo(f"  {delta * 100:+6.1f} pts  {cause}")
        click.echo(f"  {q['residual'] * 100:+6.1f} pts  residual (refit vs recorded)")
    if result.events:
        click.echo("\nNew events that count for a rule or an indicator (most sources first):")
        for e in result.events:
            click.echo(f"  {e['date']}  {e['actor1']}→{e['actor2']}  {e['event_code']:<5} "
                       f"sources {e['num_sources']:<3} {e['counts_for']}  {e['source_url'] or ''}")


# --- report ---------------------------------------------------------------------------------

@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Folder for report.md, report.html and the PNGs.")
@click.option("--explain", "with_explain", is_flag=True,
              help="Decompose the change since the previous update by cause (one refit each).")
@click.pass_context
def report(ctx: click.Context, out: Path, with_explain: bool) -> None:
    """Markdown + self-contained HTML + PNG report of the latest update."""
    from forecast.report import write_report

    ws = _workspace(ctx)
    path = write_report(ws, out, explain=with_explain)
    click.echo(f"Wrote {path} and {path.with_suffix('.html')} (with PNGs in {out}).")


# --- resolution, judgment, submissions, scores ------------------------------------------------

def _today() -> Any:
    import datetime as dt

    return dt.date.today()


@main.command()
@click.argument("question")
@click.argument("state", required=False, type=click.Choice(["yes", "no", "annulled"]))
@click.option("--date", "day", type=DATE,
              help="The day it resolved [yes, annulled: today (at most the deadline); "
                   "no: the deadline].")
@click.option("--note", help="Why (kept in the question's history).")
@output_options
@click.pass_context
def resolve(ctx: click.Context, question: str, state: str | None, day, note: str | None,
            as_json: bool) -> None:
    """Resolve a question by hand: yes, no or annulled; without STATE, show its resolutions.

    Events resolve questions too (YES on the first event meeting the scenario's rule, NO once the
    data cover the deadline); a resolution by hand overrides them and is kept in the history.
    """
    from forecast import resolution
    from forecast.priors import load_priors

    ws = _workspace(ctx)
    if state is None:
        q = resolution.find_question(load_priors(ws.priors_dir), question)
        rows = resolution.workspace_trail(ws, q.id)
        if as_json:
            emit_json([r.as_dict() for r in rows])
        else:
            _, evidence = resolution.workspace_verdict(ws, q, today=_today())
            click.echo("\n".join(r.line() for r in rows) or f"{q.id}: open ({evidence})")
        return
    row, warnings = resolution.resolve(ws, question, state, day=day and day.date(), note=note,
                                       today=_today())
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        emit_json(row.as_dict())
    else:
        click.echo(row.line() + "\nThe next `forecast update` uses it.")


@main.command()
@click.argument("question")
@click.argument("probability", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--note", help="Your reasoning (kept in the history).")
@output_options
@click.pass_context
def judge(ctx: click.Context, question: str, probability: float, note: str | None,
          as_json: bool) -> None:
    """Record your own probability for a question (strictly between 0 and 1).

    `forecast submit` pools it with the model's ([aggregation] in forecast.toml: weighted mean
    of log-odds, extremized by a >= 1).
    """
    from forecast import judgment

    row = judgment.judge(_workspace(ctx), question, probability, note=note)
    if as_json:
        emit_json(row.as_dict())
    else:
        click.echo(f"{row.question}: your judgment {probability:.1%} is recorded.")


@main.command()
@click.option("--platform", required=True,
              type=click.Choice(["metaculus", "forecastbench", "csv"]),
              help="The payload's format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the payload to FILE (default: print it).")
@click.option("--post", is_flag=True, help="Send it to the platform (Metaculus; token from the "
              "variable named by token_env, METACULUS_TOKEN by default).")
@click.option("--use", "source", type=click.Choice(["pool", "model", "judgment"]),
              default="pool", show_default=True,
              help="Submit the pool of model and judgment, or either alone.")
@click.option("--force", is_flag=True,
              help="Submit even a forecast that failed the diagnostics gate or is too old.")
@click.pass_context
def submit(ctx: click.Context, platform: str, out: Path | None, post: bool, source: str,
           force: bool) -> None:
    """Tournament submission of the latest update's open questions.

    The payload is validated against the platform's rules before anything is written or sent;
    every submitted row is recorded in the history.
    """
    from forecast import submission

    if post and platform != "metaculus":
        raise click.UsageError("--post sends to Metaculus only; ForecastBench takes forecast sets "
                               "by upload, so write the file with --out")
    submission.submit(_workspace(ctx), platform, source=source,  # type: ignore[arg-type]
                      force=force, today=_today(), out=out, send=post,
                      stdout=lambda text: click.echo(text, nl=False),
                      stderr=lambda line: click.echo(line, err=True))


@main.command()
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the reliability diagram as a PNG.")
@output_options
@click.pass_context
def score(ctx: click.Context, plot: Path | None, as_json: bool) -> None:
    """Brier, log and baseline scores of the model on resolved questions, and calibration.

    Only questions whose deadline has passed count (earlier, YES resolutions would bias the
    score), each with its last forecast made while open and its time average over its open life.
    """
    from forecast import evaluate, scoring

    result = evaluate.score(_workspace(ctx, plot), today=_today())
    if plot is not None:
        scoring.plot_reliability(result.calibration, plot,
                                 title="Reliability of the model's resolved forecasts")
    if as_json:
        emit_json(result.as_dict())
        return
    _score_lines(result.overall, "questions")
    for q in result.questions:
        click.echo(f"  {q['question']:<42} {q['probability']:>6.1%} as of {q['as_of']} -> "
                   f"{'YES' if q['outcome'] else 'NO '}  Brier {q['brier']:.3f}  "
                   f"log {q['log']:.3f}  baseline {q['baseline']:+.1f}")
    bins = [b for b in result.calibration if b["n"]]
    if bins:
        click.echo("Calibration (forecast bin: questions, mean forecast, observed frequency):")
    for b in bins:
        click.echo(f"  {b['low']:>4.0%}–{b['high']:<4.0%} {b['n']:>4}  {b['mean_forecast']:>6.1%}"
                   f"  {b['observed']:>6.1%}")
    if result.not_scored:
        click.echo(f"Not scored yet: {len(result.not_scored)} question(s) "
                   f"({_reasons(result.not_scored)}).", err=True)


def _reasons(rows: list[dict[str, Any]]) -> str:
    from collections import Counter

    counts = Counter(r["reason"] for r in rows)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def _score_lines(overall: dict[str, Any], what: str, label: str = "") -> None:
    if not overall["n"]:
        click.echo(f"{label}no resolved {what} to score yet")
        return
    click.echo(f"{label}{overall['n']} {what}: Brier {overall['brier']:.3f}, "
               f"log {overall['log']:.3f}, baseline {overall['baseline']:+.1f}")
    averaged = overall["time_averaged"]
    if averaged["n"]:
        click.echo(f"{' ' * len(label)}time-averaged over their open life ({averaged['n']}): "
                   f"Brier {averaged['brier']:.3f}, log {averaged['log']:.3f}, "
                   f"baseline {averaged['baseline']:+.1f}")


@main.command()
@click.option("--start", type=DATE, help="First as-of day [the first with a full --window].")
@click.option("--end", type=DATE, help="Last as-of day [the last whose questions have resolved].")
@click.option("--step", default="4w", show_default=True, help="Weeks between as-of days (Nw).")
@click.option("--horizons", default="4,13,26", show_default=True,
              help="The rolling questions' horizons, in weeks.")
@click.option("--window", type=click.IntRange(8, MAX_WEEKS), default=52, show_default=True,
              help="Weeks of history each fit sees.")
@sampler_options()
@click.option("--allow-unconverged", is_flag=True,
              help="Score steps whose fit fails the diagnostics gate (counted) instead of "
                   "refitting and then dropping them.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the model's reliability diagram as a PNG.")
@output_options
@click.pass_context
def backtest(ctx: click.Context, start, end, step: str, horizons: str, window: int, draws: int,
             tune: int, chains: int, seed: int, allow_unconverged: bool, plot: Path | None,
             as_json: bool) -> None:
    """Replay the event history and score the forecasts it would have made.

    At each step the model is fitted to the events known then (with the update's sampler
    settings) and asked whether each scenario happens in the next h weeks; later events resolve
    these questions. The claims alone and each scenario's base rate are scored beside it, in the
    same run. A step whose fit fails the gate is refitted as an update's is, then dropped for
    every method and counted.
    """
    from forecast import scoring
    from forecast.evaluate import GAP_WEEKS, backtest_workspace
    from forecast.fit import SamplerConfig

    step_weeks = _weeks(step, "--step")
    horizon_weeks = tuple(_weeks(h.strip() + "w", "--horizons") for h in horizons.split(","))

    def planned(bp) -> None:
        if start is None and bp.continuous_from > bp.data_start:
            click.echo(f"The data are continuous from {bp.continuous_from} (before it, a gap of "
                       f"{GAP_WEEKS} weeks or more without events; --start to go earlier).",
                       err=True)
        click.echo(f"Backtest: {len(bp.steps)} step(s) from {bp.steps[0]} to {bp.steps[-1]} "
                   "(one fit each)...", err=True)

    started, fitted = time.monotonic(), []

    def resumed(done: int, total: int) -> None:
        click.echo(f"  resuming: {done} of {total} steps were finished by an earlier run",
                   err=True)

    def progress(done: int, total: int, diagnostics) -> None:
        fitted.append(time.monotonic())
        flag = "" if diagnostics.converged else (
            "  (did not pass the gate: scored)" if allow_unconverged
            else "  (did not pass the gate, refits included: dropped)")
        each = (fitted[-1] - started) / len(fitted)
        eta = f", about {_duration(each * (total - done))} left" if done < total else ""
        click.echo(f"  step {done}/{total}{eta}{flag}", err=True)

    result = backtest_workspace(
        _workspace(ctx, plot), start=start and start.date(), end=end and end.date(),
        step_weeks=step_weeks, horizons=horizon_weeks, window=window,
        sampler=SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed),
        allow_unconverged=allow_unconverged, planned=planned, progress=progress,
        resumed=resumed)
    if plot is not None:
        scoring.plot_reliability(result.methods["model"]["calibration"], plot,
                                 title=f"Backtest reliability ({len(result.forecasts)} questions)")
    if as_json:
        emit_json(result.as_dict())
        return
    bp = result.plan
    click.echo(f"{len(result.forecasts)} rolling questions scored "
               f"(horizons {', '.join(map(str, bp.horizons))} weeks; "
               f"window {bp.window} weeks):")
    for method, label in (("model", "model        "), ("claims_only", "claims only  "),
                          ("base_rate", "base rate    ")):
        _score_lines(result.methods[method]["overall"], "questions", label)
    click.echo("Brier skill of the model: " + ", ".join(
        f"{v:+.1%} vs {k.replace('_', ' ')}" for k, v in result.brier_skill.items()
        if v is not None))
    steps = len(bp.steps)
    if result.dropped:
        click.echo(f"warning: {len(result.dropped)} of {steps} steps dropped (their fit failed "
                   f"the diagnostics gate twice): {', '.join(result.dropped)}", err=True)
    if result.unconverged:
        click.echo(f"warning: {result.unconverged} of {steps} steps scored although their fit "
                   "failed the diagnostics gate (--allow-unconverged)", err=True)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{round(seconds)} s" if seconds < 90 else (
        f"{minutes} min" if minutes < 90 else f"{minutes / 60:.1f} h")


def _weeks(text: str, param: str) -> int:
    if not (text.endswith("w") and text[:-1].isdigit() and 0 < int(text[:-1]) <= MAX_WEEKS):
        raise click.BadParameter(f"expected a number of weeks from 1w to {MAX_WEEKS}w, like 4w, "
                                 f"got {text!r}", param_hint=param)
    return int(text[:-1])


# --- recovery ---------------------------------------------------------------------------------

@main.command()
@click.option("--repair", is_flag=True,
              help="Repair what can be repaired: damaged files are moved to broken/, never "
                   "deleted; the store is restored from its backup.")
@output_options
@click.pass_context
def doctor(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Check the workspace: the store and its backup read whole, every posterior opens, no
    files of killed commands are left.

    Exits with status 1 when something is damaged and not repaired.
    """
    from dataclasses import asdict

    from forecast.doctor import doctor as run_doctor

    ws = _workspace(ctx)
    findings = run_doctor(ws, repair=repair)
    damaged = [f for f in findings if f.state == "damaged"]
    if as_json:
        emit_json({"workspace": str(ws.root), "repair": repair, "ok": not damaged,
                   "findings": [asdict(f) for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.path}: {f.state}: {f.problem}\n    {f.remedy}")
        if not findings:
            click.echo(f"{ws.root}: no problems found.")
    if damaged:
        raise click.ClickException(f"{len(damaged)} problem(s) found: `forecast doctor --repair` "
                                   "repairs them")


def _workspace_after(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj["workspace"] = value


def _accept_workspace_after(group: click.Group) -> None:
    """`forecast show --workspace DIR` as well as `forecast --workspace DIR show`: every command
    takes the option too (given after the command, it wins)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_workspace_after(command)
        else:
            command.params.append(click.Option(
                ["--workspace"], type=click.Path(file_okay=False, path_type=Path),
                expose_value=False, callback=_workspace_after,
                help="Workspace folder (also accepted before the command)."))


_accept_workspace_after(main)

if __name__ == "__main__":
    sys.exit(main())
