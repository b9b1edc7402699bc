"""Where exports come from: an SFTP server or a local folder, behind one small interface.

A source lists the files in its folder that match the pattern, tells complete ones from ones
still being written, downloads a complete one to a local path, and afterwards keeps, deletes
or moves it. `open_source` picks the implementation from the config.

`listing`: what a source lists and the `Source` interface; `sftp` (paramiko; `sftplist` lists a folder
with names that are not UTF-8), `ftp` (ftplib: FTP and FTPS), `http` (one export at a URL, http.client,
`httpstate` keeps its ETag) and `local`; `base`: what the folder sources share (markers, stable sizes,
names); `tls`: certificate checks for ftp and http.
"""

from __future__ import annotations

from syncd.config import SourceConfig
from syncd.sources.listing import Listing, Refused, RemoteFile, Source, Waiting

__all__ = ["Listing", "Refused", "RemoteFile", "Source", "Waiting", "open_source"]


def open_source(cfg: SourceConfig) -> Source:
    if cfg.type == "local":
        from syncd.sources.local import LocalSource

        return LocalSource(cfg)
    if cfg.type == "ftp":
        from syncd.sources.ftp import FtpSource

        return FtpSource(cfg)
    if cfg.type == "http":
        from syncd.sources.http import HttpSource

        return HttpSource(cfg)
    from syncd.sources.sftp import SftpSource

    return SftpSource(cfg)
