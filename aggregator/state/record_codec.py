"""Records and parse results in the state's one encoding (aggregator.state.codec): a
record as its plain field values, a record file's result without its path (the key it
is stored under), deflated.
"""

from __future__ import annotations

import marshal
import zlib
from dataclasses import fields
from typing import Any

from aggregator.errors import Problem
from aggregator.model import (
    R_ORIGIN,
    DocumentResult,
    Record,
    field_values,
    record_from_values,
    record_values,
)
from aggregator.state.codec import LAYOUT, Undecodable

_DEFLATED = bytes([LAYOUT | 0x80])  # the layout byte of a deflated parse result
_P_ORIGIN = [f.name for f in fields(Problem)].index("origin")
_RECORD_WIDTH = len(fields(Record))


def encode_record(record: Record, *, origin: bool = False) -> list[object]:
    values = record_values(record)
    if not origin:
        values[R_ORIGIN] = ""  # the file's path is given back when decoding
    return values


def decode_record(values: list[Any], origin: str | None = None) -> Record:
    if len(values) != _RECORD_WIDTH:
        raise Undecodable(f"a record of {len(values)} fields, expected {_RECORD_WIDTH}")
    if origin is not None:
        values[R_ORIGIN] = origin
    return record_from_values(values)


def result_values(result: DocumentResult, *, origin: bool = False) -> tuple[object, ...]:
    problems = []
    for problem in result.problems:
        values = list(field_values(problem))
        if not origin:
            values[_P_ORIGIN] = ""
        problems.append(values)
    records = [encode_record(record, origin=origin) for record in result.records]
    return (records, problems, result.unpublished)


def result_from_values(values: Any, origin: str | None = None) -> DocumentResult:
    try:
        records, problems, unpublished = values
        decoded_problems = []
        for problem in problems:
            if origin is not None:
                problem[_P_ORIGIN] = origin
            decoded_problems.append(Problem(*problem))
        return DocumentResult(
            tuple([decode_record(record, origin) for record in records]),
            tuple(decoded_problems),
            unpublished,
        )
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise Undecodable(str(exc)) from None


def encode_result(result: DocumentResult) -> bytes:
    """A record file's result without its origin (the path is the cache key), deflated:
    links repeat (webUrl, originalUrl, the guid, images on the same host) and the
    parse cache is most of the state store, so this halves it (benchmarks/
    bench_scale.py reports the store's size per record)."""
    return _DEFLATED + zlib.compress(marshal.dumps(result_values(result)), 1)


def decode_result(data: bytes | memoryview, origin: str) -> DocumentResult:
    return result_from_values(_values(data), origin)


def decode_record_values(data: bytes | memoryview) -> list[list[Any]]:
    """The plain values (model.record_values, without the origin) of each record of an
    encoded result, without making the records: for a reader of a few fields of many
    (an incremental build's clustering, aggregator.delta)."""
    try:
        records = _values(data)[0]
        if not all(len(values) == _RECORD_WIDTH for values in records):
            raise Undecodable(f"a record of other than {_RECORD_WIDTH} fields")
        return list(records)
    except (TypeError, IndexError, KeyError) as exc:
        raise Undecodable(str(exc)) from None


def _values(data: bytes | memoryview) -> Any:
    if len(data) < 1 or data[0] != _DEFLATED[0]:
        raise Undecodable("not a deflated parse result")
    try:
        return marshal.loads(zlib.decompress(memoryview(data)[1:]))
    except (zlib.error, ValueError, TypeError, EOFError) as exc:
        raise Undecodable(str(exc)) from None
