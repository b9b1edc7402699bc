"""An SFTP folder's listing that survives any name the server sends.

paramiko's SFTPClient.listdir_attr decodes every name as strict UTF-8: one file whose name is not
UTF-8 (a Windows-1251 name from an old 1C client) raised UnicodeDecodeError in every run until
someone removed it. Here such a name comes back with surrogate escapes, as os.listdir gives it, and
the listing's caller refuses it (base.unsafe_name) like any name that is not a plain file name.
"""

from __future__ import annotations

from typing import Protocol, cast

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR


class _Requests(Protocol):
    """The SFTPClient request primitive a listing uses; the type stubs leave it out."""

    def _request(self, t: int, *args: object) -> tuple[int | None, paramiko.Message | None]: ...


def listdir(sftp: paramiko.SFTPClient, folder: str) -> list[paramiko.SFTPAttributes]:
    """SFTPClient.listdir_attr (without `.` and `..`), names decoded with surrogateescape."""
    raw = cast(_Requests, sftp)
    t, msg = raw._request(CMD_OPENDIR, folder)
    if t != CMD_HANDLE or msg is None:
        raise paramiko.SFTPError(f"server answered the opening of {folder} with packet type {t}")
    handle = msg.get_binary()
    from_msg = getattr(paramiko.SFTPAttributes, "_from_msg")  # noqa: B009 - private, not in the stubs
    found: list[paramiko.SFTPAttributes] = []
    while True:
        try:
            t, msg = raw._request(CMD_READDIR, handle)
        except EOFError:  # SSH_FX_EOF: the end of the folder
            break
        if t != CMD_NAME or msg is None:
            raise paramiko.SFTPError(f"server answered a listing of {folder} with packet type {t}")
        for _ in range(msg.get_int()):
            name = msg.get_string().decode("utf-8", "surrogateescape")
            longname = msg.get_string().decode("utf-8", "surrogateescape")  # the `ls -l` line
            attrs = from_msg(msg, name, longname)  # read even for `.` and `..`: the next name follows them
            if name not in (".", ".."):
                found.append(attrs)
    raw._request(CMD_CLOSE, handle)
    return found
