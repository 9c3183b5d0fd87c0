"""Time zones as people pick them: those of the firm's country first, then every other.

Countries come from the IANA database's own tables (``zone.tab``, ``iso3166.tab``), read from the
``tzdata`` package so the list is the same on every machine.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from portal_app.services.validation import TIMEZONES


def _table(name: str) -> list[list[str]]:
    text = resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def _countries() -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """(zones by country code in the table's order, country of each zone, country names)."""
    entries: dict[str, list[tuple[bool, str]]] = {}
    country_of: dict[str, str] = {}
    for code, _coordinates, zone, *comment in _table("zone.tab"):
        # "Eastern (most areas)", "Pacific" are the zones most people live in; "Eastern - KY
        # (Wayne)" is a part of a state: those come after
        entries.setdefault(code, []).append((" - " in (comment[0] if comment else ""), zone))
        country_of.setdefault(zone, code)
    zones = {
        code: [zone for _part, zone in sorted(rows, key=lambda row: row[0])]
        for code, rows in entries.items()
    }
    names = {code: name for code, name, *_rest in _table("iso3166.tab")}
    return zones, country_of, names


def label(zone: str) -> str:
    return zone.replace("_", " ")


def grouped_choices(home_zone: str | None) -> dict[str, list[tuple[str, str]]] | list[tuple[str, str]]:
    """Choices for a select: an optgroup with the zones of ``home_zone``'s country (the zones of
    whole regions first, then those of parts of a state), then all zones. Without a country: all."""
    zones, country_of, names = _countries()
    everything = [(tz, label(tz)) for tz in TIMEZONES]
    code = country_of.get(home_zone or "")
    if code is None:
        return everything
    home = [(tz, label(tz)) for tz in zones[code] if tz in set(TIMEZONES)]
    return {names.get(code, code): home, "": everything}
