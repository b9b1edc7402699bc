"""A stand-in for the writer's digest index (syncd.contract.raw.KnownDigests) in the filters' tests."""

from __future__ import annotations

import hashlib


class Known:
    """Digests of the bytes a filter hands over; `known` holds the ones to recognise."""

    def __init__(self, known: set[str] | None = None) -> None:
        self.known = known or set()
        self.seen: dict[str, str] = {}  # counterparty id -> digest of its bytes

    def digest(self, guid: str, inn: str | None, kpp: str | None, content: bytes) -> str:
        d = hashlib.blake2b(f"{guid}|{inn}|{kpp}|".encode() + content, digest_size=16).hexdigest()
        self.seen[guid] = d
        return d

    def find(self, digest: str) -> object | None:
        return ("row", digest) if digest in self.known else None
