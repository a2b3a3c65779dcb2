"""Atomic writes: a reader (or a crash) sees the old content or the new, never a mix.

Files are written to a temporary sibling and ``os.replace``d into place; folders are
filled in a temporary sibling and swapped in with one ``renameat2(RENAME_EXCHANGE)``
on Linux (two renames elsewhere, with the previous version kept aside until the second
one is done), the previous version removed only after. Leftovers of a process that died
mid-write are cleaned up by the next write of the same folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (world-readable, like a plain write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; these are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _libc_renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_RENAMEAT2 = _libc_renameat2()


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2``); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: kernel or file system cannot exchange
        return False
    raise OSError(error, os.strerror(error), str(b))


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (one owned by another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: str | Path) -> None:
    """Remove what writers of ``path`` that died mid-write left beside it.

    A temporary folder of a dead process is removed. A previous version set aside by a
    dead process (it died between the two renames) is put back if ``path`` is missing,
    removed otherwise.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(tmp|old)-(\d+)(-.*)?$")
    for sibling in path.parent.iterdir():
        match = pattern.match(sibling.name)
        if match is None or pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not path.exists():
            os.replace(sibling, path)
        else:
            shutil.rmtree(sibling, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    On an exception the temporary folder is removed and ``path`` is left untouched.
    Temporary names start with a dot, so listings that skip hidden folders never see them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a dashboard run by another user must read it
        if path.exists() and exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the previous version
            return
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
