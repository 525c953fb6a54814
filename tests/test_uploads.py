"""Uploads through the service: names in any script, no silent replacement, one ingest per request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import SEED_FILE
from qa import QAService, UploadConflict, UploadRejected, load_settings, safe_upload_name

ARTICLE = "Harbour bridge reopens\n\nThe harbour bridge reopened on Monday after {weeks} weeks of repairs.\n"


def article(weeks: int) -> bytes:
    return ARTICLE.format(weeks=weeks).encode()


@pytest.mark.parametrize(("sent", "kept"), [
    ("日本.txt", "日本.txt"),
    ("中国.txt", "中国.txt"),
    ("हिंदी समाचार.md", "हिंदी समाचार.md"),
    ("Cafe\u0301.txt", "Café.txt"),  # NFC: one code point for é
    ("$(id).txt", "_id_.txt"),
    ("`id`.txt", "_id_.txt"),
    ("a;rm -rf ~;b.txt", "a_rm -rf _b.txt"),
    ("sub/dir/name.txt", "name.txt"),
])
def test_names_keep_their_letters_and_lose_shell_characters(sent: str, kept: str) -> None:
    assert safe_upload_name(sent) == kept


@pytest.mark.parametrize("name", ["../x.txt", "/etc/x.txt", "C:x.txt", "a/../../x.txt", "", "x\x00.txt", "$$$.txt"])
def test_names_that_escape_or_hold_nothing_are_refused(name: str) -> None:
    with pytest.raises(UploadRejected):
        safe_upload_name(name)


def test_a_name_longer_than_the_file_system_takes_is_shortened_at_a_character(tmp_path: Path) -> None:
    name = safe_upload_name("報道" * 200 + ".txt")
    assert len(name.encode()) <= 255 and name.endswith(".txt") and name.startswith("報道")
    (tmp_path / name).write_bytes(b"fits")  # the file system takes it


def test_two_scripts_are_two_articles(service: QAService) -> None:
    first, _ = service.upload([("日本.txt", article(3))])
    second, _ = service.upload([("中国.txt", article(4))])
    assert first[0].status == second[0].status == "added"
    assert first[0].article_id != second[0].article_id
    assert {r.doc for r in service.documents()} == {"日本.txt", "中国.txt"}


def test_a_colliding_name_with_other_content_is_refused_and_changes_nothing(service: QAService) -> None:
    service.upload([("$(id).txt", article(3))])
    before = service.index.generation()
    with pytest.raises(UploadConflict) as refused:
        service.upload([("`id`.txt", article(9))])
    assert refused.value.http_status == 409
    assert service.index.generation() == before
    [record] = service.documents()
    assert "3 weeks" in record.paragraphs[-1].text


def test_rename_keeps_both_and_says_so(service: QAService) -> None:
    service.upload([("$(id).txt", article(3))])
    [outcome], _ = service.upload([("`id`.txt", article(9))], on_conflict="rename")
    assert outcome.status == "added" and outcome.saved_as == "_id_ (2).txt"
    assert "saved as _id_ (2).txt" in outcome.note
    assert sorted(r.doc for r in service.documents()) == ["_id_ (2).txt", "_id_.txt"]


def test_replace_updates_and_the_same_bytes_again_are_unchanged(service: QAService) -> None:
    service.upload([("bridge.txt", article(3))])
    [replaced], _ = service.upload([("bridge.txt", article(5))], on_conflict="replace")
    [again], _ = service.upload([("bridge.txt", article(5))])
    assert (replaced.status, again.status) == ("updated", "unchanged")
    [record] = service.documents()
    assert "5 weeks" in record.paragraphs[-1].text


def test_many_files_are_one_ingest_and_one_reload(service: QAService) -> None:
    service.upload([("first.txt", article(1))])
    before = service.index.generation()
    loads = []
    original = service.index.records
    service.index.records = lambda *args: loads.append(args) or original(*args)
    outcomes, report = service.upload([(f"story {n}.txt", article(n + 10)) for n in range(20)])
    assert [o.status for o in outcomes] == ["added"] * 20
    assert len(report.added) == 20 and len(service.documents()) == 21
    assert service.index.generation() != before
    # One read of the manifest by the ingest, one by the snapshot of the new generation.
    assert len(loads) == 2


def test_a_file_without_text_is_skipped_and_not_kept_while_the_others_are_indexed(service: QAService) -> None:
    outcomes, report = service.upload([("good.txt", article(2)), ("empty.txt", b"  \n")])
    assert [o.status for o in outcomes] == ["added", "skipped"]
    assert outcomes[1].note == "empty file" and report.skipped == [("empty.txt", "empty file")]
    assert sorted(p.name for p in service.settings.index.upload_folder.iterdir()) == ["good.txt"]


def test_an_oversized_file_refuses_the_whole_request(service: QAService) -> None:
    limit = service.settings.server.max_upload_bytes
    with pytest.raises(UploadRejected) as refused:
        service.upload([("small.txt", article(1)), ("big.txt", b"x" * (limit + 1))])
    assert refused.value.http_status == 413
    assert not service.settings.index.upload_folder.exists() or not any(service.settings.index.upload_folder.iterdir())


def test_a_failed_ingest_puts_every_file_back(service: QAService, monkeypatch: pytest.MonkeyPatch) -> None:
    service.upload([("bridge.txt", article(3))])
    folder = service.settings.index.upload_folder

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(service.embedder), "embed", broken)
    with pytest.raises(OSError):
        service.upload([("bridge.txt", article(7)), ("new.txt", article(8))], on_conflict="replace")
    assert sorted(p.name for p in folder.iterdir()) == ["bridge.txt"]
    assert (folder / "bridge.txt").read_bytes() == article(3)


def test_an_upload_folder_entry_that_is_not_a_regular_file_is_a_conflict(service: QAService) -> None:
    folder = service.settings.index.upload_folder
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.txt")
    with pytest.raises(UploadConflict, match="named pipe"):
        service.upload([("pipe.txt", SEED_FILE.read_bytes())], on_conflict="replace")


def test_a_relative_upload_folder_is_under_the_index_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started_in = tmp_path / "started-here"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    service = QAService(load_settings(environ={}, index={"dir": str(tmp_path / "index"), "upload_dir": "uploads"}))
    outcomes, _ = service.upload([("bridge.txt", article(3))])
    assert outcomes[0].status == "added"
    assert (tmp_path / "index" / "uploads" / "bridge.txt").is_file()
    assert not any(started_in.iterdir())


def test_a_rebuild_keeps_the_uploaded_articles(service: QAService) -> None:
    service.ingest([SEED_FILE.parent])
    service.upload([("bridge.txt", article(3))])
    before = {r.doc for r in service.documents()}
    service.ingest([SEED_FILE.parent], rebuild=True)
    assert {r.doc for r in service.documents()} == before and "bridge.txt" in before
