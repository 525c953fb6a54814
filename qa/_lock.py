"""One writer at a time per embedded index, across processes.

Chroma's embedded store is one folder that several local processes may open (``qa serve``
and a ``qa ingest`` in another terminal, or several API workers). Each keeps the vector
index it loaded in memory, so two processes writing at once would each persist their own
view. Every write (ingest, upload, delete) therefore holds an exclusive ``flock`` on
``<index dir>/write.lock``; the kernel releases it when the holder exits, however it exits,
so a killed writer never leaves the index locked. The file names the holder for messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from qa._errors import IndexBusy, IndexWriteError

LOCK_FILE = "write.lock"
_RETRY_INTERVAL_S = 0.1


def _holder(handle) -> str:
    handle.seek(0)
    text = handle.read().strip()
    return f"process {text}" if text else "another process"


@contextlib.contextmanager
def exclusive_writer(index_dir: Path, wait_s: float, what: str) -> Iterator[None]:
    """Hold the index's write lock for the block; :class:`IndexBusy` after ``wait_s`` seconds
    of another process holding it. ``what`` says what this process is doing, for the message
    another writer gets."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as exc:
        raise IndexWriteError.in_folder(index_dir, exc.strerror or str(exc)) from None
    with handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f"{_holder(handle)} is writing to the index in {index_dir}; "
                                    "try again when it has finished") from None
                time.sleep(_RETRY_INTERVAL_S)  # flock has no timeout of its own: poll the lock
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} ({what})")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
