"""Logging: one line per event on stderr, plain, journald-friendly or JSON, never with a secret in it.

- On a terminal or in a file: `2026-11-25 10:00:00 INFO syncd.runner: applied …`.
- Under systemd (JOURNAL_STREAM names our stderr): no timestamp (journald adds its own) and a
  `<N>` syslog priority prefix, so `journalctl -p warning` works.
- `--log-format json`: one JSON object per line for log shippers.

Every handler carries SecretFilter: passwords in URLs, `password=…` pairs and the values of the
configured password variables are replaced by `***` in the message and in tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import IO, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config import Config

LogFormat = Literal["text", "json"]

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?P<tail>@)")
_PAIR = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|passphrase|token|api[_-]?key)\b[\"']?\s*[=:]\s*[\"']?)"
    # MySQL's own "(using password: YES)" / "NO)" says whether one was sent: it is no secret, keep it whole.
    r"(?P<secret>(?!(?:YES|NO)\))[^\s\"'&;,}]+)",
    re.IGNORECASE,
)

# syslog priorities (sd-daemon(3)): what journald reads from a `<N>` prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
    return _PAIR.sub(lambda m: m.group("head") + MASK, text)


class SecretFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with secrets masked; drops nothing."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        # Short values would mask innocent text everywhere; a real password is longer.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, as the raw template
            message = str(record.msg)
        record.msg = mask(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.secrets)
        return True


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        # journald reads the prefix per line: a traceback keeps the record's priority on every line.
        return "\n".join(prefix + line for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            obj["exc"] = record.exc_text
        return json.dumps(obj, ensure_ascii=False)


def show_time(moment: datetime | None, zone: tzinfo) -> str:
    """A time as a person reads it, the same in every command: in `zone` and saying so,
    `2026-11-25 10:00:00 +03:00`. A naive time is UTC (the ledger's)."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    local = aware.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.isoformat()[-6:]}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 payment`, `2 payments`, `0 payments`."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def error_line(message: str, fmt: LogFormat = "text", secrets: Iterable[str] = ()) -> str:
    """The one line that ends a failed command: `syncd: error: …`, or a JSON object like every log line."""
    message = mask(message, secrets)
    if fmt != "json":
        return f"syncd: error: {message}"
    record = logging.LogRecord("syncd", logging.ERROR, "", 0, message, None, None)
    return JsonFormatter().format(record)


def under_journald(stream: IO[str]) -> bool:
    """JOURNAL_STREAM is `dev:inode` of the stream systemd connected; it must be ours, not inherited."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def config_secrets(cfg: Config | None) -> list[str]:
    """The secret values this configuration can lead to: the password variables' values, a URL password."""
    if cfg is None:
        return []
    found: list[str | None] = [cfg.database.password(), cfg.source.password(), cfg.source.token()]
    with contextlib.suppress(ArgumentError):
        found.append(make_url(cfg.database.url).password)
    return [s for s in found if s]


def setup(
    *,
    level: int = logging.WARNING,
    fmt: LogFormat = "text",
    cfg: Config | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Replace the root logger's handlers with one on stderr; callable again (after a config reload)."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif under_journald(out):
        formatter = JournalFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handler.setFormatter(formatter)
    handler.addFilter(SecretFilter(config_secrets(cfg)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job start and end at INFO; one line per sync is ours to write.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    logging.getLogger("paramiko").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    return handler
