"""Atomic report writing: a temporary file beside the target, then a rename, so no reader ever sees half a report.

A path that is a symbolic link is written through: the file it points to is replaced, the link is kept. A path
that exists and is not a regular file (a directory, a device, a FIFO) is never replaced: OSError.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from typing import Any


def write_text(path: str, text: str) -> None:
    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, "exists and is not a regular file, so it is not replaced by the report", path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    fd, tmp = tempfile.mkstemp(prefix=".verigrad-", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is as readable as any file written here
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # whatever stopped the write (Ctrl-C included): remove the temporary file, then re-raise
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str, document: Any) -> None:
    write_text(path, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
