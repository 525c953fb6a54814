"""The ``local`` backend's model file: assembled once from its part packages, verified, atomic.

The real parts are 1.1 GB (``make install-local-llm``, not part of the test install), so these
tests build three small part packages of the same shape on ``sys.path`` and point the module at
them; the lookup, the streaming hash and the atomic write are the real ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import ui
from conftest import make_settings
from qa import ConfigError, QAService
from qa.llm import _local_model, start_chat_model

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"the last chunk"]


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("QA_MODEL_CACHE", str(cache))
    return cache


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three packages with ``data/partNN.bin``, as the real wheels lay them out; named after the
    test, since Python keeps a package it imported once."""
    site = tmp_path / "site"
    name = f"qa_{tmp_path.name}_part{{n}}"
    files = []
    for n, data in enumerate(PARTS, 1):
        package = site / name.format(n=n)
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        files.append(package / "data" / f"part{n:02d}.bin")
        files[-1].write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(_local_model, "PART_PACKAGE", name)
    monkeypatch.setattr(_local_model, "PART_COUNT", len(PARTS))
    monkeypatch.setattr(_local_model, "MODEL_SIZE", sum(map(len, PARTS)))
    monkeypatch.setattr(_local_model, "MODEL_SHA256", hashlib.sha256(b"".join(PARTS)).hexdigest())
    return files


def test_the_parts_are_assembled_in_order_once_into_the_model_cache(model_cache: Path, fake_parts: list[Path]) -> None:
    path = _local_model.local_model_path()
    assert path == model_cache / _local_model.MODEL_FILE_NAME
    assert path.read_bytes() == b"".join(PARTS)
    assert [p.name for p in model_cache.iterdir()] == [path.name]  # no temporary file left beside it
    for part in fake_parts:
        part.unlink()
    assert _local_model.local_model_path() == path  # the cached file, without reading the parts again


def test_parts_that_do_not_hash_to_the_published_sha256_leave_no_file(
        model_cache: Path, fake_parts: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_parts[1].write_bytes(PARTS[1][:-1] + b"!")  # same size, one byte changed
    with pytest.raises(ConfigError, match="not the published .*reinstall them"):
        _local_model.local_model_path()
    assert list(model_cache.iterdir()) == []


def test_missing_parts_name_the_make_target(model_cache: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_model, "PART_PACKAGE", "qa_no_such_model_part{n}")
    settings = make_settings(tmp_path, llm={"backend": "local"})
    with pytest.raises(ConfigError, match=r"llm\.backend = local needs .*make install-local-llm"):
        start_chat_model(settings.llm)


def test_the_chat_says_the_local_model_is_slower(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm={"backend": "local"})
    chat = ui.ChatUI(QAService(settings), settings)  # the labels need no model started
    assert chat.answer_modes() == [("LLM: written answer (local model, slower)", "llm"),
                                   ("Extractive, checked by the LLM (local model, slower)", "judged"),
                                   ("Extractive: quotes the articles", "extractive")]
