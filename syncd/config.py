"""The configuration: a TOML file read once, checked whole, turned into frozen dataclasses.

Every problem names the key and what is expected, so an admin can fix the file without
reading code. Unknown keys are refused: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.contract.limits import Limits, parse_limit
from syncd.errors import ConfigError

ENV_CONFIG = "SYNCD_CONFIG"

OnMissing = Literal["zero", "delete", "keep"]
SourceType = Literal["sftp", "local", "ftp", "http"]
TlsMode = Literal["explicit", "implicit", "none"]
HttpAuth = Literal["none", "basic", "bearer"]


@dataclass(frozen=True)
class FileAction:
    """What happens to a source file after it was handled: keep, delete, or move into a folder."""

    kind: Literal["keep", "delete", "move"]
    dir: str = ""

    def __str__(self) -> str:
        return f"move:{self.dir}" if self.kind == "move" else self.kind


@dataclass(frozen=True)
class SourceConfig:
    type: SourceType
    timezone: ZoneInfo
    path: Path | None = None  # local
    host: str = ""
    port: int = 22
    username: str = ""
    private_key: Path | None = None
    password_env: str | None = None
    known_hosts: Path | None = None
    remote_dir: str = "."
    pattern: str = "settlements_*"
    min_age: timedelta = timedelta(seconds=60)
    require_marker: bool = False
    on_success: FileAction = FileAction("move", "processed")
    on_failure: FileAction = FileAction("move", "failed")
    connect_timeout: timedelta = timedelta(seconds=30)
    io_timeout: timedelta = timedelta(seconds=60)
    apply_while_downloading: bool = False
    # ftp and http: TLS. Verified against the system CAs, or ca_file, or pinned to tls_fingerprint.
    tls: TlsMode = "explicit"
    allow_plaintext: bool = False
    ca_file: Path | None = None
    tls_fingerprint: str | None = None  # sha256 of the server certificate (DER), lower-case hex
    passive: bool = True  # ftp
    url: str = ""  # http
    auth: HttpAuth = "none"  # http
    token_env: str | None = None  # http bearer
    state_dir: Path | None = None  # http: where the last export's ETag is kept ([state] dir)

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    password_env: str | None = None

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


@dataclass(frozen=True)
class BlockNames:
    balance_block: str = "ContractorBalance"
    balance_table: str = "contractor_balance"
    payments_block: str = "ContractorPayments"
    payments_table: str = "contractor_payments"
    documents_block: str = "ContractorDocuments"
    documents_table: str = "contractor_documents"


@dataclass(frozen=True)
class BitrixConfig:
    timezone: ZoneInfo
    document_root: Path | None = None
    on_missing: OnMissing = "zero"
    max_missing_ratio: float = 0.2
    # How far ahead of this host's clock an export's generatedAt (or a stored as-of time) may be.
    max_clock_skew: timedelta = timedelta(minutes=10)
    link_by: tuple[str, ...] = ("user_field:UF_1C_CONTRACTOR_ID",)
    blocks: BlockNames = field(default_factory=BlockNames)


@dataclass(frozen=True)
class StateConfig:
    dir: Path
    keep_applied: int = 20


@dataclass(frozen=True)
class ScheduleConfig:
    interval: timedelta | None = timedelta(minutes=30)
    jitter: timedelta = timedelta(0)
    cron: str | None = None
    run_timeout: timedelta = timedelta(minutes=20)
    misfire_grace: timedelta = timedelta(minutes=5)
    watch: timedelta | None = timedelta(seconds=60)  # list the source this often between runs; None: off

    def watch_every(self) -> float | None:
        """Seconds between the daemon's listings of the source, or None when watching is off: turned off,
        or not shorter than the interval (every run lists the source anyway)."""
        if self.watch is None or (self.interval is not None and self.watch >= self.interval):
            return None
        return self.watch.total_seconds()


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None


@dataclass(frozen=True)
class Config:
    source: SourceConfig
    database: DatabaseConfig
    bitrix: BitrixConfig
    state: StateConfig
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    path: Path | None = None
    limits: Limits = field(default_factory=Limits)


# ---------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `250ms` or a bare number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (expected e.g. 60s, 30m, 2h)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_file_action(text: str, *, allow_delete: bool) -> FileAction:
    if text == "keep":
        return FileAction("keep")
    if text == "delete" and allow_delete:
        return FileAction("delete")
    if text.startswith("move:") and text[5:].strip("/ "):
        target = text[5:].strip()
        if target.startswith("/") or ".." in Path(target).parts:
            raise ValueError(f"{text!r}: the folder must be relative to remote_dir, without '..'")
        return FileAction("move", target.strip("/"))
    choices = "keep, delete or move:<dir>" if allow_delete else "keep or move:<dir>"
    raise ValueError(f"{text!r} is not {choices}")


def parse_zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not a time zone name (expected e.g. Europe/Moscow)") from None


_HL_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_TABLE_NAME = re.compile(r"^[a-z0-9_]+$")


def _block_name(text: str) -> str:
    if not _HL_NAME.match(text) or text.endswith("Table") or len(text) > 100:
        raise ValueError(
            f"{text!r} is not a valid HL-block name (A-Z first, letters and digits, not ending in 'Table')"
        )
    return text


def _table_name(text: str) -> str:
    if not _TABLE_NAME.match(text) or len(text) > 64:
        raise ValueError(f"{text!r} is not a valid table name (lower-case letters, digits, _)")
    return text


_LINK = re.compile(r"^(manual|xml_id|user_field:UF_[A-Z0-9_]+|inn:UF_[A-Z0-9_]+(,kpp:UF_[A-Z0-9_]+)?)$")


def _link_strategy(text: str) -> str:
    if not _LINK.match(text):
        raise ValueError(
            f"{text!r} is not a link strategy (expected manual, xml_id, user_field:UF_FIELD, "
            "inn:UF_FIELD or inn:UF_FIELD,kpp:UF_FIELD)"
        )
    return text


# ---------------------------------------------------------------- table reader

T = TypeVar("T")


class _Section:
    """Reads one TOML table, remembering which keys were used so the rest can be refused."""

    def __init__(self, name: str, data: Any):
        if not isinstance(data, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        self.name = name
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def get(self, key: str, kind: type[T], default: T | None = None, *, required: bool = False) -> T | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self._key(key)} is required ({_kind_name(kind)})")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{self._key(key)} must be {_kind_name(kind)}, got {value!r}")
        return value

    def parsed(self, key: str, parse: Callable[[str], T], default: T, *, required: bool = False) -> T:
        text = self.get(key, str, required=required)
        if text is None:
            return default
        try:
            return parse(text)
        except ValueError as exc:
            raise ConfigError(f"{self._key(key)}: {exc}") from None

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"unknown key {self.name}.{unknown[0]} (check the spelling against config.example.toml)")


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}.get(
        kind, kind.__name__
    )


def _readable_file(section: _Section, key: str) -> Path | None:
    text = section.get(key, str)
    if text is None:
        return None
    path = Path(text)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{section.name}.{key}: cannot read {path}: {exc.strerror}") from None
    return path


# ---------------------------------------------------------------- sections


_SFTP_KEYS = frozenset({"host", "port", "username", "private_key", "password_env", "known_hosts", "remote_dir"})


def _source(s: _Section) -> SourceConfig:
    kind = s.get("type", str, "sftp")
    zone = s.parsed("timezone", parse_zone, ZoneInfo("Europe/Moscow"))
    common: dict[str, Any] = dict(
        timezone=zone,
        pattern=s.get("pattern", str, "settlements_*"),
        min_age=s.parsed("min_age", parse_duration, timedelta(seconds=60)),
        require_marker=s.get("require_marker", bool, False),
        on_success=s.parsed(
            "on_success", lambda t: parse_file_action(t, allow_delete=True), FileAction("move", "processed")
        ),
        on_failure=s.parsed(
            "on_failure", lambda t: parse_file_action(t, allow_delete=False), FileAction("move", "failed")
        ),
        connect_timeout=s.parsed("connect_timeout", parse_duration, timedelta(seconds=30)),
        io_timeout=s.parsed("io_timeout", parse_duration, timedelta(seconds=60)),
        apply_while_downloading=s.get("apply_while_downloading", bool, False),
    )
    if kind == "local":
        sftp_only = sorted(k for k in s.data if k in _SFTP_KEYS)
        if sftp_only:
            raise ConfigError(f"source.{sftp_only[0]} belongs to type = \"sftp\"; with type = \"local\" remove "
                              f"{', '.join('source.' + k for k in sftp_only)} (a local source takes only path)")
        path = s.get("path", str, required=True)
        assert path is not None
        s.finish()
        return SourceConfig(type="local", path=Path(path), **common)
    if kind == "http":
        return _http_source(s, common)
    if kind not in ("sftp", "ftp"):
        raise ConfigError(f"source.type must be \"sftp\", \"ftp\", \"http\" or \"local\", got {kind!r}")
    host = s.get("host", str, required=True)
    username = s.get("username", str, required=True)
    if kind == "ftp":
        return _ftp_source(s, common, host or "", username or "")
    port = _port(s, 22)
    key = _readable_file(s, "private_key")
    password_env = s.get("password_env", str)
    if key is None and password_env is None:
        raise ConfigError("source: set private_key (a key file) or password_env (a variable holding the password)")
    known_hosts = _readable_file(s, "known_hosts")
    if known_hosts is None:
        raise ConfigError("source.known_hosts is required: a file holding the server's host key (ssh-keyscan)")
    remote_dir = s.get("remote_dir", str, ".")
    s.finish()
    return SourceConfig(
        type="sftp",
        host=host or "",
        port=port,
        username=username or "",
        private_key=key,
        password_env=password_env,
        known_hosts=known_hosts,
        remote_dir=remote_dir or ".",
        **common,
    )


def _port(s: _Section, default: int) -> int:
    port = s.get("port", int, default)
    assert port is not None
    if not 0 < port < 65536:
        raise ConfigError(f"source.port must be 1..65535, got {port}")
    return port


def parse_fingerprint(text: str) -> str:
    """`SHA256:AB:CD:…`, `ab cd …` or 64 hex digits → 64 lower-case hex digits."""
    digits = re.sub(r"[\s:]", "", text.removeprefix("SHA256:").removeprefix("sha256:")).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed: "
                         "openssl x509 -noout -fingerprint -sha256 -in server.crt)")
    return digits


def _tls_keys(s: _Section, plaintext: bool) -> dict[str, Any]:
    """ca_file, tls_fingerprint and allow_plaintext; `plaintext`: the connection would be clear text."""
    allow = s.get("allow_plaintext", bool, False)
    if plaintext and not allow:
        what = 'tls = "none"' if s.data.get("type") == "ftp" else "an http:// url"
        raise ConfigError(f"source: {what} sends "
                          "the password and the exports in clear text; use TLS, or set allow_plaintext = true "
                          "on a network you trust")
    ca_file = _readable_file(s, "ca_file")
    pin = s.parsed("tls_fingerprint", parse_fingerprint, None)
    if plaintext and (ca_file or pin):
        raise ConfigError("source: ca_file and tls_fingerprint need TLS, and this source has none")
    return dict(allow_plaintext=bool(allow), ca_file=ca_file, tls_fingerprint=pin)


def _ftp_source(s: _Section, common: dict[str, Any], host: str, username: str) -> SourceConfig:
    tls = s.get("tls", str, "explicit")
    if tls not in ("explicit", "implicit", "none"):
        raise ConfigError(f"source.tls must be explicit, implicit or none, got {tls!r}")
    port = _port(s, 990 if tls == "implicit" else 21)
    password_env = s.get("password_env", str, required=True)
    tls_keys = _tls_keys(s, tls == "none")
    passive = s.get("passive", bool, True)
    remote_dir = s.get("remote_dir", str, ".")
    s.finish()
    return SourceConfig(type="ftp", host=host, port=port, username=username, password_env=password_env,
                        remote_dir=remote_dir or ".", tls=tls, passive=bool(passive),  # type: ignore[arg-type]
                        **tls_keys, **common)


_NOT_FOR_HTTP = ("pattern", "min_age", "require_marker", "on_success", "on_failure", "apply_while_downloading")


def _http_source(s: _Section, common: dict[str, Any]) -> SourceConfig:
    for key in _NOT_FOR_HTTP:
        if key in s.data:
            raise ConfigError(f"source.{key} does not apply to type = \"http\" (one export at one URL; an "
                              "unchanged one is recognised by its ETag)")
    url = s.get("url", str, required=True) or ""
    if not re.match(r"^https?://[^/?#\s]+", url) or any(c.isspace() for c in url):
        raise ConfigError(f"source.url must be an http:// or https:// URL, got {url!r}")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError("source.url must not hold credentials (user:password@): use auth with username and "
                          "password_env, so the password stays out of the file")
    auth = s.get("auth", str, "none")
    username = s.get("username", str, "") or ""
    password_env = s.get("password_env", str)
    token_env = s.get("token_env", str)
    if auth == "basic" and (not username or not password_env):
        raise ConfigError("source.auth = \"basic\" needs username and password_env")
    if auth == "bearer" and not token_env:
        raise ConfigError("source.auth = \"bearer\" needs token_env (the NAME of a variable holding the token)")
    if auth not in ("none", "basic", "bearer"):
        raise ConfigError(f"source.auth must be none, basic or bearer, got {auth!r}")
    tls_keys = _tls_keys(s, url.startswith("http://"))
    s.finish()
    return SourceConfig(type="http", url=url, auth=auth, username=username,  # type: ignore[arg-type]
                        password_env=password_env, token_env=token_env, **tls_keys, **common)


# scheme://[user[:password]@]host[:port]/…: the port, if any (an IPv6 host is in brackets).
_URL_PORT = re.compile(r"^[^:/]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?\[]*)(?::(?P<port>[^/?]*))?")


def _database(s: _Section) -> DatabaseConfig:
    url = s.get("url", str, required=True)
    assert url is not None
    if not re.match(r"^(mysql(\+pymysql)?|mariadb(\+pymysql)?|sqlite)://", url):
        raise ConfigError(f"database.url must start with mysql+pymysql:// (or sqlite:// for the demo), got {url.split('://')[0]}://…")
    port = _URL_PORT.match(url)
    if port and port.group("port") and not port.group("port").isdigit():
        raise ConfigError(f"database.url: the port {port.group('port')!r} is not a number "
                          "(expected mysql+pymysql://user@host:3306/dbname)")
    cfg = DatabaseConfig(url=url, password_env=s.get("password_env", str))
    s.finish()
    return cfg


def _bitrix(s: _Section) -> BitrixConfig:
    zone = s.parsed("timezone", parse_zone, ZoneInfo("Europe/Moscow"))
    root = s.get("document_root", str, "")
    on_missing = s.get("on_missing", str, "zero")
    if on_missing not in ("zero", "delete", "keep"):
        raise ConfigError(f"bitrix.on_missing must be zero, delete or keep, got {on_missing!r}")
    ratio = s.get("max_missing_ratio", float, 0.2)
    assert ratio is not None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"bitrix.max_missing_ratio must be between 0 and 1, got {ratio}")
    skew = s.parsed("max_clock_skew", parse_duration, timedelta(minutes=10))
    links = s.get("link_by", list, ["user_field:UF_1C_CONTRACTOR_ID"])
    assert links is not None
    try:
        link_by = tuple(_link_strategy(str(x)) for x in links)
    except ValueError as exc:
        raise ConfigError(f"bitrix.link_by: {exc}") from None
    defaults = BlockNames()
    names: dict[str, str] = {}
    for key in BlockNames.__dataclass_fields__:
        check = _table_name if key.endswith("_table") else _block_name
        names[key] = s.parsed(key, check, getattr(defaults, key))
    s.finish()
    return BitrixConfig(
        timezone=zone,
        document_root=Path(root) if root else None,
        on_missing=on_missing,  # type: ignore[arg-type]
        max_missing_ratio=ratio,
        max_clock_skew=skew,
        link_by=link_by,
        blocks=BlockNames(**names),
    )


def _state(s: _Section) -> StateConfig:
    d = s.get("dir", str, "/var/lib/syncd")
    keep = s.get("keep_applied", int, 20)
    assert d is not None and keep is not None
    s.finish()
    return StateConfig(dir=Path(d), keep_applied=keep)


def _schedule(s: _Section) -> ScheduleConfig:
    cron = s.get("cron", str)
    interval = s.parsed("interval", parse_duration, None if cron else timedelta(minutes=30))
    if cron and s.data.get("interval") is not None:
        raise ConfigError("schedule: set interval or cron, not both")
    if cron is not None and len(cron.split()) != 5:
        raise ConfigError(f"schedule.cron must have 5 fields (min hour day month weekday), got {cron!r}")
    if interval is not None and interval <= timedelta(0):
        raise ConfigError("schedule.interval must be positive")
    watch_default: timedelta | None = timedelta(seconds=60)
    cfg = ScheduleConfig(
        interval=interval,
        cron=cron,
        jitter=s.parsed("jitter", parse_duration, timedelta(0)),
        run_timeout=s.parsed("run_timeout", parse_duration, timedelta(minutes=20)),
        misfire_grace=s.parsed("misfire_grace", parse_duration, timedelta(minutes=5)),
        watch=s.parsed("watch", _watch, watch_default),
    )
    s.finish()
    return cfg


def _watch(text: str) -> timedelta | None:
    """schedule.watch: a duration of at least 1s, or `off` (also `0`)."""
    if text.strip().lower() in ("off", "0", "0s"):
        return None
    value = parse_duration(text)
    if value < timedelta(seconds=1):
        raise ValueError(f"{text!r} is too short: at least 1s, or \"off\"")
    return value


def _metrics(s: _Section) -> MetricsConfig:
    listen = s.get("listen", str)
    if listen is not None and not re.match(r"^[\w.\-\[\]:]+:\d+$", listen):
        raise ConfigError(f"metrics.listen must be HOST:PORT, got {listen!r}")
    s.finish()
    return MetricsConfig(listen=listen)


def _limits(s: _Section) -> Limits:
    values: dict[str, int] = {}
    for key in s.data:
        try:
            values[key] = parse_limit(key, s.data[key])
        except ValueError as exc:
            raise ConfigError(f"limits.{key}: {exc}") from None
    return Limits(**values)


def from_mapping(data: Mapping[str, Any], path: Path | None = None) -> Config:
    sections = {"source", "database", "bitrix", "state", "schedule", "metrics", "limits"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (expected one of {', '.join(sorted(sections))})")
    for required in ("source", "database"):
        if required not in data:
            raise ConfigError(f"[{required}] section is required")
    state = _state(_Section("state", data.get("state", {})))
    source = replace(_source(_Section("source", data["source"])), state_dir=state.dir)
    return Config(
        source=source,
        database=_database(_Section("database", data["database"])),
        bitrix=_bitrix(_Section("bitrix", data.get("bitrix", {}))),
        state=state,
        schedule=_schedule(_Section("schedule", data.get("schedule", {}))),
        metrics=_metrics(_Section("metrics", data.get("metrics", {}))),
        path=path,
        limits=_limits(_Section("limits", data.get("limits", {}))),
    )


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config from PATH, else $SYNCD_CONFIG. Raises ConfigError with the reason."""
    if path is None:
        path = os.environ.get(ENV_CONFIG)
        if not path:
            raise ConfigError(f"no configuration: pass --config PATH or set {ENV_CONFIG}")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return from_mapping(data, p)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
