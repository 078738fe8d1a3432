"""Atomic report writing: a temporary file beside the target, then a rename, so no reader ever sees half a report."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_text(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".verigrad-", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
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
