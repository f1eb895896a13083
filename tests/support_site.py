"""Helpers for the subscriber-output tests: build a site in tmp, serve it, make images."""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.build import BuildReport, build
from aggregator.config import Config, load_config
from aggregator.serve import PreviewServer

from .conftest import EXAMPLES

BASE_URL = "https://feeds.example.org/news/"


def write_site_config(
    folder: Path,
    records: Path,
    site_extra: str = "",
    base_url: str = BASE_URL,
    title: str = "Test News",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f"""
[site]
title = {json.dumps(title)}
base_url = "{base_url}"
output_dir = "out"
{site_extra}

[[sources]]
path = {json.dumps(str(records))}
""",
        encoding="utf-8",
    )
    return path


def build_site(
    folder: Path, records: Path = EXAMPLES, site_extra: str = ""
) -> tuple[Config, BuildReport]:
    config = load_config(write_site_config(folder, records, site_extra))
    return config, build(config)


def rss_files(output: Path) -> list[Path]:
    return sorted(output.rglob("rss.xml"))


def public_url(output: Path, path: Path, base_url: str = BASE_URL) -> str:
    return base_url + path.relative_to(output).as_posix()


@contextmanager
def preview(root: Path, *, live_reload: bool = False) -> Iterator[PreviewServer]:
    server = PreviewServer(root, 0, live_reload=live_reload)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.shutdown_streams()
        server.server_close()
        thread.join()


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A real PNG: a soft diagonal gradient whose colours depend on `seed`."""
    start = (40 + seed % 150, 90 + (seed // 7) % 120, 150 + (seed // 49) % 100)
    end = (230, 200 - seed % 90, 120 + (seed // 3) % 120)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            t = (x / width + y / height) / 2
            row += bytes(int(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium's screenshots are):
    width, height, one bytes row per line, and bytes per pixel."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    size = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up = previous[x]
            corner = previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))[2]  # fmt: skip
                line[x] = (line[x] + near) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, size
