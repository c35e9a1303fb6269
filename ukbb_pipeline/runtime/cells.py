"""Text that goes into CSV cells and log lines, made harmless where it came from outside (names, DICOM strings).

A spreadsheet reads a cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) as a formula: an
input named ``=HYPERLINK(...)`` would run as one in the state or status CSV. :func:`csv_cell` prefixes such a cell
with ``'`` (numbers such as ``-3`` stay as they are) and :func:`csv_value` takes the prefix off again, so every cell
reads back unchanged. :func:`escape_controls` writes control characters (a newline in a DICOM string) as ``\\n`` or
``\\xNN``, so that no text from a file can start a log line of its own.
"""

from __future__ import annotations

import logging
import re

_FORMULA_START = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def csv_cell(text: str) -> str:
    """``text`` safe for a spreadsheet: ``'`` before a would-be formula (and before a cell that starts with ``'``
    followed by such a character, so that :func:`csv_value` can tell them apart)."""
    if not text:
        return text
    first = text[0]
    if first in _FORMULA_START and not _NUMBER.fullmatch(text):
        return "'" + text
    if first == "'" and len(text) > 1 and (text[1] in _FORMULA_START or text[1] == "'"):
        return "'" + text
    return text


def csv_value(cell: str) -> str:
    """The text :func:`csv_cell` was given."""
    if cell[:1] == "'" and len(cell) > 1 and (cell[1] in _FORMULA_START or cell[1] == "'"):
        return cell[1:]
    return cell


def csv_values(cells: list[str]) -> list[str]:
    """:func:`csv_value` of each cell of a row (cheap when no cell starts with ``'``)."""
    return [csv_value(cell) if cell[:1] == "'" else cell for cell in cells]


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``): one line, no terminal codes."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda match: _NAMED.get(match.group(0), f"\\x{ord(match.group(0)):02x}"
                                                   if ord(match.group(0)) < 0x100 else f"\\u{ord(match.group(0)):04x}"),
                         text)


class EscapeControls(logging.Filter):
    """A log filter: control characters in a record's arguments (names, reasons, DICOM strings) are escaped, so a
    line of the log is always one record; the message template keeps its own newlines (multi-line summaries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(escape_controls(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str) and not record.args:
            record.msg = "\n".join(escape_controls(line) for line in record.msg.split("\n"))
        return True


def escape_log_records() -> None:
    """Put :class:`EscapeControls` on every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, EscapeControls) for existing in handler.filters):
            handler.addFilter(EscapeControls())
