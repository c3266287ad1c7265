"""Where files live and how they are written: the data root, atomic writes, locks."""

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import FileLock, Timeout


class WriteError(OSError):
    """A file could not be written (full disk, read-only folder); the message names it."""


def data_root():
    """The data root: ``$L2T_DATA``, else ``~/.cache/l2t``."""
    return Path(os.environ.get("L2T_DATA") or Path.home() / ".cache" / "l2t").expanduser()


def _failed(path, e):
    """The one-line WriteError of a failed write of ``path``."""
    why = (str(e).splitlines() or [repr(e)])[0]
    return WriteError(
        f"could not write {path} ({type(e).__name__}: {why}); is the disk full or the folder "
        f"read-only? The previous file, if any, is unchanged"
    )


def atomic_save(obj, path):
    """``torch.save`` to a temporary file, then rename: an interrupted or failed write leaves the old file as it
    was and no temporary file behind."""
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise _failed(path, e) from None


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically; processes writing the same path at once do not collide."""
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _failed(path, e) from None


def append_row(path, row):
    """Append ``row`` to a JSON-lines file; a failed write is one WriteError naming the file."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as e:
        raise _failed(path, e) from None


@contextmanager
def lock(path, busy=None):
    """Hold an exclusive lock on the file ``path`` for the block (``filelock``: flock on POSIX, msvcrt on Windows):
    wait for it, or, given ``busy`` (a message), refuse at once with that ValueError when another process holds it."""
    held = FileLock(str(path))
    try:
        held.acquire(timeout=0 if busy else -1)
    except Timeout:
        raise ValueError(busy) from None
    try:
        yield
    finally:
        held.release()
