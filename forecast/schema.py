"""Reading TOML specs into typed objects: unknown keys refused with a hint, every problem kept.

A `Table` wraps one TOML table and the list of problems of the whole file. Each accessor returns
the value when it is valid and records a problem (with the key's dotted path) when it is not, so a
loader reads the whole file, then raises one error that lists everything wrong at once.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forecast.errors import SpecError

#: A CAMEO country (or actor group) code, as every spec and importer checks it.
COUNTRY_CODE = re.compile(r"[A-Z]{3}")
#: A CAMEO event code: 2–4 digits whose two-digit root is 01–20 ("19", "042", "1663").
EVENT_CODE_PATTERN = "(0[1-9]|1[0-9]|20)[0-9]{0,2}"
EVENT_CODE = re.compile(EVENT_CODE_PATTERN)
EVENT_CODE_RULE = "2–4 digits, root 01–20"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def read_toml(path: Path, error: type[SpecError]) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into `error` naming the file.

    A UTF-8 byte-order mark (as Windows editors write) is allowed.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
        return tomllib.loads(text)
    except OSError as exc:
        raise error(path, [f"cannot read file ({exc.strerror or exc})"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise error(path, [f"not UTF-8 text (byte {exc.object[exc.start]:#04x} on line {line})"]
                    ) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(path, [f"invalid TOML: {exc}"]) from None
    except RecursionError:
        raise error(path, ["invalid TOML: arrays or tables nested too deeply"]) from None
    except ValueError:  # tomllib's int(): a decimal integer beyond Python's 4300-digit limit
        raise error(path, ["invalid TOML: an integer too long to read"]) from None


def inside(root: Path, path: Path) -> Path | None:
    """`path` resolved (following symlinks) if it lies inside `root`, else None.

    A path that cannot be resolved (a NUL byte, a symlink loop) is not inside.
    """
    try:
        resolved = path.resolve()
        return resolved if resolved.is_relative_to(root.resolve()) else None
    except (OSError, ValueError, RuntimeError):
        return None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Table:
    """One TOML table under a dotted path, recording problems into a shared list."""

    def __init__(self, data: Any, where: str, problems: list[str], allowed: Iterable[str]):
        self.where = where
        self.problems = problems
        self.allowed = tuple(allowed)
        if not isinstance(data, dict):
            self.data: dict[str, Any] = {}
            self.problem("", f"expected a table, got {type(data).__name__}")
            return
        self.data = data
        for key in data:
            if key not in self.allowed:
                self.problem(key, "unknown key" + did_you_mean(key, self.allowed))

    def path(self, key: str) -> str:
        if key and not _BARE_KEY.fullmatch(key):
            key = json.dumps(key)  # a quoted key, on one line whatever it holds
        return f"{self.where}.{key}" if self.where and key else (self.where or key)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True,
            what: str | None = None) -> Any:
        """The value at `key` if it is of `kind`; else None and a recorded problem."""
        if key not in self.data:
            if required:
                self.problem(key, "missing")
            return None
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python, but `true` is never a valid number in a spec
        if isinstance(value, bool) and bool not in kinds:
            value_ok = False
        else:
            value_ok = isinstance(value, kinds)
        if not value_ok:
            self.problem(key, f"expected {what or _kind_name(kinds)}, got {show_value(value)}")
            return None
        return value

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self.get(key, str, required=required, what="a string")
        if value is not None and not value.strip():
            self.problem(key, "must not be empty")
            return None
        return value

    def number(self, key: str, *, required: bool = True) -> float | None:
        value = self.get(key, (int, float), required=required, what="a number")
        try:
            return None if value is None else float(value)
        except OverflowError:  # an integer beyond any float
            self.problem(key, f"expected a number, got {show_value(value)}")
            return None

    def date(self, key: str, *, required: bool = True) -> dt.date | None:
        value = self.get(key, dt.date, required=required, what="a date (YYYY-MM-DD, unquoted)")
        if isinstance(value, dt.datetime):
            return value.date()
        return value

    def strings(self, key: str, *, required: bool = True) -> list[str] | None:
        value = self.get(key, list, required=required, what="a list of strings")
        if value is None:
            return None
        if not all(isinstance(v, str) and v for v in value):
            self.problem(key, f"expected a list of non-empty strings, got {show_value(value)}")
            return None
        return value

    def tables(self, key: str, allowed: Iterable[str], *, required: bool = True) -> list[Table]:
        """The array of tables at `key`, each wrapped as `key[i]`."""
        value = self.get(key, list, required=required, what="an array of tables ([[...]])")
        if value is None:
            return []
        return [Table(item, f"{self.path(key)}[{i}]", self.problems, allowed)
                for i, item in enumerate(value)]

    def table(self, key: str, allowed: Iterable[str], *, required: bool = True) -> Table | None:
        if key not in self.data:
            if required:
                self.problem(key, "missing")
            return None
        return Table(self.data[key], self.path(key), self.problems, allowed)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list",
             dict: "a table", bool: "true or false", dt.date: "a date"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def show_value(value: Any) -> str:
    """A value for an error message, on one line and cut to 40 characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print (Python's 4300-digit limit)
        text = "<an integer too long to show>"
    return text if len(text) <= 40 else text[:37] + "..."
