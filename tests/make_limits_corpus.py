"""Writes the resource-limit cases of tests/corpus (issue 13): `python -m tests.make_limits_corpus`.

Each is a few hundred KB at most on disk and expands to what would exhaust memory or CPU without
the limits (syncd.contract.limits). Deterministic, so rewriting them leaves git clean.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
MIB = 1 << 20

_HEAD_JSON = ('{"formatVersion": 1, "exportId": "2b0c4f5e-9a41-11ef-8c3e-00155d003f0a", '
              '"generatedAt": "2026-11-25T10:00:00", "mode": "full", "paymentsFrom": "2026-08-01", '
              '"counterparties": [')
_HEAD_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<SettlementsExport formatVersion="1" '
             'exportId="2b0c4f5e-9a41-11ef-8c3e-00155d003f0a" generatedAt="2026-11-25T10:00:00" '
             'mode="full" paymentsFrom="2026-08-01">\n')
_CP_JSON = '{"id": "8f14e45f-ceea-11e9-88ba-00155d003f0a", "inn": "7701234567", "name": "A", "currency": "RUB", '
_CP_XML = '  <Counterparty id="8f14e45f-ceea-11e9-88ba-00155d003f0a" inn="7701234567" name="A" currency="RUB">\n'
_PAYMENT_JSON = ('{"id": "c3a1e2f0-aa01-11ef-8c3e-00155d003f0a", "number": "00УТ-000123", '
                 '"date": "2026-11-20T12:30:00", "sum": "10000.00", "kind": "bank"}, ')
_PAYMENT_XML = ('      <Payment id="c3a1e2f0-aa01-11ef-8c3e-00155d003f0a" number="00УТ-000123" '
                'date="2026-11-20T12:30:00" sum="10000.00" kind="bank"/>\n')


def _repeat(piece: bytes, total: int) -> Iterator[bytes]:
    block = piece * max(1, MIB // len(piece))
    for _ in range(total // len(block)):
        yield block


def _gzip(name: str, parts: Iterator[bytes]) -> None:
    buffer = io.BytesIO()
    # mtime=0: the same bytes on every run
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as out:
        for part in parts:
            out.write(part)
    (CORPUS / name).write_bytes(buffer.getvalue())


def _zip(name: str, member: str, parts: Iterator[bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo(member, date_time=(2026, 11, 25, 10, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as out:
            for part in parts:
                out.write(part)
    (CORPUS / name).write_bytes(buffer.getvalue())


_SMALL_CP_JSON = (b'{"id": "8f14e45f-ceea-11e9-88ba-00155d003f0a", "name": "A", "currency": "RUB", "debt": "1.00", '
                  b'"payable": "0.00", "overdueDebt": "0.00", "creditLimit": "0.00", "payments": [], '
                  b'"openDocuments": []},\n')


def main() -> None:
    depth = 100_000
    (CORPUS / "deep_nesting.json").write_bytes(
        (_HEAD_JSON + _CP_JSON + '"payments": ' + "[" * depth + "]" * depth + "}]}").encode())
    _gzip("deep_nesting_bomb.json.gz", iter([(_HEAD_JSON + _CP_JSON + '"payments": ').encode(), b"[" * 1_000_000]))
    (CORPUS / "deep_nesting_xml.xml").write_bytes(
        (_HEAD_XML + _CP_XML + "<a>" * 10_000 + "</a>" * 10_000 + "</Counterparty></SettlementsExport>").encode())
    _gzip("huge_string.json.gz", iter([(_HEAD_JSON + _CP_JSON + '"purpose": "').encode(),
                                       *_repeat(b"a", 512 * MIB), b'"}]}']))
    _gzip("huge_header_value.json.gz", iter([b'{"formatVersion": 1, "exportId": "', *_repeat(b"a", 512 * MIB)]))
    _gzip("huge_text.xml.gz", iter([(_HEAD_XML + _CP_XML + "    <Debt>").encode(), *_repeat(b"1", 512 * MIB),
                                    b"</Debt></Counterparty></SettlementsExport>"]))
    _gzip("huge_counterparty_xml.xml.gz", iter([(_HEAD_XML + _CP_XML + "    <Payments>\n").encode(),
                                            *_repeat(_PAYMENT_XML.encode(), 64 * MIB)]))
    _gzip("huge_counterparty_json.json.gz", iter([(_HEAD_JSON + _CP_JSON + '"payments": [').encode(),
                                             *_repeat(_PAYMENT_JSON.encode(), 64 * MIB)]))
    # Nodes of a few bytes each: lxml and ijson spend 100-250 bytes of memory on every one.
    _gzip("tiny_nodes_xml.xml.gz", iter([(_HEAD_XML + _CP_XML + "    <Payments>\n").encode(),
                                         *_repeat(b'<a b="" c=""/>', 32 * MIB)]))
    _gzip("tiny_nodes_json.json.gz", iter([(_HEAD_JSON + _CP_JSON + '"payments": [').encode(),
                                           *_repeat(b'{"a": {"": ""}}, ', 32 * MIB)]))
    # Small counterparties by the million (one id, refused at the end as seen twice): each passes every
    # per-counterparty limit, the whole expands to 160 MiB from well under 1 MB.
    bomb = [_HEAD_JSON.encode(), *_repeat(_SMALL_CP_JSON, 160 * MIB)]
    _gzip("expansion_bomb.json.gz", iter(bomb))
    _zip("expansion_bomb_zip.zip", "settlements.json", iter(bomb))


if __name__ == "__main__":
    main()
