"""A fast walk over a DICOM member's top-level elements: the raw values pydicom's parse would hold, or None.

pydicom stays the parser of record. This walk takes the same steps as ``pydicom.dcmread`` (preamble and ``DICM``,
the explicit little-endian file meta group, then the data set in the transfer syntax's encoding) for the plain cases
only: Explicit or Implicit VR Little Endian (and, when only the header is wanted, the encapsulated syntaxes, whose
headers are Explicit VR Little Endian), known VRs, lengths that fit in the bytes, sequences skipped whole. Anything
else (no ``DICM``, a command set, deflated or big-endian data, an unknown VR, a value running past the end, an
encoding pydicom would switch, no pixel data) returns None, and the caller parses the member with pydicom, whose
answer (values or error) is then the one given. Where the walk answers, each element's value is the very bytes
pydicom's ``RawDataElement`` holds; a repeated tag keeps its last value, as in pydicom.

It costs about a tenth of pydicom's parse, which spends ~10 us on every element of a Siemens header.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import cast

import pydicom.uid
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

_KNOWN_VR = {str(vr).encode("ascii") for vr in VR}  # what pydicom's generator reads as a VR
_LONG_VR = {str(vr).encode("ascii") for vr in EXPLICIT_VR_LENGTH_32}  # 2 reserved bytes, then a 4-byte length
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")
_UNDEFINED = 0xFFFFFFFF
_SKIPPED = -1  # the length recorded for an undefined-length sequence, skipped whole
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_ITEM_WORD = 0xE000FFFE  # the item tag's four bytes read as one little-endian number
_PIXEL_DATA = 0x7FE00010
_TRANSFER_SYNTAX = 0x00020010
_NATIVE = {pydicom.uid.ExplicitVRLittleEndian: False, pydicom.uid.ImplicitVRLittleEndian: True}  # -> implicit VR


@functools.lru_cache(maxsize=64)
def _uid(raw: bytes) -> UID:
    """A transfer syntax UID from its raw bytes (pydicom's UID validates itself, which costs: done once per value)."""
    return UID(raw.decode("ascii").strip(" \x00"))


class _Unhandled(Exception):
    """Something the walk does not do exactly as pydicom: pydicom parses the member."""


@dataclass(frozen=True)
class _FileMeta:
    TransferSyntaxUID: UID


class Elements:
    """Top-level elements by tag, each handed out as pydicom's ``RawDataElement`` (``get_item``), as
    ``Dataset.get_item`` does for a freshly parsed, unconverted data set."""

    def __init__(self, data: bytes, found: dict[int, tuple[bytes | None, int, int]], syntax: UID, implicit: bool):
        self._data = data
        self._found = found  # tag -> (VR bytes or None, value offset, length)
        self.file_meta = _FileMeta(syntax)
        self.implicit = implicit

    def __contains__(self, tag: int) -> bool:
        return tag in self._found

    def get_item(self, tag: int) -> RawDataElement | None:
        where = self._found.get(int(tag))
        if where is None:
            return None
        raw_vr, start, length = where
        if length == _SKIPPED:
            raise LookupError(f"{BaseTag(tag)} is an undefined-length sequence, which the walk does not keep")
        vr = raw_vr.decode("ascii") if raw_vr is not None else None
        value = self._data[start : start + length] if length else cast(bytes | None, empty_value_for_VR(vr, raw=True))
        return RawDataElement(BaseTag(tag), vr, length, value, start, self.implicit, True)


def walk(data: bytes, *, stop_after: int | None = None) -> Elements | None:
    """The top-level elements of a whole member, or (``stop_after``) of its start up to the first element whose tag
    is above ``stop_after`` (None when ``data`` ends before one); None whenever pydicom must parse it."""
    try:
        return _walk(data, stop_after)
    except (_Unhandled, struct.error, UnicodeDecodeError):
        return None


def _walk(data: bytes, stop_after: int | None) -> Elements | None:
    if data[128:132] != b"DICM":
        return None
    meta: dict[int, tuple[bytes | None, int, int]] = {}
    position = _elements(data, 132, False, meta, stop_group=2)
    if _TRANSFER_SYNTAX not in meta:
        return None
    _, start, length = meta[_TRANSFER_SYNTAX]
    syntax = _uid(data[start : start + length])
    if syntax in _NATIVE:
        implicit = _NATIVE[syntax]
    elif stop_after is not None and syntax in pydicom.uid.AllTransferSyntaxes and syntax.is_encapsulated:
        implicit = False  # pydicom reads any other known syntax as Explicit VR Little Endian
    else:
        return None  # deflated, big endian, private or unknown: pydicom
    if len(data) - position < 8 and stop_after is not None:
        return None
    if data[position : position + 2] == b"\x00\x00":
        return None  # a command set (group 0000): pydicom reads it apart
    raw_vr = data[position + 4 : position + 6]
    if len(raw_vr) == 2 and (not (0x40 < raw_vr[0] < 0x5B and 0x40 < raw_vr[1] < 0x5B)) != implicit:
        return None  # pydicom would switch the encoding (and warn)
    found: dict[int, tuple[bytes | None, int, int]] = {}
    end = _elements(data, position, implicit, found, stop_after=stop_after)
    if stop_after is not None and end < 0:
        return None  # the bytes ended before the header reached ``stop_after``
    if stop_after is None:
        pixels = found.get(_PIXEL_DATA)
        if pixels is None or not pixels[2] or (not implicit and pixels[0] not in (b"OB", b"OW")):
            return None  # no pixel data, empty or of a damaged VR: pydicom says what is wrong
    return Elements(data, found, syntax, implicit)


def _elements(
    data: bytes,
    position: int,
    implicit: bool,
    found: dict[int, tuple[bytes | None, int, int]],
    *,
    stop_group: int | None = None,
    stop_after: int | None = None,
) -> int:
    """Walk elements from ``position``, recording them in ``found``; the position reached, or -1 when the data ended
    before an element above ``stop_after``. ``stop_group``: stop (before it) at the first element of another group."""
    size = len(data)
    explicit_unpack, implicit_unpack, length_unpack = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from, _LENGTH.unpack_from
    while True:
        if size - position < 8:
            if position != size and stop_after is None and stop_group is None:
                raise _Unhandled("trailing bytes")  # pydicom ignores them; let it
            return -1 if stop_after is not None else position
        if stop_group is not None and implicit_unpack(data, position)[0] != stop_group:
            return position
        if implicit:
            group, element, length = implicit_unpack(data, position)
            vr = None
            header = 8
        else:
            group, element, vr, length = explicit_unpack(data, position)
            if vr not in _KNOWN_VR:
                raise _Unhandled("unknown VR")
            header = 8
            if vr in _LONG_VR:
                if size - position < 12:
                    raise _Unhandled("truncated length")
                length = length_unpack(data, position + 8)[0]
                header = 12
        tag = group << 16 | element
        if stop_after is not None and tag > stop_after:
            return position
        if group == 0xFFFE:
            raise _Unhandled("a delimiter at the top level")
        start = position + header
        if length == _UNDEFINED:
            _check_sequence(data, start, tag, vr)
            position = _skip_sequence(data, start, implicit)
            found[tag] = (vr, start, _SKIPPED)
            continue
        if start + length > size:
            if stop_after is not None:
                return -1
            raise _Unhandled("value past the end")
        found[tag] = (vr, start, length)
        position = start + length


def _skip_sequence(data: bytes, position: int, implicit: bool) -> int:
    """The position just after an undefined-length sequence's delimiter, its items (of either length) skipped."""
    while True:
        if position + 8 > len(data):
            raise _Unhandled("unterminated sequence")
        group, element, length = _IMPLICIT.unpack_from(data, position)
        tag = group << 16 | element
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _Unhandled("not an item")
        if length != _UNDEFINED:
            position += length
            continue
        position = _skip_item(data, position, implicit)


def _skip_item(data: bytes, position: int, implicit: bool) -> int:
    """The position just after an undefined-length item's delimiter."""
    while True:
        if position + 8 > len(data):
            raise _Unhandled("unterminated item")
        if _IMPLICIT.unpack_from(data, position)[:2] == (0xFFFE, 0xE00D):
            return position + 8
        position = _one_element(data, position, implicit)  # a nested sequence is skipped the same way


def _check_sequence(data: bytes, start: int, tag: int, vr: bytes | None) -> None:
    """An undefined length that pydicom reads as a sequence (SQ, UN, or an implicit SQ starting with an item)."""
    if vr == b"SQ" or vr == b"UN":
        return
    if vr is not None or start + 4 > len(data) or _LENGTH.unpack_from(data, start)[0] != _ITEM_WORD:
        raise _Unhandled("undefined length value")
    if not tag >> 16 & 1:  # a public tag: pydicom reads it as a sequence only if its dictionary says SQ
        try:
            if dictionary_VR(tag) != "SQ":
                raise _Unhandled("undefined length value")
        except KeyError:
            raise _Unhandled("undefined length value") from None


def _one_element(data: bytes, position: int, implicit: bool) -> int:
    if implicit:
        group, element, length = _IMPLICIT.unpack_from(data, position)
        start, vr = position + 8, None
    else:
        group, element, vr, length = _EXPLICIT.unpack_from(data, position)
        if vr not in _KNOWN_VR:
            raise _Unhandled("unknown VR in an item")
        start = position + 8
        if vr in _LONG_VR:
            length = _LENGTH.unpack_from(data, position + 8)[0]
            start = position + 12
    if length == _UNDEFINED:
        _check_sequence(data, start, group << 16 | element, vr)
        return _skip_sequence(data, start, implicit)
    if start + length > len(data):
        raise _Unhandled("value past the end of an item")
    return start + length
