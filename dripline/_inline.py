"""CSS inlining with premailer, configured for email clients.

premailer also copies some CSS into the HTML attributes Outlook's Word engine
reads (``bgcolor``, ``width``, ``height``, ``align``, ``valign``). It copies the
value as written, ``!important`` and units included (``bgcolor="#fde8e8 !important"``,
``width="320px !important"``), and values attributes cannot hold (``height="auto"``
from the layout's ``img { height: auto }``), which are invalid. Here attributes get the
bare value, or are left out when there is no valid one, and ``!important`` is
removed from every attribute, inline ``style`` included: there it would beat the
``@media`` overrides (dark mode, small screens), whose ``!important`` is the one
place it belongs. Only a declaration's priority is removed from ``style`` (not the
same letters inside a ``url()``), and URL attributes (``href``, ``src``) are never
touched: there the letters are part of an address.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from lxml import etree
from premailer import Premailer

from .errors import RenderError

__all__ = ["URL_ATTRIBUTES", "inline_css"]

_IMPORTANT = re.compile(r"\s*!\s*important\b", re.IGNORECASE)
# A declaration's priority ends the declaration (CSS 2.1 section 6.4.2): the same letters
# inside a url() or a string are part of a value and are kept.
_PRIORITY = re.compile(r"\s*!\s*important\s*(?=;|$)", re.IGNORECASE)
# Attributes holding a URL: "!important" there is part of the address, never CSS. The
# fast path (_slots) escapes values placed in them by the same list.
URL_ATTRIBUTES = frozenset({"href", "src", "action", "background", "cite", "longdesc"})
# What each presentational attribute may hold (HTML 4.01, which Word follows).
_VALID = {
    "bgcolor": re.compile(r"#[0-9A-Fa-f]{6}|#[0-9A-Fa-f]{3}|[A-Za-z]+"),
    "width": re.compile(r"\d+%?"),
    "height": re.compile(r"\d+%?"),
    "align": re.compile(r"(?i)left|right|center|justify"),
    "valign": re.compile(r"(?i)top|middle|bottom|baseline"),
}


class _EmailPremailer(Premailer):
    def _style_to_basic_html_attributes(
        self, element: Any, style_content: str, force: bool = False
    ) -> None:
        written = {name: element.attrib.get(name) for name in _VALID}
        super()._style_to_basic_html_attributes(element, style_content, force=force)
        for name, valid in _VALID.items():
            value = element.attrib.get(name)
            if value is None or value == written[name]:
                continue  # not premailer's doing: as the author wrote it
            bare = _IMPORTANT.sub("", value).strip()
            if name in ("width", "height") and bare.endswith("px"):
                bare = bare[:-2].strip()
            if valid.fullmatch(bare):
                element.attrib[name] = bare
            elif written[name] is not None:
                element.attrib[name] = written[name]
            else:
                del element.attrib[name]  # height: auto has no attribute form


def _strip_important(root: Any) -> None:
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        for name, value in element.attrib.items():
            if name in URL_ATTRIBUTES or "important" not in value.lower():
                continue
            pattern = _PRIORITY if name == "style" else _IMPORTANT
            if pattern.search(value):
                element.attrib[name] = pattern.sub("", value).strip()


def inline_css(document: str) -> str:
    """Move every inlinable CSS rule into ``style`` attributes; media queries stay in <style>.

    ``strip_important=False`` matters: the responsive overrides inside the kept
    @media rules only win over inline styles because of their ``!important``.
    Classes stay, since those @media rules select by class.

    Raises:
        RenderError: the HTML or CSS cannot be processed.
    """
    try:
        stripped = document.strip()
        tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
        page = tree.getroot()
        _EmailPremailer(
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform(page)
        _strip_important(page)
        # As premailer writes it: the doctype only if the document had one.
        root = tree if stripped.startswith(tree.docinfo.doctype) else page
        return etree.tostring(root, method="html", pretty_print=True, encoding="utf-8").decode()
    except Exception as err:  # premailer raises many kinds; all mean the HTML/CSS is unusable
        raise RenderError(f"CSS inlining failed: {err}") from err
