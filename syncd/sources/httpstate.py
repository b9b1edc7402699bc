"""What the HTTP source remembers between runs: the validators (ETag, Last-Modified) of the last export
it handled, in state.dir, so an unchanged export is neither downloaded nor applied again.

Kept per URL: a changed source.url starts afresh. Written only after the export was handled (applied,
found a duplicate, or rejected), never after a failed run, so a failure is retried in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from syncd.plumbing import statedir

FILE = "http-source.json"


@dataclass(frozen=True)
class Validators:
    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


def load(state_dir: Path | None, url: str) -> Validators:
    if state_dir is None:
        return Validators()
    try:
        data = json.loads((state_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: ask unconditionally (costs one download)
        return Validators()
    if not isinstance(data, dict) or data.get("url") != url:
        return Validators()
    etag, modified = data.get("etag"), data.get("last_modified")
    return Validators(etag if isinstance(etag, str) else None, modified if isinstance(modified, str) else None)


def save(state_dir: Path | None, url: str, validators: Validators) -> None:
    if state_dir is None:
        return
    with statedir.writing(state_dir, "creating"):
        state_dir.mkdir(parents=True, exist_ok=True)
    data = {"url": url, "etag": validators.etag, "last_modified": validators.last_modified}
    statedir.write_private(state_dir / FILE, (json.dumps(data) + "\n").encode("utf-8"), "writing", state_dir)
