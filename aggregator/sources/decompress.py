"""Undo HTTP content codings (gzip, deflate, br) in bounded steps.

httpx's own decoders turn each network chunk into all of its decompressed output at
once, so one 64 KiB chunk of a gzip bomb becomes 64 MiB in memory. These decoders
never return more than `BLOCK` bytes per step: the caller counts the decoded size
and stops reading as soon as it passes its cap, so a bomb costs no memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

try:  # optional at run time; without it we simply do not ask for brotli
    import brotli
except ImportError:  # pragma: no cover - brotli is a declared dependency
    brotli = None

BLOCK = 64 * 1024  # the most decoded bytes one step may produce
_GZIP_MAGIC = b"\x1f\x8b"


class ContentDecodingError(ValueError):
    """The body does not decode with the coding the server announced."""


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class IdentityDecoder:
    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), BLOCK):
            yield data[start : start + BLOCK]

    def flush(self) -> Iterator[bytes]:
        return iter(())


class ZlibDecoder:
    """gzip (possibly several members) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._wbits = zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS
        self._inflate = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflate.decompress(data, BLOCK)
            except zlib.error as exc:
                if self._coding == "deflate" and not self._started:
                    # Some servers send raw deflate without the zlib header: retry as raw.
                    self._wbits = -zlib.MAX_WBITS
                    self._inflate = zlib.decompressobj(self._wbits)
                    self._started = True
                    continue
                raise ContentDecodingError(f"invalid {self._coding} data: {exc}") from None
            self._started = True
            if out:
                yield out
            if self._inflate.eof:
                rest = self._inflate.unused_data
                if self._coding != "gzip" or not rest.startswith(_GZIP_MAGIC):
                    return  # trailing padding after the stream: ignored, as browsers do
                self._inflate = zlib.decompressobj(self._wbits)
                data = rest
                continue
            data = self._inflate.unconsumed_tail
            if not data and len(out) < BLOCK:
                return  # input used up and no output pending

    def flush(self) -> Iterator[bytes]:
        try:
            out = self._inflate.flush()
        except zlib.error as exc:
            raise ContentDecodingError(f"invalid {self._coding} data: {exc}") from None
        if out:
            yield from IdentityDecoder().feed(out)


class BrotliDecoder:
    def __init__(self) -> None:
        assert brotli is not None
        self._state = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._state.process(data, output_buffer_limit=BLOCK)
            # Output may still be pending after all input is taken: drain it block by block.
            while out:
                yield out
                if self._state.is_finished():
                    return
                out = self._state.process(b"", output_buffer_limit=BLOCK)
        except brotli.error as exc:
            raise ContentDecodingError(f"invalid br data: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        return iter(())


class ChainDecoder:
    """Several codings applied in turn (`Content-Encoding: gzip, br` means br was last)."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(1, self._decoders[0].feed(data))

    def flush(self) -> Iterator[bytes]:
        for index, decoder in enumerate(self._decoders):
            yield from self._through(index + 1, decoder.flush())

    def _through(self, index: int, blocks: Iterator[bytes]) -> Iterator[bytes]:
        """Pass `blocks` (output of decoder index-1) through decoders index, index+1, ..."""
        if index == len(self._decoders):
            yield from blocks
            return
        for block in blocks:
            yield from self._through(index + 1, self._decoders[index].feed(block))


def brotli_supported() -> bool:
    """Only a brotli that can bound its output (1.2+) is safe to ask for."""
    return brotli is not None and hasattr(brotli.Decompressor(), "can_accept_more_data")


def accept_encoding() -> str:
    return "gzip, deflate, br" if brotli_supported() else "gzip, deflate"


def decoder_for(content_encoding: str) -> Decoder:
    """A decoder for a Content-Encoding header value; ContentDecodingError if unsupported."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    decoders: list[Decoder] = []
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            decoders.append(ZlibDecoder("gzip"))
        elif coding == "deflate":
            decoders.append(ZlibDecoder("deflate"))
        elif coding == "br" and brotli_supported():
            decoders.append(BrotliDecoder())
        else:
            raise ContentDecodingError(f"unsupported Content-Encoding {coding!r}")
    if not decoders:
        return IdentityDecoder()
    return decoders[0] if len(decoders) == 1 else ChainDecoder(decoders)
