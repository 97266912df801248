"""Public holidays for the timetable, from the ``holidays`` package (vacanza/holidays).

A region is a country (ISO 3166-1 alpha-2, such as ``US``) with an optional
subdivision (ISO 3166-2 code after a dash, such as ``US-CA``). Holiday names are
in US English where the package has them, in the country's language otherwise.
Each (region, year) is computed once per process: the timetable asks about the
same few hundred days over and over while importing a file.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

__all__ = ["Region", "check_country", "holiday_name", "parse_region"]

Region = tuple[str, str | None]  # (country, subdivision or None)


@lru_cache(maxsize=1)
def _supported() -> dict[str, frozenset[str]]:
    """Two-letter country codes the package knows, each with its subdivision codes."""
    return {
        code: frozenset(subdivisions)
        for code, subdivisions in holidays.list_supported_countries().items()
        if len(code) == 2 and code.isalpha() and code.isupper()
    }


def check_country(code: str) -> str:
    """``code`` as an upper-case ISO 3166-1 alpha-2 code with holidays data.

    Raises :class:`ValueError` with a sentence for people when it is not one.
    """
    cleaned = code.strip().upper()
    if cleaned not in _supported():
        raise ValueError(
            f"unknown country code {code!r} (use an ISO 3166-1 alpha-2 code such as US or DE)"
        )
    return cleaned


def parse_region(text: str) -> Region:
    """``"US"`` -> ("US", None); ``"US-CA"`` -> ("US", "CA"). Raises :class:`ValueError`."""
    country, _, subdivision = text.strip().partition("-")
    code = check_country(country)
    if not subdivision:
        return code, None
    sub = subdivision.strip().upper()
    known = _supported()[code]
    if sub not in known:
        examples = ", ".join(f"{code}-{s}" for s in sorted(known)[:3])
        hint = f" (e.g. {examples})" if examples else f" ({code} has no subdivisions)"
        raise ValueError(f"unknown subdivision {text.strip()!r}{hint}")
    return code, sub


@lru_cache(maxsize=4096)
def _year(region: Region, year: int) -> dict[date, str]:
    country, subdivision = region
    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    if "en_US" in getattr(table, "supported_languages", ()):
        table = holidays.country_holidays(country, subdiv=subdivision, years=year, language="en_US")
    return {day: name for day, name in table.items() if day.year == year}


def holiday_name(region: Region | None, day: date) -> str | None:
    """The name of the public holiday on ``day`` in ``region``, or None on a normal day."""
    if region is None:
        return None
    return _year(region, day.year).get(day)
