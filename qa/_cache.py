"""Derived data kept on disk between processes: the keyword index and the manifest copy.

Each file is a pickle of ``(version, content)`` named after the index generation it was
derived from, so a file of another generation is never read; one that does not load (damaged,
or from another release) reads as ``None`` and is derived again. Writes are atomic and remove
the files of older generations.
"""

from __future__ import annotations

import gc
import pickle
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def _collector_paused() -> Iterator[None]:
    # Unpickling allocates an object per record and per chunk; the cycle collector would run
    # hundreds of times over them for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_cached(path: Path, version: int, long_lived: bool = False) -> Any | None:
    """The content of ``path`` if it was written with ``version``, else None.

    ``long_lived`` content (the manifest copy: every process keeps it) is frozen out of the cycle
    collector once loaded. At a million paragraphs, with a dataclass per paragraph, the copy
    unpickled into 1.9M objects and a full collection over them took 1.1 s; left to the
    collector, the first collections after the load walked them all (0.8 s at the end of the
    load, 1.5 s in building the chat page of a starting server), then paused some later
    question as long (``bench/manifest_copy.py``). Frozen (``gc.freeze``), they are skipped by
    every collection; reference counting still frees them when newer records replace them. A
    collection first keeps the garbage already there from being frozen with them; what is
    frozen and later becomes garbage in a cycle (a dropped Chroma client) is freed by
    :func:`qa._store.release_dropped_clients`, which thaws everything first.
    """
    try:
        with path.open("rb") as handle:
            if long_lived:
                gc.collect()  # once the file is there to read: a missing copy costs no collection
            with _collector_paused():
                found, content = pickle.load(handle)
                if long_lived:
                    gc.freeze()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError, TypeError, ImportError):
        return None
    return content if found == version else None


def write_cached(path: Path, version: int, content: Any) -> None:
    """Write ``path`` whole or not at all, then remove the other files of its pattern ("name-*.pkl").

    The old ones go only once the new one is in place, so a reader always finds one of them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with partial.open("wb") as handle:
            pickle.dump((version, content), handle, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)  # atomic: a reader sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    prefix = path.name.split("-", 1)[0]
    for old in path.parent.glob(f"{prefix}-*.pkl"):
        if old != path:
            old.unlink(missing_ok=True)
