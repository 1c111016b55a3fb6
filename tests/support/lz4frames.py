"""lz4 frames whose header claims a content size they do not hold (a hostile
peer's or a corrupt file's): the header checksum is made right, so only the
size is a lie."""

from __future__ import annotations

import struct

import lz4.frame


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 (the lz4 frame header checksum)."""
    P1, P2, P3, P4, P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    M = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & M

    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M]
        while i + 16 <= n:
            for j in range(4):
                x = struct.unpack_from("<I", data, i)[0]
                i += 4
                v[j] = (rotl((v[j] + x * P2) & M, 13) * P1) & M
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 4 <= n:
        h = (rotl((h + struct.unpack_from("<I", data, i)[0] * P3) & M, 17) * P4) & M
        i += 4
    while i < n:
        h = (rotl((h + data[i] * P5) & M, 11) * P1) & M
        i += 1
    h ^= h >> 15
    h = (h * P2) & M
    h ^= h >> 13
    h = (h * P3) & M
    h ^= h >> 16
    return h


def claiming(payload: bytes, size: int) -> bytes:
    """One lz4 frame holding payload whose header says it holds size bytes."""
    data = bytearray(lz4.frame.compress(payload, store_size=True, content_checksum=True))
    struct.pack_into("<Q", data, 6, size)
    data[14] = (xxh32(bytes(data[4:14])) >> 8) & 0xFF
    return bytes(data)
