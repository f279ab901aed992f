"""Writing a file so that nobody ever reads half of it: the pinned media and the static
export are read by web servers while they are written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Temporary files start with this, so a sweep can tell them from finished ones.
TEMP_PREFIX = ".tmp-"


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *, suffix: str = "") -> None:
    """Write through a temporary file in the same folder, flushed to disk, then rename:
    a reader sees the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
