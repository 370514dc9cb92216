"""Just enough PNG decoding to count a screenshot's colours and bars (PIL is not a dependency)."""

from __future__ import annotations

import struct
import zlib
from collections import Counter


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, prior: bytes, bpp: int) -> None:
    """Undo one scanline's filter in place (PNG spec section 9)."""
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((x + y) & 0xFF for x, y in zip(line, prior))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
        elif kind == 4:
            upper_left = prior[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, prior[i], upper_left)) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter {kind}")


def decode(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """(width, height, rows of RGB pixels) of an 8-bit RGB/RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    position, idat = 8, bytearray()
    width = height = colour_type = 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour_type not in (2, 6) or interlace:
                raise ValueError("only 8-bit, non-interlaced RGB/RGBA screenshots are supported")
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prior = bytes(stride)
    rows = []
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, prior, bpp)
        rows.append(list(zip(line[0::bpp], line[1::bpp], line[2::bpp])))
        prior = bytes(line)
    return width, height, rows


def colour_counts(data: bytes) -> tuple[int, int, Counter[tuple[int, int, int]]]:
    """(width, height, how many pixels of each RGB colour) of an 8-bit RGB/RGBA PNG."""
    width, height, rows = decode(data)
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(row)
    return width, height, counts


def bands(flags: list[bool]) -> int:
    """How many separate runs of True: bars seen across (or down) a chart."""
    return sum(1 for i, flag in enumerate(flags) if flag and (i == 0 or not flags[i - 1]))
