"""Settings: probe's own (``[tool.probe]`` in pyproject.toml, or probe.toml) and coverage.py's
(.coveragerc, setup.cfg, tox.ini, ``[tool.coverage.*]`` in pyproject.toml), so that a project
that measures with coverage.py gets the same run and the same numbers from probe, unchanged.

Where a setting comes from, highest first: the command line; probe.toml; ``[tool.probe]`` in
pyproject.toml; coverage.py's configuration file, found as coverage.py finds it
($COVERAGE_RCFILE, else the first of .coveragerc, setup.cfg, tox.ini and pyproject.toml that
has coverage settings); probe's defaults, which are coverage.py's. probe's own tables take
the same names as coverage.py's settings, without sections::

    [tool.probe]
    branch = true
    source = ["src"]
    fail_under = 90

Read with tomllib and configparser (both in the standard library): importing coverage.py to
read its files would cost a run more than the reading does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from probe.errors import UsageError

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

# coverage.py's defaults (coverage/config.py, 7.x): what it excludes with no configuration,
# and which lines are partial branches by choice.
DEFAULT_EXCLUDE = (
    r"#\s*(pragma|PRAGMA)[:\s]?\s*(no|NO)\s*(cover|COVER)",
    r"^\s*(((async )?def .*?)?[\])]+(\s*->.*?)?:\s*)?\.\.\.\s*(#|$)",
    r"^\s*if (typing\.)?TYPE_CHECKING:",
)
DEFAULT_PARTIAL = (r"#\s*(pragma|PRAGMA)[:\s]?\s*(no|NO)\s*(branch|BRANCH)",)
SORTS = ("name", "stmts", "miss", "branch", "brpart", "cover")
# what a report shows (the coverage analysis's options); the rest say what a run measures
REPORT_OPTIONS = (
    "fail_under", "show_missing", "skip_covered", "skip_empty", "precision", "sort",
    "exclude_lines", "exclude_also", "partial_branches",
)  # fmt: skip

# name -> (coverage.py's section, kind, default); what each does: docs/configuration.md
SETTINGS: dict[str, tuple[str, str, Any]] = {
    "branch": ("run", "bool", False),
    "source": ("run", "list", ()),
    "include": ("run", "list", ()),
    "omit": ("run", "list", ()),
    "parallel": ("run", "bool", False),
    "exclude_lines": ("report", "regexes", DEFAULT_EXCLUDE),
    "exclude_also": ("report", "regexes", ()),
    "partial_branches": ("report", "regexes", DEFAULT_PARTIAL),
    "fail_under": ("report", "float", 0.0),
    "show_missing": ("report", "bool", False),
    "skip_covered": ("report", "bool", False),
    "skip_empty": ("report", "bool", False),
    "precision": ("report", "int", 0),
    "sort": ("report", "str", "name"),
}  # fmt: skip


class Setting:
    """A value, and where it came from: "default", "command line", or the file and table it
    was read from. (Not a dataclass or NamedTuple: see probe.probes on why.)"""

    __slots__ = ("value", "origin")

    def __init__(self, value: Any, origin: str) -> None:
        self.value, self.origin = value, origin


class Settings(Mapping):  # of str to Any (typing is not imported at run time)
    """The settings in force, each with where it came from; read like a dict of values."""

    def __init__(self, settings: dict[str, Setting]) -> None:
        self._settings = settings

    def __getitem__(self, name: str) -> Any:
        return self._settings[name].value

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)

    def origin(self, name: str) -> str:
        return self._settings[name].origin

    def with_options(self, given: Mapping[str, Any]) -> Settings:
        """These settings overridden by options given on the command line (None: not given)."""
        merged = dict(self._settings)
        for name, value in given.items():
            if value is None or value == () or value == []:
                continue
            merged[name] = Setting(_convert(name, value, "the command line"), "command line")
        return Settings(merged)

    def report_options(self) -> dict[str, Any]:
        """The report settings that differ from the defaults, as analysis options."""
        return {name: self[name] for name in REPORT_OPTIONS if self[name] != SETTINGS[name][2]}

    def exclusions(self) -> tuple[str, ...]:
        """Every regex whose matching lines are excluded: exclude_lines, then exclude_also."""
        return tuple(self["exclude_lines"]) + tuple(self["exclude_also"])


def load(directory: str | None = None) -> Settings:
    """The settings of the project in ``directory`` (the working directory by default)."""
    where = directory or os.getcwd()
    found: dict[str, Setting] = {
        name: Setting(default, "default") for name, (_, _, default) in SETTINGS.items()
    }
    for origin, values in reversed(_sources(where)):  # lowest first: the higher overwrite
        for name, value in values.items():
            found[name] = Setting(_convert(name, value, origin), origin)
    return Settings(found)


def _sources(where: str) -> list[tuple[str, dict[str, Any]]]:
    """The files that set something, highest first, each (origin, {name: raw value})."""
    out: list[tuple[str, dict[str, Any]]] = []
    own = os.path.join(where, "probe.toml")
    if os.path.isfile(own):
        table = _toml(own)
        out.append(("probe.toml", _own(table.get("tool", {}).get("probe", table), "probe.toml")))
    pyproject = os.path.join(where, "pyproject.toml")
    data = _toml(pyproject) if os.path.isfile(pyproject) else {}
    tool = data.get("tool", {})
    if "probe" in tool:
        out.append(("pyproject.toml [tool.probe]", _own(tool["probe"], "[tool.probe]")))
    coverage = _coverage_file(where, tool)
    if coverage is not None:
        out.append(coverage)
    return out


def _own(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: not a table of settings")
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise UsageError(
            f"{where}: no setting {', '.join(unknown)} (settings: {', '.join(SETTINGS)})"
        )
    return dict(table)


def _coverage_file(where: str, tool: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """coverage.py's settings, from the file coverage.py would read."""
    chosen = os.environ.get("COVERAGE_RCFILE")
    candidates = [chosen] if chosen else [".coveragerc", "setup.cfg", "tox.ini", "pyproject.toml"]
    for name in candidates:
        path = name if os.path.isabs(name) else os.path.join(where, name)
        if not os.path.isfile(path):
            if chosen:
                raise UsageError(f"COVERAGE_RCFILE names {chosen}, which doesn't exist")
            continue
        if name.endswith(".toml"):
            # the project's pyproject.toml is read already; another .toml is read here
            tables = tool if name == "pyproject.toml" else _toml(path).get("tool", {})
            sections = tables.get("coverage")
            if not sections:
                continue
            label = f"{os.path.basename(path)} [tool.coverage]"
            return label, _pick({s: v for s, v in sections.items() if isinstance(v, dict)})
        prefixed = os.path.basename(path) in ("setup.cfg", "tox.ini")
        ini = _ini(path, prefixed)
        if ini is None:
            continue
        return os.path.basename(path), _pick(ini)
    return None


