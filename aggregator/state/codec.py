"""The one encoding of what the state store holds: marshal of plain values.

Every namespace stores `pack(value)`: a version byte, then marshal of tuples, lists,
dicts, str, bytes, int, float, bool and None. marshal is the fastest safe codec for
plain values (it builds no objects but those, unlike pickle); the field lists come from
the dataclasses themselves (`field_values`), so a new plain field is carried without a
change here. Records and parse results have their own layouts on top of it, in
state/record_codec.py (`encode_result` / `decode_result`): a record file's results,
without the file's path, which is the key they are stored under, deflated (zlib level
1); apart, so that a build that reads no record does not import the records' model.

A value that cannot be read back (damaged, or written by another layout) raises
`Undecodable`; every caller treats that as a cache miss, never as an error.
"""

from __future__ import annotations

import marshal
from typing import Any

# Bump when a stored layout changes meaning: older values then read as misses. The
# record layout is part of it through the field list (a new field changes the tuple).
LAYOUT = 3
_HEADER = bytes([LAYOUT])


class Undecodable(ValueError):
    """A stored value that cannot be read back: a cache miss."""


def pack(value: object) -> bytes:
    return _HEADER + marshal.dumps(value)


def unpack(data: bytes | memoryview | None) -> Any:
    if data is None or len(data) < 1 or data[0] != LAYOUT:
        raise Undecodable("no value of this layout")
    try:
        return marshal.loads(memoryview(data)[1:])
    except (ValueError, TypeError, EOFError) as exc:
        raise Undecodable(str(exc)) from None


