"""Bounded resources (issue 13): the [limits], what counts them (syncd.formats.guard), and what a user sees.

The hostile files themselves are in tests/corpus (deep nesting, huge values and counterparties,
expansion bombs); here are the limits' arithmetic, their configuration, and the apply path, where
the byte filters read known counterparties before the parsers do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import resource
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import cli
from syncd.config import from_mapping
from syncd.contract.limits import MIB, Limits, parse_size
from syncd.errors import ConfigError, ExportError
from syncd.formats.guard import NODE_BYTES, Guard
from tests.ops_helpers import env, sql

CORPUS = Path(__file__).resolve().parent / "corpus"
SAMPLES = Path(__file__).resolve().parent.parent / "syncd" / "samples"


def _scan(data: bytes, limits: Limits, dialect: str = "json", cuts: list[int] | None = None) -> Guard:
    guard = Guard("f.json", limits, dialect)
    edges = [0, *(cuts or []), len(data)]
    for start, end in pairwise(edges):
        guard.scan(data[start:end])
    return guard


def _depth_of(data: bytes) -> int:
    """The JSON nesting depth, the slow obvious way."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# -- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [31, 32])
def test_nesting_up_to_the_limit_passes(depth: int) -> None:
    guard = _scan(b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}", Limits(max_depth=32))
    assert guard.position > 0


def test_nesting_past_the_limit_is_refused_naming_the_limit() -> None:
    with pytest.raises(ExportError) as caught:
        _scan(b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}", Limits(max_depth=32))
    assert "objects and arrays nested 33 deep or more: over the limit max_depth = 32" in str(caught.value)
    assert "raise max_depth in [limits]" in str(caught.value)


def test_brackets_inside_strings_neither_count_nor_hide_depth() -> None:
    limits = Limits(max_depth=8)
    _scan(b'{"a": "[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{ \\" [[[[[[[[[[[["}', limits)  # inside a string: no depth
    hidden = b'{"a": ' + b'["]]]]]]]]]]", ' * 9 + b"0" + b"]" * 9 + b"}"  # the strings must not close anything
    with pytest.raises(ExportError, match="max_depth"):
        _scan(hidden, limits)


@pytest.mark.parametrize(("text", "depth"), [
    (b'{"x": [{"s": "a\\\\", "t": "q\\"[{", "u": ["\\\\\\"]", {"v": [[["]"]]]}]}], '
     b'"w": {"k": "\\\\\\\\"}, "z": [[], [[]], {}]}', 8),
    # More escapes than are matched one by one in a block: the pattern's way.
    (b'{"a": [' + b'"\\"[\\\\", "\\n]", ' * 300 + b'{"b": [[1]]}]}', 5),
], ids=["few escapes", "many escapes"])
def test_depth_is_followed_exactly_across_any_split_of_the_blocks(text: bytes, depth: int) -> None:
    # Escapes, quotes and brackets cut at every place a read may cut them.
    json.loads(text)  # valid: every byte means what JSON says it means
    assert _depth_of(text) == depth
    rng = random.Random(13)
    for limit, refused in ((depth, False), (depth - 1, True)):
        for _ in range(300):
            cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
            if refused:
                with pytest.raises(ExportError, match="max_depth"):
                    _scan(text, Limits(max_depth=limit), cuts=cuts)
            else:
                assert _scan(text, Limits(max_depth=limit), cuts=cuts)._depth == 0


# -- values and counterparties -----------------------------------------------------------------


def test_a_value_is_measured_across_reads() -> None:
    limits = Limits(max_value_size=100)
    _scan(b'{"a": "' + b"x" * 100 + b'"}', limits, cuts=[10, 50, 90])
    with pytest.raises(ExportError, match=r"byte 108: a run of bytes without a '\"'.*max_value_size = 100"):
        _scan(b'{"a": "' + b"x" * 101 + b'"}', limits, cuts=[10, 50, 90])
    with pytest.raises(ExportError, match="max_value_size"):  # inside one read larger than the limit
        _scan(b'{"b": "", "a": "' + b"x" * 101 + b'"}', limits)


def test_an_xml_value_is_a_run_without_a_tag() -> None:
    with pytest.raises(ExportError, match="a run of bytes without a '<' \\(a text or attribute value"):
        _scan(b"<a>" + b"1" * 101 + b"</a>", Limits(max_value_size=100), "xml", cuts=[50])


def test_a_counterparty_is_measured_from_where_the_last_one_ended() -> None:
    limits = Limits(max_counterparty_size=1000)
    guard = Guard("f.xml", limits, "xml")
    guard.scan(b"x" * 900)
    guard.counterparty_done()  # the header
    guard.scan(b"x" * 900)
    guard.counterparty_done()  # counterparty #1
    guard.scan(b"x" * 900)
    with pytest.raises(ExportError, match=r"the counterparty after byte 1,800 is larger than a counterparty may be"):
        guard.scan(b"x" * 101)