def _pick(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings probe has a meaning for, from coverage.py's sections (run, report)."""
    return {
        name: sections[section][name]
        for name, (section, _, _) in SETTINGS.items()
        if name in sections.get(section, {})
    }


def _ini(path: str, prefixed: bool) -> dict[str, dict[str, Any]] | None:
    """coverage.py's sections of an ini file ([run], or [coverage:run] in setup.cfg and
    tox.ini); None when it has none. Values stay text, converted as coverage.py does."""
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise UsageError(f"{os.path.basename(path)}: {e.message.splitlines()[0]}") from None
    prefix = "coverage:" if prefixed else ""
    sections = {
        s.removeprefix(prefix): dict(parser.items(s))
        for s in parser.sections()
        if s.startswith(prefix)
    }
    if prefixed and not sections:
        return None
    return {s: {k: _expand(v) for k, v in items.items()} for s, items in sections.items()}


def _expand(text: str) -> str:
    """Environment variables in a value: $VAR, ${VAR}, ${VAR-default}, as coverage.py."""

    def one(m: re.Match[str]) -> str:
        name = m.group("name") or m.group("braced")
        if name is None:
            return "$"
        value = os.environ.get(name)
        return value if value is not None else (m.group("default") or "")

    pattern = r"\$(?:(?P<name>\w+)|\{(?P<braced>\w+)(?:-(?P<default>[^}]*))?\}|\$)"
    return re.sub(pattern, one, text)


def _toml(path: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{os.path.basename(path)}: {e}") from None
    except OSError as e:
        raise UsageError(f"can't read {path}: {e.strerror}") from None


def _convert(name: str, value: Any, origin: str) -> Any:
    """A setting's value of its kind: TOML gives types, ini files and options give text."""
    kind = SETTINGS[name][1]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind in ("list", "regexes"):
            items = value if isinstance(value, list | tuple) else _split(str(value), kind)
            items = tuple(str(v).strip() for v in items if str(v).strip())
            for item in items if kind == "regexes" else ():
                try:
                    re.compile(item)
                except re.error as e:
                    raise UsageError(f"{origin}: {name}: bad regex {item!r}: {e}") from None
            return items
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
        text = str(value).strip()
        if name == "sort" and text.lower().lstrip("-") not in SORTS:
            raise ValueError(f"{text} (one of {', '.join(SORTS)}, - for descending)")
        return text.lower()
    except (TypeError, ValueError) as e:
        raise UsageError(f"{origin}: {name}: not a {kind}: {e}") from None


def _split(text: str, kind: str) -> list[str]:
    """An ini list: one item a line; file lists may also be comma-separated (coverage.py's
    getlist), regexes never are (a comma is part of a regex)."""
    lines = text.splitlines()
    return lines if kind == "regexes" else [p for ln in lines for p in ln.split(",")]


def describe(settings: Settings) -> str:
    """The settings in force, one a line, with where each came from: `probe config`."""
    rows = []
    for name in SETTINGS:
        value = settings[name]
        shown = ", ".join(value) if isinstance(value, tuple) else str(value).lower()
        if isinstance(value, float):
            shown = f"{value:g}"
        rows.append((name, shown or "(none)", settings.origin(name)))
    width = max(len(n) for n, _, _ in rows)
    return "\n".join(f"{n.ljust(width)}  {v}   [{o}]" for n, v, o in rows)
