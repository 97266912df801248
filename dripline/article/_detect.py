"""Reading an article file and telling its format from the name, else from the content."""

from __future__ import annotations

import re
from pathlib import Path

from ._model import ArticleError

__all__ = ["FORMATS", "detect_format", "read_article_text"]

FORMATS = ("text", "markdown", "html")
_BY_SUFFIX = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
}
_HTML_START = re.compile(r"^\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.I)
_HTML_TAGS = re.compile(r"<(?:p|h[1-6]|div|article|ul|li)(?:\s[^>]*)?>", re.I)
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_SETEXT = re.compile(r"^\S.*\n(?:=+|-+)[ \t]*$", re.MULTILINE)


def read_article_text(path: Path) -> str:
    """The file's text; a clear error (with the line) when it is unreadable or not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArticleError(f"cannot read the article: {err.strerror}", path=path) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if path.suffix.lower() in (".html", ".htm") or _HTML_START.match(
            data[:512].decode("latin-1")
        ):
            declared = re.search(rb"charset=[\"']?([\w-]+)", data[:2048], re.I)
            if declared:
                try:
                    return data.decode(declared.group(1).decode("ascii")).removeprefix("\ufeff")
                except (LookupError, UnicodeDecodeError):
                    pass
        line = data[: err.start].count(b"\n") + 1
        raise ArticleError(
            f"not UTF-8 text (byte 0x{data[err.start]:02x}); save the article as UTF-8",
            path=path,
            line=line,
        ) from err
    return text.removeprefix("\ufeff")


def detect_format(path: Path, text: str) -> str:
    """ "text", "markdown" or "html": by the file suffix, else by what the content looks like."""
    by_suffix = _BY_SUFFIX.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    if _HTML_START.match(text) or len(_HTML_TAGS.findall(text[:20000])) >= 3:
        return "html"
    if _MARKDOWN_HEADING.search(text) or _SETEXT.search(text):
        return "markdown"
    return "text"
