"""CSS inlining with premailer, configured for email clients."""

from __future__ import annotations

import logging

from premailer import Premailer

from .errors import RenderError

__all__ = ["inline_css"]


def inline_css(document: str) -> str:
    """Move every inlinable CSS rule into ``style`` attributes; media queries stay in <style>.

    ``strip_important=False`` matters: the responsive overrides inside the kept
    @media rules only win over inline styles because of their ``!important``.
    Classes stay, since those @media rules select by class.
    """
    try:
        return Premailer(
            document,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    except Exception as err:  # premailer raises many kinds; all mean the HTML/CSS is unusable
        raise RenderError(f"CSS inlining failed: {err}") from err
