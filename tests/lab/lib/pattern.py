"""Deterministic pseudo-random payloads shared by the lab servers and clients.

Block i of a stream is sha256(seed || i as 8 bytes), so both ends can produce or verify any
length without sending a reference copy. Standard library only: this file is imported by
scripts that run inside the lab namespaces.
"""

import hashlib

BLOCK = 32
CHUNK_BLOCKS = 2048  # 64 KiB per chunk


def chunks(size, seed=b"dsrlb"):
    """Yield the first `size` bytes of the stream in chunks of up to 64 KiB."""
    i = 0
    left = size
    sha = hashlib.sha256
    while left > 0:
        n = min(CHUNK_BLOCKS, (left + BLOCK - 1) // BLOCK)
        buf = b"".join(sha(seed + (i + k).to_bytes(8, "big")).digest() for k in range(n))
        i += n
        if len(buf) > left:
            buf = buf[:left]
        left -= len(buf)
        yield buf


def data(size, seed=b"dsrlb"):
    return b"".join(chunks(size, seed))


class Verifier:
    """Feed received bytes in any chunking; tells whether they match the stream so far."""

    def __init__(self, seed=b"dsrlb"):
        self.seed = seed
        self.count = 0
        self.mismatch_at = None
        self._want = b""
        self._block = 0

    def feed(self, buf):
        if self.mismatch_at is None:
            while len(self._want) < len(buf):
                n = max(CHUNK_BLOCKS, (len(buf) - len(self._want)) // BLOCK + 1)
                self._want += b"".join(
                    hashlib.sha256(self.seed + (self._block + k).to_bytes(8, "big")).digest()
                    for k in range(n))
                self._block += n
            if self._want[:len(buf)] != buf:
                for k in range(len(buf)):
                    if self._want[k] != buf[k]:
                        self.mismatch_at = self.count + k
                        break
            self._want = self._want[len(buf):]
        self.count += len(buf)

    @property
    def ok(self):
        return self.mismatch_at is None
