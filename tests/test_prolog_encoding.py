"""The XML byte shortcut must read the encoding exactly as libxml2 does, or step aside.

xmlsplit digests a counterparty's bytes together with the file's encoding; a known digest means
"these bytes, read in this encoding, were applied". libxml2 decides the encoding by the byte order
mark first and then by the XML declaration, which must be the very first thing in the file. A filter
that took the encoding from anywhere else (a processing instruction that merely has an `encoding`
pseudo-attribute, a declaration that a BOM overrides) would call unchanged bytes that the parser
now reads as other text, or refuses.

Each case applies a file once, then offers a second export holding the same counterparty bytes
behind another prolog: its verdict must be the one a full read (`syncd validate`) gives.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.admin.validate import check_file
from syncd.bitrix.hlblock import DigestIndex
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Unchanged
from syncd.errors import ExportError
from syncd.formats import open_export
from tests.exports import counterparty, guid, xml_export

MSK = ZoneInfo("Europe/Moscow")
BOM = b"\xef\xbb\xbf"
DECLARED_1251 = b'<?xml version="1.0" encoding="windows-1251"?>'


def _changes(path: Path, index: DigestIndex) -> list[Counterparty | Unchanged]:
    with open_export(path, name=path.name, source_tz=MSK) as export:
        return list(export.changes(index))


def _applied(path: Path, content: bytes) -> DigestIndex:
    """What the writer knows after applying `content`: the digest of every counterparty in it."""
    path.write_bytes(content)
    records = _changes(path, DigestIndex(b"salt", Linker(), []))
    assert all(isinstance(r, Counterparty) and r.digest for r in records)
    return DigestIndex(b"salt", Linker(), [(r.digest, n, None) for n, r in enumerate(records, 1)])


def _export_1251() -> bytes:
    content = xml_export([counterparty(1, payments=1), counterparty(2, documents=1)], encoding="windows-1251")
    assert content.startswith(DECLARED_1251) and "Контрагент".encode("cp1251") in content
    return content


@pytest.mark.parametrize(("why", "prolog"), [
    ("a UTF-8 BOM before a windows-1251 declaration: libxml2 follows the BOM", BOM + DECLARED_1251),
    ("no declaration, a processing instruction with an encoding pseudo-attribute",
     b'<?xml-stylesheet type="text/xsl" href="view.xsl" encoding="windows-1251"?>'),
    ("the declaration after a line break: not a declaration at all", b"\n" + DECLARED_1251),
    ("a UTF-16 BOM", b"\xff\xfe" + DECLARED_1251),
])
def test_counterparties_the_parser_would_refuse_are_never_taken_for_unchanged(
        tmp_path: Path, why: str, prolog: bytes) -> None:
    content = _export_1251()
    index = _applied(tmp_path / "first.xml", content)
    second = tmp_path / "second.xml"
    second.write_bytes(prolog + content[len(DECLARED_1251):])
    assert not check_file(second, name=second.name, source_tz=MSK).ok, why  # a full read refuses it

    with pytest.raises(ExportError):
        _changes(second, index)


def test_bytes_that_a_bom_makes_read_as_other_text_are_read_again(tmp_path: Path) -> None:
    # Declared windows-1251 but written in UTF-8: applied as 1251 mojibake. With a UTF-8 BOM in front,
    # the same bytes are the right text now, and the site must get it.
    content = xml_export([counterparty(1)], encoding="UTF-8").replace(b'encoding="UTF-8"', b'encoding="windows-1251"')
    index = _applied(tmp_path / "first.xml", content)
    second = tmp_path / "second.xml"
    second.write_bytes(BOM + content)

    (record,) = _changes(second, index)

    assert isinstance(record, Counterparty) and record.name == "ООО «Контрагент 1»"


@pytest.mark.parametrize("prolog", [b"", BOM, BOM + b'<?xml version="1.0" encoding="utf-8"?>',
                                    b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"])
def test_a_plain_prolog_keeps_the_shortcut(tmp_path: Path, prolog: bytes) -> None:
    # 1C writes UTF-8 with or without a BOM: the shortcut must still find the same bytes unchanged.
    content = xml_export([counterparty(1, payments=1), counterparty(2)])
    body = content[content.index(b"?>") + 2:]
    index = _applied(tmp_path / "first.xml", prolog + body)
    again = tmp_path / "again.xml"
    again.write_bytes(prolog + body)

    records = _changes(again, index)

    assert [type(r) for r in records] == [Unchanged, Unchanged]
    assert guid(1) in [r.id for r in records if isinstance(r, Unchanged)]
