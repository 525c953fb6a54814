"""Only regular files are read: pipes, sockets, devices and /proc-like files never block or leak."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SEED_FILE
from qa import QAService
from qa._articles import SkipFile, read_regular_file


@pytest.fixture
def folder_with_special_files(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    os.mkfifo(folder / "pipe.txt")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "socket.md"))
    listener.close()  # the socket file stays behind, as a crashed server leaves it
    (folder / "null.txt").symlink_to("/dev/null")
    (folder / "proc.txt").symlink_to("/proc/self/status")
    return folder


@pytest.mark.parametrize(("name", "reason"), [
    ("pipe.txt", "not a regular file: a named pipe"),
    ("null.txt", "not a regular file: a device"),
])
def test_reading_a_special_file_is_refused_without_blocking(folder_with_special_files: Path, name: str,
                                                            reason: str) -> None:
    with pytest.raises(SkipFile, match=reason):
        read_regular_file(folder_with_special_files / name)


def test_a_socket_is_refused(folder_with_special_files: Path) -> None:
    with pytest.raises(SkipFile, match="unreadable"):
        read_regular_file(folder_with_special_files / "socket.md")


def test_a_proc_file_reads_as_empty_not_as_its_contents(folder_with_special_files: Path) -> None:
    assert read_regular_file(folder_with_special_files / "proc.txt") == b""


def test_ingest_of_a_folder_lists_special_files_as_skipped(service: QAService, folder_with_special_files: Path) -> None:
    report = service.ingest([folder_with_special_files])
    skipped = {Path(name).name: reason for name, reason in report.skipped}
    assert report.added == [SEED_FILE.name]
    assert skipped == {"pipe.txt": "not a regular file: a named pipe",
                       "socket.md": "not a regular file: a socket",
                       "null.txt": "not a regular file: a device",
                       "proc.txt": "empty file"}


def test_cli_ingest_of_a_pipe_named_on_the_command_line_returns(tmp_path: Path, folder_with_special_files: Path) -> None:
    # A blocking open would hang here until the timeout: no writer ever opens the pipe.
    result = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ingest", str(folder_with_special_files / "pipe.txt")],
        cwd=REPO, env={**os.environ, "QA_INDEX_DIR": str(tmp_path / "index")},
        capture_output=True, text=True, timeout=120)
    assert "not a regular file: a named pipe" in result.stdout + result.stderr
