"""Just enough CSS for preflight: declarations, the rules of a ``<style>`` block, colours.

Premailer has already inlined every plain rule by the time these run, so what
is left in ``<style>`` is a handful of ``@media`` blocks; a brace walker reads
them without pulling in a full CSS parser.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Declaration",
    "Rule",
    "contrast_ratio",
    "declarations",
    "parse_color",
    "rules",
]

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# CSS Level 1 keywords plus the greys people type; anything else is left unjudged.
_NAMED = {
    "black": "000000",
    "white": "ffffff",
    "gray": "808080",
    "grey": "808080",
    "silver": "c0c0c0",
    "lightgray": "d3d3d3",
    "lightgrey": "d3d3d3",
    "darkgray": "a9a9a9",
    "darkgrey": "a9a9a9",
    "gainsboro": "dcdcdc",
    "whitesmoke": "f5f5f5",
    "red": "ff0000",
    "maroon": "800000",
    "yellow": "ffff00",
    "olive": "808000",
    "lime": "00ff00",
    "green": "008000",
    "aqua": "00ffff",
    "teal": "008080",
    "blue": "0000ff",
    "navy": "000080",
    "fuchsia": "ff00ff",
    "purple": "800080",
    "orange": "ffa500",
}


@dataclass(frozen=True)
class Declaration:
    """``property: value`` (property lower-cased, ``!important`` split off)."""

    prop: str
    value: str
    important: bool = False


@dataclass(frozen=True)
class Rule:
    """A rule of a style sheet, with the at-rule preludes (``@media ...``) it sits in."""

    selector: str
    declarations: tuple[Declaration, ...]
    at_rules: tuple[str, ...] = ()


def _split_outside_parens(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def declarations(text: str) -> list[Declaration]:
    """The declarations of a ``style`` attribute or a rule body, in order (junk skipped)."""
    found: list[Declaration] = []
    for chunk in _split_outside_parens(_COMMENT.sub("", text), ";"):
        prop, colon, value = chunk.partition(":")
        if not colon or not prop.strip():
            continue
        value = value.strip()
        important = bool(re.search(r"!\s*important\s*$", value, re.I))
        if important:
            value = re.sub(r"\s*!\s*important\s*$", "", value, flags=re.I)
        found.append(Declaration(prop.strip().lower(), value, important))
    return found


def rules(sheet: str) -> Iterator[Rule]:
    """Every rule of a style sheet, nested at-rules flattened into ``Rule.at_rules``."""
    yield from _rules(_COMMENT.sub("", sheet), ())


def _rules(text: str, at_rules: tuple[str, ...]) -> Iterator[Rule]:
    position = 0
    while True:
        brace = text.find("{", position)
        if brace < 0:
            return
        prelude = text[position:brace].strip()
        depth, end = 1, brace + 1
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        body = text[brace + 1 : end - 1]
        # Statements such as @import end with ";" before the next block starts.
        prelude = prelude.rsplit(";", 1)[-1].strip()
        if prelude.startswith("@") and "{" in body:
            yield from _rules(body, (*at_rules, prelude))
        else:
            yield Rule(prelude, tuple(declarations(body)), at_rules)
        position = end


def parse_color(value: str) -> tuple[float, float, float] | None:
    """An opaque colour as (r, g, b) in 0..1, or None when it is not one we can judge."""
    value = value.strip().lower()
    hexa = _NAMED.get(value)
    if hexa is None:
        match = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value)
        if match:
            hexa = match.group(1)
            if len(hexa) == 3:
                hexa = "".join(c * 2 for c in hexa)
    if hexa is not None:
        return tuple(int(hexa[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]
    match = re.fullmatch(
        r"rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)\s*(?:[,/]\s*([\d.]+%?)\s*)?\)", value
    )
    if match:
        if _translucent(match.group(4)):
            return None  # the result depends on what is under it
        return tuple(min(int(match.group(i)), 255) / 255 for i in (1, 2, 3))  # type: ignore[return-value]
    match = _HSL.fullmatch(value)
    if match:
        if _translucent(match.group(4)):
            return None
        hue, saturation, lightness = (float(match.group(i)) for i in (1, 2, 3))
        # CSS Color 4 hsl(): hue in degrees, saturation and lightness in percent.
        return colorsys.hls_to_rgb(
            hue / 360 % 1, min(lightness, 100) / 100, min(saturation, 100) / 100
        )
    return None


_HSL = re.compile(
    r"hsla?\(\s*([\d.]+)(?:deg)?[\s,]+([\d.]+)%[\s,]+([\d.]+)%\s*(?:[,/]\s*([\d.]+%?)\s*)?\)"
)


def _translucent(alpha: str | None) -> bool:
    return alpha is not None and float(alpha.rstrip("%")) < (100 if "%" in alpha else 1)


def is_transparent(value: str) -> bool:
    """``transparent`` (or a fully transparent rgba/hsla): the parent's background shows."""
    value = value.strip().lower()
    if value in ("transparent", "inherit", "initial", "unset", "none"):
        return True
    alpha = re.fullmatch(r"(?:rgba?|hsla?)\(.*[,/]\s*([\d.]+)%?\s*\)", value)
    return alpha is not None and float(alpha.group(1)) == 0


def _luminance(rgb: tuple[float, float, float]) -> float:
    # WCAG 2.x relative luminance (https://www.w3.org/TR/WCAG21/#dfn-relative-luminance).
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(fg: tuple[float, float, float], bg: tuple[float, float, float]) -> float:
    """WCAG 2.x contrast ratio, 1.0 to 21.0."""
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
