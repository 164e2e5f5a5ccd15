"""CSV cells a spreadsheet opens safely: the one rule for every CSV capstone writes (the web
app's search export, the course's gradebook)."""

from __future__ import annotations

__all__ = ["spreadsheet_text"]


def spreadsheet_text(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``,
    tab or carriage return would start a formula, so such a cell gets a ``'`` in front."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
