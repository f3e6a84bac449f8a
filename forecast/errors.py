"""The project's exceptions: one small hierarchy, each message a single line for the user."""

import errno


class ForecastError(Exception):
    """Base of every error the CLI reports as a one-line `Error:` with exit status 1."""


class WorkspaceError(ForecastError):
    """The workspace is missing, malformed or busy."""


class WorkspaceBusyError(WorkspaceError):
    """Another command holds the workspace's write lock for longer than we wait."""


class SpecError(ForecastError):
    """A claims, scenario or workspace TOML file is malformed; lists every problem found."""

    def __init__(self, path: object, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{self.path}: " + "; ".join(problems))


class PriorSpecError(SpecError):
    """A claims file is malformed."""


class ScenarioSpecError(SpecError):
    """A scenario file is malformed."""


class ConfigError(SpecError):
    """The workspace's forecast.toml is malformed."""


class PriorConflictError(ForecastError):
    """Claims contradict each other (e.g. a probability that falls as the horizon grows)."""


class EventFormatError(ForecastError):
    """An event file is not of the declared (or any known) format; nothing was imported."""


class ConvergenceError(ForecastError):
    """A fit failed the diagnostics gate (R-hat, ESS, divergences)."""


class NotAvailableError(ForecastError):
    """What a command needs is not there yet (no forecasts, no events)."""


class SubmissionError(ForecastError):
    """A tournament payload is invalid, a forecast may not be submitted, or posting failed."""


class QuestionError(ForecastError):
    """An unknown question, or a resolution or judgment that does not fit the question."""


class AsOfError(ForecastError):
    """An as-of date no forecast can honestly be made at: in the future, or before the data."""


class OutputError(ForecastError):
    """An output path (``--out``, ``--plot``) that may not or cannot be written."""


class StoreDamagedError(WorkspaceError):
    """The event store file cannot be read whole (truncated, overwritten, or rows lost)."""


class PosteriorError(WorkspaceError):
    """A posterior file is missing or cannot be read."""


def one_line(text: str) -> str:
    """`text` with its control characters escaped (a file name holding a line break or a
    terminal escape stays on the line, as text)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_line(exc: BaseException) -> str:
    """The first line of another library's error message, to quote in one of ours."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


#: What to do about the file system's refusals.
OS_ADVICE = {errno.EROFS: "commands that write need a writable workspace or folder: copy it "
                          "somewhere writable",
             errno.ENOSPC: "the disk is full; free some space and run the command again",
             errno.EDQUOT: "your disk quota is used up; free some space and run the command "
                           "again",
             errno.EACCES: "you may not write there; check the permissions",
             errno.EPERM: "you may not write there; check the permissions",
             errno.ELOOP: "symbolic links loop there; remove the link",
             errno.ENOENT: "check the path"}


def os_error_line(exc: OSError) -> str:
    """An `OSError` as one line: the path, the system's reason and what to do."""
    path = exc.filename if exc.filename is not None else "a file"
    advice = OS_ADVICE.get(exc.errno or 0)
    return f"{path}: {exc.strerror or first_line(exc)}" + (f"; {advice}" if advice else "")
