"""Shared fixtures: real services over temporary index folders, never the developer's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa import QAService, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SHARED_DATA = REPO.parent / "shared" / "data"
SEED_FILE = next(SEEDS.glob("*.txt"))


def make_settings(tmp_path: Path, **sections) -> Settings:
    """Settings isolated in ``tmp_path``; ``sections`` override keys, e.g. retrieval={"top_k": 3}."""
    base = {
        "index": {"dir": str(tmp_path / "index"), "upload_dir": str(tmp_path / "uploads"),
                  "default_source": str(SEEDS)},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return load_settings(environ={}, **base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def service(settings: Settings) -> QAService:
    return QAService(settings)


@pytest.fixture
def seeded_service(service: QAService) -> QAService:
    service.ingest([SEEDS])
    return service


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """A writable copy of the seed articles."""
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    return folder


def index_seed_with(root: Path, name: str, text: str) -> Path:
    """Index the seed article plus one more (``name`` with ``text``) under ``root``; returns ``root``."""
    articles = root / "articles"
    articles.mkdir()
    shutil.copy(SEED_FILE, articles / SEED_FILE.name)
    (articles / name).write_text(text, encoding="utf-8")
    QAService(make_settings(root)).ingest([articles])
    return root