def test_tiny_nodes_weigh_more_than_their_bytes() -> None:
    # lxml and ijson spend 100-250 bytes on a node: 8 MiB of `<a/>` would be ~300 MB of tree.
    nodes = 1000 // NODE_BYTES + 1
    with pytest.raises(ExportError, match="max_counterparty_size"):
        _scan(b"<a/>" * nodes, Limits(max_counterparty_size=1000), "xml")
    _scan(b"<a/>" * (nodes - 1), Limits(max_counterparty_size=1000), "xml")


def test_a_real_counterparty_weighs_about_its_size() -> None:
    for sample, dialect in (("settlements_sample.xml", "xml"), ("settlements_sample.json", "json")):
        data = (SAMPLES / sample).read_bytes()
        _scan(data, Limits(max_counterparty_size=len(data)), dialect)


# -- configuration and the command line ---------------------------------------------------------


def _config(limits: dict[str, object]) -> Limits:
    return from_mapping({"source": {"type": "local", "path": "/"}, "database": {"url": "sqlite://"},
                         "limits": limits}).limits


def test_limits_are_configured_and_default_far_above_real_exports() -> None:
    assert _config({}) == Limits(max_depth=32, max_counterparty_size=8 * MIB, max_value_size=MIB,
                                 max_expanded_size=4 << 30, max_expansion_ratio=200)
    assert _config({"max_counterparty_size": "32MiB", "max_value_size": 65536, "max_depth": 64,
                    "max_expanded_size": "10GiB", "max_expansion_ratio": 500}) == Limits(
        max_depth=64, max_counterparty_size=32 * MIB, max_value_size=65536, max_expanded_size=10 << 30,
        max_expansion_ratio=500)
    assert parse_size("2 GB") == 2_000_000_000 and parse_size("512KiB") == 512 << 10


@pytest.mark.parametrize(("limits", "message"), [
    ({"max_depht": 64}, "limits.max_depht: unknown limit 'max_depht' (expected one of max_depth, "),
    ({"max_depth": 0}, "limits.max_depth: max_depth must be above zero, got 0"),
    ({"max_depth": "64"}, "limits.max_depth: max_depth must be a whole number above zero, got '64'"),
    ({"max_value_size": "lots"}, "limits.max_value_size: 'lots' is not a size (expected e.g. 8MiB"),
    ({"max_expansion_ratio": True}, "limits.max_expansion_ratio: max_expansion_ratio must be a number"),
    ({"max_counterparty_size": "1MiB"}, 'limits.max_counterparty_size: max_counterparty_size must be at least "2MiB"'),
])
def test_a_bad_limit_is_named(limits: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(limits)
    assert message in str(caught.value)


def test_validate_takes_limits_as_options(tmp_path: Path) -> None:
    packed = tmp_path / "settlements.xml.gz"
    packed.write_bytes(gzip.compress((SAMPLES / "settlements_sample.xml").read_bytes()))
    result = CliRunner().invoke(cli, ["validate", "--limit", "max_expanded_size=1KiB", str(packed)])
    assert result.exit_code == 4, result.output
    assert "the gzip data expands to more than" in result.output
    assert 'over the limit max_expanded_size = "1KiB"' in result.output
    assert CliRunner().invoke(cli, ["validate", str(packed)]).exit_code == 0
    bad = CliRunner().invoke(cli, ["validate", "--limit", "max_expanded=1", str(packed)])
    assert bad.exit_code == 2 and "unknown limit 'max_expanded'" in bad.output


# -- the apply path: the byte filters read known counterparties first ------------------------------


def _huge_counterparty(dialect: str) -> tuple[bytes, bytes]:
    if dialect == "xml":
        return (b'  <Counterparty id="0c1f5e2a-1111-11ef-8c3e-00155d003f0a" name="Huge" currency="RUB">\n'
                b"    <Payments>\n",
                b'      <Payment id="c3a1e2f0-aa01-11ef-8c3e-00155d003f0a" number="1" date="2026-11-20" '
                b'sum="1.00" kind="bank"/>\n')
    return (b'{"id": "0c1f5e2a-1111-11ef-8c3e-00155d003f0a", "name": "Huge", "currency": "RUB", "payments": [',
            b'{"id": "c3a1e2f0-aa01-11ef-8c3e-00155d003f0a", "number": "1", "date": "2026-11-20", '
            b'"sum": "1.00", "kind": "bank"}, ')


def _second_export(sample: bytes, dialect: str, target: Path) -> None:
    """The sample again under a new export id, with a 256 MiB counterparty after the known ones."""
    text = sample.replace(b"2b0c4f5e-9a41-11ef-8c3e-00155d003f0a", b"2b0c4f5e-9a41-11ef-8c3e-00155d003f0b")
    text = text.replace(b"2026-11-25T10:00:00", b"2026-11-26T10:00:00")
    if dialect == "xml":
        cut = text.rindex(b"</Counterparty>") + len(b"</Counterparty>\n")
    else:
        cut = text.rindex(b'"openDocuments"')
        cut = text.index(b"]", cut)
        cut = text.index(b"}", cut) + 1
        text = text[:cut] + b", " + text[cut:]
        cut += 2
    head, payment = _huge_counterparty(dialect)
    block = payment * (MIB // len(payment))
    with gzip.open(target, "wb", compresslevel=1) as out:
        out.write(text[:cut] + head)
        for _ in range(256):
            out.write(block)


def _run_syncd(config: Path) -> tuple[int, str, float]:
    def cap() -> None:  # on a syncd without limits this fails with MemoryError instead of eating GBs
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env(), preexec_fn=cap)
    assert proc.stdout is not None
    try:
        output = proc.stdout.read()
    finally:
        _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), output, usage.ru_maxrss / 1024


