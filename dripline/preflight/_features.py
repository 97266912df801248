"""Which caniemail features a rendered email uses: elements, attributes, CSS in and out of <style>.

Each :class:`Use` names a caniemail feature id (``css-display-flex``), what was
seen (``display:flex``) and regular expressions that find it in the files a
person edits (see ``_locate``). Detection runs on the sent HTML, after premailer,
so it sees exactly what mail clients get; the patterns lead back to the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html

from ._caniemail import known_features
from ._css import Declaration, declarations, rules

__all__ = ["Use", "features_used", "parse_html"]


@dataclass(frozen=True)
class Use:
    """One feature in use: caniemail id, what was seen, patterns that locate its source."""

    feature: str
    detail: str
    patterns: tuple[str, ...]


_SEMANTIC = {
    "article", "aside", "details", "figcaption", "figure", "footer", "header",
    "main", "mark", "nav", "section", "summary", "time",
}  # fmt: skip
_ELEMENT = {
    "h1": "html-h1-h6", "h2": "html-h1-h6", "h3": "html-h1-h6", "h4": "html-h1-h6",
    "h5": "html-h1-h6", "h6": "html-h1-h6", "ul": "html-lists", "ol": "html-lists",
    "dl": "html-lists", "map": "html-image-maps", "area": "html-image-maps",
}  # fmt: skip
# How Markdown writes what it turns into these elements, for finding it in a step.
_MARKDOWN = {
    "h1": r"^#\s", "h2": r"^##\s", "h3": r"^###\s", "h4": r"^####\s", "h5": r"^#####\s",
    "h6": r"^######\s", "ul": r"^\s*[-*+]\s", "ol": r"^\s*\d+[.)]\s", "blockquote": r"^\s*>",
    "strong": r"\*\*|__", "code": r"`", "pre": r"^(```|~~~)", "hr": r"^(---|\*\*\*|___)\s*$",
    "img": r"!\[", "a": r"\]\(",
}  # fmt: skip
_ATTRIBUTES = {
    "align": "html-align", "background": "html-background", "cellpadding": "html-cellpadding",
    "cellspacing": "html-cellspacing", "dir": "html-dir", "height": "html-height",
    "hidden": "html-hidden", "lang": "html-lang", "loading": "html-loading-attribute",
    "popover": "html-popover", "required": "html-required", "role": "html-role",
    "srcset": "html-srcset", "sizes": "html-srcset", "target": "html-target",
    "valign": "html-valign", "width": "html-width", "aria-describedby": "html-aria-describedby",
    "aria-hidden": "html-aria-hidden", "aria-label": "html-aria-label",
    "aria-labelledby": "html-aria-labelledby", "aria-live": "html-aria-live",
}  # fmt: skip
_IMAGE_TYPES = {
    "png": "image-png", "jpg": "image-jpg", "jpeg": "image-jpg", "gif": "image-gif",
    "webp": "image-webp", "avif": "image-avif", "svg": "image-svg", "bmp": "image-bmp",
    "ico": "image-ico", "tif": "image-tiff", "tiff": "image-tiff", "heic": "image-heif",
    "heif": "image-heif", "apng": "image-apng",
}  # fmt: skip
# Longhands caniemail files under their shorthand's page (margin-top under "margin").
_SHORTHANDS = (
    "margin", "padding", "border", "background", "outline", "list-style", "text-decoration",
    "overflow", "grid-template", "font-size",
)  # fmt: skip
_PROPERTY = {
    "left": "css-left-right-top-bottom", "right": "css-left-right-top-bottom",
    "top": "css-left-right-top-bottom", "bottom": "css-left-right-top-bottom",
    "columns": "css-column-layout-properties", "column-gap": "css-column-layout-properties",
    "column-rule": "css-column-layout-properties", "column-span": "css-column-layout-properties",
    "column-width": "css-column-layout-properties", "row-gap": "css-gap",
    "grid-template-columns": "css-grid-template", "grid-template-rows": "css-grid-template",
}  # fmt: skip
_UNITS = {
    "rem": "css-unit-rem", "em": "css-unit-em", "ch": "css-unit-ch", "ex": "css-unit-ex",
    "vh": "css-unit-vh", "vw": "css-unit-vw", "vmin": "css-unit-vmin", "vmax": "css-unit-vmax",
    "cm": "css-unit-cm", "mm": "css-unit-mm", "in": "css-unit-in", "pt": "css-unit-pt",
    "pc": "css-unit-pc", "px": "css-unit-px", "%": "css-unit-percent",
}  # fmt: skip
_FUNCTIONS = {
    "linear-gradient": "css-linear-gradient", "radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient", "rgb": "css-rgb", "rgba": "css-rgba",
    "calc": "css-unit-calc", "clamp": "css-function-clamp", "min": "css-function-min",
    "max": "css-function-max", "var": "css-variables", "light-dark": "css-function-light-dark",
    "oklch": "css-modern-color", "oklab": "css-modern-color", "lab": "css-modern-color",
    "lch": "css-modern-color", "hwb": "css-modern-color", "color": "css-modern-color",
}  # fmt: skip
_MEDIA = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "orientation": "css-at-media-orientation",
    "device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "(hover": "css-at-media-hover",
}  # fmt: skip


def parse_html(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def _property_feature(prop: str, value: str) -> str | None:
    features = known_features()
    if prop.startswith(("-", "mso-")):
        return None  # vendor extensions: each is meant for the one client that reads it
    if prop == "display":
        kind = value.split()[0].lower() if value.split() else ""
        return {
            "flex": "css-display-flex",
            "inline-flex": "css-display-flex",
            "grid": "css-display-grid",
            "inline-grid": "css-display-grid",
            "none": "css-display-none",
        }.get(kind, "css-display")
    if re.fullmatch(r"border(-\w+)*-radius", prop):
        return "css-border-radius"
    if prop in _PROPERTY:
        return _PROPERTY[prop]
    if f"css-{prop}" in features:
        return f"css-{prop}"
    for shorthand in _SHORTHANDS:
        if prop.startswith(shorthand + "-") and f"css-{shorthand}" in features:
            return f"css-{shorthand}"
    return None


def _declaration_uses(declaration: Declaration) -> Iterator[Use]:
    prop, value = declaration.prop, declaration.value
    first = value.split()[0] if value.split() else ""
    where = (rf"{re.escape(prop)}\s*:\s*{re.escape(first)}", rf"(?<![\w-]){re.escape(prop)}\s*:")
    detail = f"{prop}:{value}" if len(value) <= 30 else f"{prop}:{value[:30]}…"
    feature = _property_feature(prop, value)
    if feature:
        yield Use(feature, detail, where)
    for function in re.findall(r"([a-z-]+)\(", value.lower()):
        if function in _FUNCTIONS:
            yield Use(_FUNCTIONS[function], f"{function}() in {prop}", (rf"{function}\(", *where))
    if not value.lower().startswith(("url(", "#")):
        for unit in re.findall(
            r"(?<![\w#.-])[\d.]+(rem|em|ch|ex|vh|vw|vmin|vmax|cm|mm|in|pt|pc|px|%)(?![\w-])", value
        ):
            yield Use(_UNITS[unit], f"{unit} unit in {prop}", where)
    if value.lower() == "initial":
        yield Use("css-unit-initial", f"{prop}:initial", where)
    if prop.startswith("font") and "system-ui" in value.lower():
        yield Use("css-sytem-ui", "system-ui font", (r"system-ui",))
    if declaration.important:
        # Only inside a CSS rule's braces: the inliner strips !important from inline styles,
        # so one written in a step's style="" never reaches the email and must not take the
        # blame for the layout's @media ones. The property with it first, then any.
        rule = r"\{[^{}]*?(?P<at>"
        exact = rf"{rule}(?<![\w-]){re.escape(prop)}\s*:[^;{{}}]*!\s*important)"
        yield Use("css-important", f"!important on {prop}", (exact, rf"{rule}!\s*important)"))


def _selector_uses(selector: str) -> Iterator[Use]:
    first = selector.split(",")[0].strip()
    where = (re.escape(first), re.escape(first.split()[0]) if first.split() else re.escape(first))
    if "," in selector:
        yield Use("css-selector-grouping", f"selector list {selector[:40]!r}", where)
    for part in selector.split(","):
        part = part.strip()
        checks = [
            (r"\.[\w-]", "css-selector-class", "class selector"),
            (r"#[\w-]", "css-selector-id", "id selector"),
            (r"\[", "css-selector-attribute", "attribute selector"),
            (r">", "css-selector-child", "child combinator"),
            (r"\+", "css-selector-adjacent-sibling", "adjacent sibling combinator"),
            (r"~", "css-selector-general-sibling", "general sibling combinator"),
            (r"(^|\s)\*", "css-selector-universal", "universal selector"),
            (r"[\w\])]\s+[\w.#*\[:]", "css-selector-descendant", "descendant combinator"),
        ]
        for pattern, feature, what in checks:
            if re.search(pattern, part):
                yield Use(feature, f"{what} in {part!r}", where)
        for colons, name in re.findall(r"(::?)([\w-]+)", part):
            kind = "element" if colons == "::" or name in ("before", "after") else "class"
            yield Use(f"css-pseudo-{kind}-{name}", f"{colons}{name} in {part!r}", where)


def _sheet_uses(sheet: str) -> Iterator[Use]:
    for at_rule in re.findall(r"@([\w-]+)", sheet):
        at = at_rule.lower()
        feature = {"font-face": "css-at-font-face", "import": "css-at-import"}.get(at)
        feature = feature or {"keyframes": "css-at-keyframes", "supports": "css-at-supports"}.get(
            at
        )
        if feature:
            yield Use(feature, f"@{at}", (rf"@{at}",))
    for rule in rules(sheet):
        for prelude in rule.at_rules:
            if prelude.lower().startswith("@media"):
                yield Use("css-at-media", prelude, (re.escape(prelude), r"@media"))
                for needle, feature in _MEDIA.items():
                    if needle in prelude.lower():
                        yield Use(feature, prelude, (re.escape(needle), r"@media"))
        yield from _selector_uses(rule.selector)
        for declaration in rule.declarations:
            yield from _declaration_uses(declaration)


def features_used(document: lxml.html.HtmlElement) -> Iterator[Use]:
    """Every caniemail feature the document uses, in document order (with repeats)."""
    known = known_features()
    tree = document.getroottree()
    if (tree.docinfo.doctype or "").lower() == "<!doctype html>":
        yield Use("html-doctype", "HTML5 doctype", (r"<!doctype html>",))
    for element in document.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if not tag:
            continue
        tag = tag.lower()
        feature = _ELEMENT.get(tag) or ("html-semantics" if tag in _SEMANTIC else f"html-{tag}")
        if tag in ("input", "button"):
            feature = f"html-{tag}-{(element.get('type') or 'submit').lower()}"
        if feature in known:
            patterns = (rf"<{tag}\b", _MARKDOWN[tag]) if tag in _MARKDOWN else (rf"<{tag}\b",)
            yield Use(feature, f"<{tag}>", patterns)
        if tag == "meta" and (element.get("name") or "").lower() == "color-scheme":
            yield Use("html-meta-color-scheme", "color-scheme meta tag", (r"name=.color-scheme",))
        for name, value in element.attrib.items():
            name = name.lower()
            if name in _ATTRIBUTES:
                where = (rf"<{tag}\b[^>]*\s{name}\s*=", rf"<\w[^>]*\s{name}\s*=")
                yield Use(_ATTRIBUTES[name], f"{name} attribute on <{tag}>", where)
            elif name == "style":
                for declaration in declarations(value):
                    yield from _declaration_uses(declaration)
        href = (element.get("href") or "") if tag == "a" else ""
        if href.lower().startswith("mailto:"):
            yield Use("html-mailto-links", "mailto: link", (r"mailto:",))
        elif href.startswith("#"):
            yield Use("html-anchor-links", f"link to {href}", (re.escape(href),))
        if tag == "img":
            src = element.get("src") or ""
            if src.startswith("data:"):
                yield Use("image-base64", "base64 image", (r"data:image",))
            else:
                ext = src.split("?")[0].rsplit(".", 1)[-1].lower()
                if ext in _IMAGE_TYPES:
                    name = src.split("?")[0].rsplit("/", 1)[-1]
                    yield Use(_IMAGE_TYPES[ext], f"{ext} image {name}", (re.escape(name),))
        if tag == "style":
            yield from _sheet_uses(element.text or "")
