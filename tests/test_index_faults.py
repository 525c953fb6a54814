"""A full disk or a read-only index folder: a clear error, and the previous index still answers.

These mount a small tmpfs and a read-only bind mount, as root does in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from _index_checks import bbc_sample
from conftest import REPO, SEEDS

MISSILES = "How many anti-ballistic missiles will encompass Russia?"


def _qa(*args: str, index_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_full_disk_stops_ingest_with_a_clear_error_and_keeps_the_index(small_disk: Path, tmp_path: Path) -> None:
    index_dir = small_disk / "index"
    assert _qa("ingest", str(SEEDS), index_dir=index_dir).returncode == 0
    filler = small_disk / "filler"
    with filler.open("wb") as handle:  # leave about 10 MB free
        handle.truncate(0)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(b"\0" * (free - 10 * 1024 * 1024))

    result = _qa("ingest", str(bbc_sample(tmp_path / "bbc", 20)), str(SEEDS), index_dir=index_dir)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert f"cannot write to the index folder {index_dir / 'chroma'}" in result.stderr
    assert "MB free" in result.stderr and "still answers" in result.stderr

    answer = _qa("ask", MISSILES, index_dir=index_dir)
    assert answer.returncode == 0 and "four hundred" in answer.stdout
    filler.unlink()  # with room again, the same command finishes the job
    assert _qa("ingest", str(tmp_path / "bbc"), str(SEEDS), index_dir=index_dir).returncode == 0


def test_read_only_index_folder_still_answers_and_refuses_writes(tmp_path: Path) -> None:
    writable = tmp_path / "index"
    assert _qa("ingest", str(SEEDS), index_dir=writable).returncode == 0
    read_only = tmp_path / "ro"
    read_only.mkdir()
    subprocess.run(["mount", "--bind", str(writable), str(read_only)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(read_only)], check=True)
        answer = _qa("ask", MISSILES, index_dir=read_only)
        assert answer.returncode == 0 and "four hundred" in answer.stdout

        result = _qa("ingest", str(bbc_sample(tmp_path / "bbc", 3)), index_dir=read_only)
        assert result.returncode == 4 and "Traceback" not in result.stderr
        assert "Read-only file system" in result.stderr and "still answers" in result.stderr
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=True)