@pytest.mark.parametrize(("sample", "dialect"), [("sample_1c.xml", "xml"), ("sample_1c_json.json", "json")])
def test_a_huge_counterparty_after_known_ones_is_refused_with_bounded_memory(
        sample: str, dialect: str, bitrix_db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "syncd.toml"
    config.write_text(f'[source]\ntype = "local"\npath = "{inbox}"\npattern = "*"\n\n[database]\n'
                      f'url = "{bitrix_db_url}"\n\n[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    first = inbox / f"1_{sample}"
    first.write_bytes((CORPUS / sample).read_bytes())
    os.utime(first, (0, 0))
    code, output, _ = _run_syncd(config)
    assert code == 0, output
    rows = sql(bitrix_db_url, "SELECT COUNT(*) FROM contractor_balance")
    assert rows > 0
    second = inbox / f"2_huge.{dialect}.gz"
    _second_export((CORPUS / sample).read_bytes(), dialect, second)
    os.utime(second, (0, 0))
    code, output, peak_mb = _run_syncd(config)
    assert code == 4, output
    assert "Traceback" not in output
    assert re.search(r"the counterparty after byte [\d,]+ is larger than a counterparty may be", output), output
    assert 'over the limit max_counterparty_size = "8MiB"' in output
    assert sql(bitrix_db_url, "SELECT COUNT(*) FROM contractor_balance") == rows
    assert sql(bitrix_db_url, "SELECT COUNT(*) FROM contractor_balance WHERE UF_NAME = 'Huge'") == 0
    assert (inbox / "failed" / second.name).exists()
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB"


def test_an_expansion_bomb_is_refused_while_it_downloads(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from syncd.formats import open_export
    from syncd.plumbing.pipe import Growing

    part = tmp_path / "settlements.json.gz"
    part.write_bytes((CORPUS / "expansion_bomb.json.gz").read_bytes())
    growing = Growing()
    growing.written(part, part.stat().st_size)
    growing.close(final=part)
    with pytest.raises(ExportError, match="over the limit max_expansion_ratio = 200"), \
            open_export(part, name=part.name, source_tz=ZoneInfo("UTC"), growing=growing.reader()) as export:
        for _ in export.counterparties():
            pass


class _Known:
    """Digests as the writer keeps them, in memory: a first pass records, a second finds."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.recording = True

    def digest(self, guid: str, inn: str | None, kpp: str | None, content: bytes) -> str:
        digest = hashlib.blake2b(f"{guid}|{inn}|{kpp}|".encode() + content, digest_size=16).hexdigest()
        if self.recording:
            self.seen.add(digest)
        return digest

    def find(self, digest: str) -> object | None:
        return None if self.recording or digest not in self.seen else (1, None)


@pytest.mark.parametrize("dialect", ["xml", "json"])
def test_known_counterparties_cut_out_by_the_filters_count_one_by_one(dialect: str, tmp_path: Path) -> None:
    # The byte filters read many known counterparties for each piece they hand the parser; each one
    # cut out ends a counterparty for the limits, or a file of them would be one huge counterparty.
    from zoneinfo import ZoneInfo

    from syncd.contract.records import Unchanged
    from syncd.formats import open_export
    from tests.data import build

    def ids(n: int, kind: int) -> str:
        return f"8f14e45f-ceea-11e9-{kind:04x}-{n:012x}"

    count = 12_000
    if dialect == "xml":
        text = build.xml_export(*(build.counterparty_xml(ids(n, 1), payments=[
            build.payment_xml(ids(n * 4 + k, 2)) for k in range(4)]) for n in range(count)))
    else:
        text = build.json_export(*(build.counterparty_json(ids(n, 1), payments=[
            build.payment_json(ids(n * 4 + k, 2)) for k in range(4)]) for n in range(count)))
    path = build.write(tmp_path, f"many.{dialect}", text)
    assert path.stat().st_size > 4 * MIB
    known, limits = _Known(), Limits(max_counterparty_size=2 * MIB)
    for recording in (True, False):
        known.recording = recording
        with open_export(path, name=path.name, source_tz=ZoneInfo("UTC"), limits=limits) as export:
            changes = list(export.changes(known))
        assert len(changes) == count
    assert all(isinstance(change, Unchanged) for change in changes)
