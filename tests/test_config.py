"""The configuration is checked whole at start; each mistake names its key."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd import config
from syncd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def keyfiles(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "id_ed25519"
    known = tmp_path / "known_hosts"
    key.write_text("key")
    known.write_text("[127.0.0.1]:22 ssh-ed25519 AAAA")
    return key, known


def example(keyfiles: tuple[Path, Path]) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    data["source"]["private_key"] = str(keyfiles[0])
    data["source"]["known_hosts"] = str(keyfiles[1])
    return data


def test_example_config_is_valid_and_complete(keyfiles: tuple[Path, Path]) -> None:
    cfg = config.from_mapping(example(keyfiles))
    assert cfg.source.type == "sftp"
    assert cfg.source.min_age == timedelta(seconds=60)
    assert str(cfg.source.on_success) == "move:processed"
    assert str(cfg.source.on_failure) == "move:failed"
    assert cfg.source.timezone.key == "Europe/Moscow"
    assert cfg.database.password_env == "SYNCD_DB_PASSWORD"
    assert cfg.bitrix.on_missing == "zero"
    assert cfg.bitrix.max_missing_ratio == 0.2
    assert cfg.bitrix.blocks.payments_table == "contractor_payments"
    assert cfg.state.dir == Path("/var/lib/syncd")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("source", "colour", "blue", "unknown key source.colour"),
        ("source", "port", "22", "source.port must be an integer"),
        ("source", "min_age", "soon", "source.min_age: 'soon' is not a duration"),
        ("source", "on_failure", "delete", "source.on_failure: 'delete' is not keep or move:<dir>"),
        ("source", "on_success", "move:../x", "must be relative to remote_dir"),
        ("source", "timezone", "Mars/Base", "source.timezone: 'Mars/Base' is not a time zone"),
        ("source", "require_marker", "yes", "source.require_marker must be true or false"),
        ("bitrix", "on_missing", "drop", "bitrix.on_missing must be zero, delete or keep"),
        ("bitrix", "max_missing_ratio", 2, "bitrix.max_missing_ratio must be between 0 and 1"),
        ("bitrix", "balance_block", "balanceTable", "is not a valid HL-block name"),
        ("bitrix", "payments_table", "Pay-Ments", "is not a valid table name"),
        ("bitrix", "link_by", ["by_magic"], "bitrix.link_by: 'by_magic' is not a link strategy"),
        ("database", "url", "postgresql://x/y", "database.url must start with mysql+pymysql://"),
    ],
)
def test_bad_values_name_the_key(
    keyfiles: tuple[Path, Path], section: str, key: str, value: object, message: str
) -> None:
    data = example(keyfiles)
    data[section][key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.from_mapping(data)


def test_missing_required_key(keyfiles: tuple[Path, Path]) -> None:
    data = example(keyfiles)
    del data["source"]["host"]
    with pytest.raises(ConfigError, match=r"source\.host is required"):
        config.from_mapping(data)


def test_unreadable_key_file_is_refused(keyfiles: tuple[Path, Path], tmp_path: Path) -> None:
    data = example(keyfiles)
    data["source"]["private_key"] = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"source\.private_key: cannot read .*nope"):
        config.from_mapping(data)


def test_local_source_needs_only_a_path(tmp_path: Path) -> None:
    cfg = config.from_mapping(
        {"source": {"type": "local", "path": str(tmp_path)}, "database": {"url": "sqlite:///x.db"}}
    )
    assert cfg.source.path == tmp_path
    assert cfg.bitrix.link_by == ("user_field:UF_1C_CONTRACTOR_ID",)


def test_load_reports_file_and_toml_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_CONFIG, raising=False)
    with pytest.raises(ConfigError, match="pass --config PATH or set SYNCD_CONFIG"):
        config.load(None)
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    good = tmp_path / "good.toml"
    good.write_text(f'[source]\ntype = "local"\npath = "{tmp_path}"\n[database]\nurl = "sqlite://"\n[state]\nfoo = 1\n')
    with pytest.raises(ConfigError, match=r"good\.toml: unknown key state\.foo"):
        config.load(good)
    monkeypatch.setenv(config.ENV_CONFIG, str(good))
    good.write_text(f'[source]\ntype = "local"\npath = "{tmp_path}"\n[database]\nurl = "sqlite://"\n')
    assert config.load(None).source.type == "local"


def test_durations() -> None:
    assert config.parse_duration("90s") == timedelta(seconds=90)
    assert config.parse_duration("30m") == timedelta(minutes=30)
    assert config.parse_duration("2h") == timedelta(hours=2)
    assert config.parse_duration("250ms") == timedelta(milliseconds=250)
    assert config.parse_duration("15") == timedelta(seconds=15)
    with pytest.raises(ValueError, match="not a duration"):
        config.parse_duration("1 week")


def test_example_documents_every_key() -> None:
    """Each setting syncd reads appears in config.example.toml, set or commented out, under its section."""
    documented: dict[str, set[str]] = {}
    section = ""
    for line in (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.match(r"^#?\s*(\w+)\s*=", line):
            documented.setdefault(section, set()).add(m.group(1))
    expected = {
        "source": set(config.SourceConfig.__dataclass_fields__) - {"state_dir"},  # from [state] dir
        "database": set(config.DatabaseConfig.__dataclass_fields__),
        "bitrix": (set(config.BitrixConfig.__dataclass_fields__) - {"blocks"})
        | set(config.BlockNames.__dataclass_fields__),
        "state": set(config.StateConfig.__dataclass_fields__),
        "schedule": set(config.ScheduleConfig.__dataclass_fields__),
        "metrics": set(config.MetricsConfig.__dataclass_fields__),
    }
    for name, keys in expected.items():
        assert keys <= documented.get(name, set()), (name, keys - documented.get(name, set()))
