"""The file-like part the XML and JSON filters of known counterparties share (xmlsplit, jsonsplit).

A filter reads its source in large blocks, takes apart what it can in `_step()`, and queues pieces for
the parser: the file's own bytes, or placeholders for what it cut out. Once it meets something it does
not take apart it gives up, and from then on the rest of the file passes as it is read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from syncd.contract.raw import RawCounterparty
from syncd.formats.bytesource import ByteSource

READ: Final = 1 << 20


@dataclass(slots=True)
class Cut:
    """A counterparty as a filter saw it, in file order: one per counterparty it took apart.

    `digest` is None when the bytes gave no usable id (the reader then digests what the parser
    built). `head` (JSON) is the id, INN and KPP the digest was made with, as the bytes give them:
    the reader checks them against what ijson builds. `payment_ids` and `document_keys` are set when
    the parser got a placeholder instead of the counterparty.
    """

    cid: str = ""
    digest: str | None = None
    head: tuple[str | None, str | None, str | None] | None = None
    known_as: object = None
    payment_ids: list[str] | None = None
    document_keys: list[tuple[str, str | None]] | None = None

    def known_raw(self, index: int, line: int | None) -> RawCounterparty:
        """The counterparty the parser got a placeholder for: known by the digest of its bytes, its
        ids taken from them."""
        assert self.digest is not None and self.known_as is not None and self.payment_ids is not None
        raw = RawCounterparty(index, line, {"id": self.cid}, {}, payment_ids=self.payment_ids,
                              document_keys=self.document_keys)
        raw.digested, raw.known_as = (self.cid, self.digest), self.known_as
        return raw


class ByteFilter:
    def __init__(self, source: ByteSource, start: bytes = b"") -> None:
        self._source = source
        # Called at each counterparty cut out: the limits count the next one from there (formats.guard).
        # Plain file objects (the splitters' tests) have none.
        self._cut_done: Callable[[], None] = getattr(source, "counterparty_done", lambda: None)
        self._buf = start  # bytes read from the source and not yet handed on
        self._pos = 0  # where in _buf the next step starts
        self._eof = False
        self._passing = False  # given up: the bytes pass as they are
        self._out: deque[bytes] = deque()  # pieces for the parser
        self._out_size = 0
        self._head = 0  # how much of _out[0] was handed on already

    def read(self, size: int | None = -1) -> bytes:
        want = READ if size is None or size < 0 else size
        while self._out_size < want:
            if not self._passing:
                self._emit(self._step())
            elif self._pos < len(self._buf):
                self._emit(self._buf[self._pos:])
                self._buf, self._pos = b"", 0
            else:
                data = self._source_read()
                if not data:
                    break
                self._emit(data)
        return self._hand_on(want)

    def _step(self) -> bytes:
        """The next piece for the parser; `_give_up()` once there is nothing the filter takes apart."""
        raise NotImplementedError

    def _emit(self, piece: bytes) -> None:
        if piece:
            self._out.append(piece)
            self._out_size += len(piece)

    def _hand_on(self, want: int) -> bytes:
        """Up to `want` bytes of the queued pieces. A piece larger than a read is handed on from an
        offset, so it is copied once, not once per read."""
        parts: list[bytes] = []
        got = 0
        out = self._out
        while out and got < want:
            piece, start = out[0], self._head
            take = min(len(piece) - start, want - got)
            parts.append(piece if take == len(piece) else piece[start:start + take])
            got += take
            if start + take == len(piece):
                out.popleft()
                self._head = 0
            else:
                self._head = start + take
        self._out_size -= got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _source_read(self) -> bytes:
        if self._eof:
            return b""
        data = self._source.read(READ)
        if not data:
            self._eof = True
        return data

    def _more(self) -> bool:
        """Add what the source has next to the bytes not yet handed on; False at its end."""
        data = self._source_read()
        if not data:
            return False
        self._buf = self._buf[self._pos:] + data
        self._pos = 0
        return True

    def _advance(self, end: int) -> bytes:
        piece = self._buf[self._pos:end]
        self._pos = end
        return piece

    def _give_up(self) -> bytes:
        """Something the filter does not take apart: from here on the bytes pass as they are."""
        self._passing = True
        return self._advance(len(self._buf))
