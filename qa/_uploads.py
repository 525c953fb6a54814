"""Uploaded articles → files in the upload folder: safe names, no silent replacement, undo.

A client names its file; the name it gets on the server keeps its letters in any script
(NFC-normalised) but loses every path and shell character, and is shortened to what the
file system takes. Two uploads that end up with the same name but different content never
replace each other silently: :func:`plan_uploads` refuses (409), renames ("name (2).txt")
or replaces, as the caller asks, and each :class:`UploadedFile` says which happened.
Files are written atomically and put back as they were when indexing fails.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from qa._articles import SUFFIX_KINDS, SkipFile, read_regular_file
from qa._errors import UploadConflict, UploadRejected

OnConflict = Literal["refuse", "rename", "replace"]
# A file name is at most 255 bytes on ext4, XFS, btrfs and APFS; this leaves room for " (99)"
# and the suffix.
MAX_STEM_BYTES = 200
_KEPT_PUNCTUATION = set("._- ")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class UploadedFile:
    """What became of one uploaded file."""

    name: str  # as the client sent it
    saved_as: str  # the file's name in the upload folder ("" when it was not kept)
    status: Literal["added", "updated", "unchanged", "skipped"]
    article_id: str | None = None
    # Why it was skipped, or that it was saved under another name than asked.
    note: str = ""


@dataclass
class PlannedUpload:
    name: str
    content: bytes
    target: Path
    previous: bytes | None  # what the target held before, to put back on failure
    note: str = ""
    # The same name and bytes came earlier in this request: written and indexed once.
    duplicate: bool = False


def _kept(char: str) -> bool:
    # Letters, digits and combining marks of every script (a Devanagari vowel sign is a mark).
    return unicodedata.category(char)[0] in "LNM" or char in _KEPT_PUNCTUATION


def _shortened(stem: str, limit: int = MAX_STEM_BYTES) -> str:
    encoded = stem.encode("utf-8")
    if len(encoded) <= limit:
        return stem
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip(" ._-")


def safe_upload_name(name: str) -> str:
    """The name an uploaded file gets in the upload folder, or :class:`UploadRejected`.

    Names that try to leave the folder are refused; other unsafe characters become ``_``."""
    if not name or "\x00" in name:
        raise UploadRejected("the upload has no file name")
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name) or ".." in parts:
        raise UploadRejected(f"file name {name!r} is not allowed: it points outside the articles folder")
    base = unicodedata.normalize("NFC", parts[-1])
    suffix = Path(base).suffix
    if suffix not in SUFFIX_KINDS:
        raise UploadRejected(f"{base[:100]!r} is not a supported article: upload .txt, .md or .html files",
                             http_status=415)
    stem = "".join(char if _kept(char) else "_" for char in base[: -len(suffix)])
    stem = _shortened(re.sub(r"_{2,}", "_", stem).strip(" ."))
    if not stem.strip("_"):
        raise UploadRejected(f"file name {name[:100]!r} has no letters or digits to keep")
    return stem + suffix


def _renamed(target: Path, content: bytes, taken: dict[Path, bytes]) -> tuple[Path, bytes | None]:
    """The first free "stem (n).suffix" beside ``target`` (or one that already holds ``content``)."""
    for number in range(2, 1000):
        candidate = target.with_name(f"{target.stem} ({number}){target.suffix}")
        if candidate in taken:
            continue
        existing = _existing(candidate)
        if existing is None or existing == content:
            return candidate, existing
    raise UploadConflict(f"{target.name}: too many uploads of this name with other content")


def _existing(target: Path) -> bytes | None:
    if not os.path.lexists(target):
        return None
    try:
        return read_regular_file(target)
    except SkipFile as exc:
        raise UploadConflict(f"{target.name} exists in the upload folder and cannot be read "
                             f"({exc.message}); remove it there first") from None


def plan_uploads(folder: Path, files: Sequence[tuple[str, bytes]], on_conflict: OnConflict) -> list[PlannedUpload]:
    """Where each upload goes, checked before anything is written: a refused conflict changes nothing."""
    plans: list[PlannedUpload] = []
    taken: dict[Path, bytes] = {}
    for name, content in files:
        target = folder / safe_upload_name(name)
        if taken.get(target) == content:
            plans.append(PlannedUpload(name, content, target, None, "the same file came twice", duplicate=True))
            continue
        previous = taken.get(target, _existing(target))
        note = ""
        clash = previous is not None and previous != content
        if clash and on_conflict == "refuse":
            raise UploadConflict(
                f"{target.name} is already in the library with other content: delete that article "
                "first, or upload with on_conflict=rename (keep both) or on_conflict=replace")
        if clash and on_conflict == "rename":
            wanted = target.name
            target, previous = _renamed(target, content, taken)
            note = f"saved as {target.name}: {wanted} already holds another article"
        taken[target] = content
        plans.append(PlannedUpload(name, content, target, previous, note))
    return plans


def write_atomically(target: Path, content: bytes) -> None:
    """Replace ``target`` with ``content`` at once: a concurrent reader never sees half a file."""
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def restore(plan: PlannedUpload) -> None:
    """Put back the file an upload replaced, or remove the upload if there was none."""
    if plan.previous is None:
        plan.target.unlink(missing_ok=True)
    else:
        write_atomically(plan.target, plan.previous)
