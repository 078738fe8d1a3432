"""Report paths checked before anything is loaded or checked, so that a run never ends by losing its reports.

A report path is refused, with one line naming the option and the path, when it is empty or names a folder
(a directory, or ends with a separator), when it is the same file as another report's path (however spelled:
paths are compared after ``os.path.realpath``, and existing files by device and inode), when it is one of the
``.py`` files being checked, when it exists and is not a regular file (a character device, a FIFO, a socket:
writing a report replaces the path with a regular file), or when its folder cannot be created or written in.

Nothing is created here: a refused run leaves the file system as it found it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

#: The report options, in the order the reports are written.
KINDS = ("json", "markdown", "junit", "html")

_WHAT = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def _identity(path: str) -> tuple[str, tuple[int, int] | None]:
    """What a path refers to: its resolved spelling and, for an existing file, (device, inode)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return real, None
    return real, (st.st_dev, st.st_ino)


def _same(a: tuple[str, tuple[int, int] | None], b: tuple[str, tuple[int, int] | None]) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def _folder_problem(real: str) -> str | None:
    """Why the report cannot be created in its folder: the first existing ancestor must be a writable directory."""
    folder = os.path.dirname(real)
    while not os.path.lexists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not os.path.isdir(folder):
        return f"{folder} is not a directory, so the report's folder cannot be created"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in the folder {folder}"
    return None


def _own_problem(path: str) -> str | None:
    """What is wrong with one path on its own."""
    if not path:
        return "an empty path"
    if path.endswith((os.sep, "/")) or os.path.isdir(path):
        return "is a directory; give a file name"
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):  # not there yet: its folder decides
        mode = None
    except OSError as e:
        return f"cannot be examined: {e.strerror or e}"
    if mode is not None and not stat.S_ISREG(mode):
        what = _WHAT.get(stat.S_IFMT(mode), "not a regular file")
        return f"exists and is {what}, not a regular file; the report would replace it"
    return _folder_problem(real)


def report_path_problem(paths: Mapping[str, str | None], targets: Sequence[str], *, prefix: str = "--") -> str | None:
    """One line naming the first unusable report path (``{prefix}json PATH: why``), or None when all can be written.

    ``paths`` maps report kinds (``KINDS``) to the requested paths (None: not requested); ``targets`` are what the
    run checks (built-in names or files); ``prefix`` spells the options (``--verigrad-`` for the pytest plugin).
    """
    sources = [_identity(t) for t in targets if os.path.isfile(t)]
    seen: list[tuple[str, tuple[str, tuple[int, int] | None]]] = []
    for kind in KINDS:
        path = paths.get(kind)
        if path is None:
            continue
        said = f"{prefix}{kind} {path}"
        problem = _own_problem(path)
        if problem:
            return f"{said}: {problem}"
        me = _identity(path)
        if any(_same(me, source) for source in sources):
            return f"{said}: is a file being checked; the report would overwrite it"
        for other_kind, other in seen:
            if _same(me, other):
                return f"{said}: the same file as {prefix}{other_kind} {paths[other_kind]}; give each report its own path"
        seen.append((kind, me))
    return None
