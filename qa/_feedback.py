"""Thumbs up and down from the chat, kept for evaluation: one JSON line per rating in
``<index dir>/feedback.jsonl``, only ever appended to.

A record holds what the server answered, never text a client sent: the chat builds it from the
answer it keeps in the session (``ui.ChatUI.rate``), and a click only says which turn and which
rating. Every field has a bound and a record over them is refused (:class:`InvalidInput`), so no
client can grow one line without limit.

Several processes (API workers, a second ``qa serve``) may append at once. Each append holds an
exclusive ``flock`` on the file while it writes its whole line, so lines never interleave, and a
reader holds a shared one; a line torn by a crash mid-write is left on a line of its own and
skipped (and counted) on reading.

``evaluation_questions`` turns the latest rating of each answer into ``qa eval``'s format (see
:mod:`qa._eval`): a thumbs-up answer becomes a question whose gold is the paragraph it cited (its
quoted sentences as the answers), a thumbs-up abstention a question the articles do not answer,
and a thumbs-down answer a question to look at, carrying the answer that was rejected.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from qa._errors import IndexWriteError, InvalidInput
from qa._models import Citation

FEEDBACK_FILE = "feedback.jsonl"
RATINGS = ("up", "down")
# Bounds on a record. The chat's own answers stay far inside them (questions are cut off at
# answer.max_question_chars, 2,000 by default; answers are two sentences); quotes are clipped to
# MAX_QUOTE_CHARS at a word when a record is built, which keeps them usable as gold answers.
MAX_TEXT_CHARS = 10_000
MAX_QUOTE_CHARS = 2_000
MAX_NAME_CHARS = 1_000
MAX_CITATIONS = 20
MAX_EARLIER_QUESTIONS = 20
MAX_LINE_BYTES = 256 * 1024

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]


class FeedbackCitation(BaseModel):
    """One paragraph the rated answer cited: which article, file and paragraph, and the quote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(ge=1, le=1_000)
    article_id: Annotated[str, StringConstraints(max_length=128)]
    doc: Name
    title: Name
    paragraph: int = Field(ge=1, le=10_000_000)
    quote: Annotated[str, StringConstraints(max_length=MAX_QUOTE_CHARS)]

    @classmethod
    def of(cls, citation: Citation) -> "FeedbackCitation":
        """The record of ``citation``: its quoted sentence (the whole paragraph when it has no
        quote span), clipped to the bounds."""
        quote = citation.text
        if citation.quote_start is not None and citation.quote_end is not None:
            quote = citation.text[citation.quote_start - citation.start:citation.quote_end - citation.start] or quote
        return cls(n=min(max(citation.n, 1), 1_000), article_id=citation.article_id[:128],
                   doc=citation.doc[:MAX_NAME_CHARS], title=citation.title[:MAX_NAME_CHARS],
                   paragraph=max(citation.paragraph, 1), quote=clipped(quote, MAX_QUOTE_CHARS))


class FeedbackRecord(BaseModel):
    """One rating: the question, the earlier questions it was read with, the answer the server
    gave, its citations, the answer mode and the rating."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: datetime
    answer_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    rating: Literal["up", "down"]
    question: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    earlier_questions: list[Text] = Field(default=[], max_length=MAX_EARLIER_QUESTIONS)
    answer: Text
    abstained: bool = False
    mode: Annotated[str, StringConstraints(max_length=32)] = ""
    citations: list[FeedbackCitation] = Field(default=[], max_length=MAX_CITATIONS)


def clipped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a space when there is one near the end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{where}: {error['msg']}"


@dataclass(frozen=True)
class FeedbackRead:
    """What the feedback file holds: the records in the order they were written, and the numbers
    of lines that are not records (torn by a crash, or edited by hand)."""

    records: list[FeedbackRecord]
    skipped_lines: list[int]


class FeedbackStore:
    """The feedback file of one index folder."""

    def __init__(self, index_dir: Path) -> None:
        self.folder = Path(index_dir)
        self.path = self.folder / FEEDBACK_FILE

    def append(self, record: FeedbackRecord | dict) -> FeedbackRecord:
        """Write ``record`` as one whole line at the end of the file; :class:`InvalidInput` when it
        is not a record within the bounds, :class:`IndexWriteError` when the file cannot be written."""
        try:
            record = record if isinstance(record, FeedbackRecord) else FeedbackRecord.model_validate(record)
        except ValidationError as exc:
            raise InvalidInput(f"not a feedback record ({_problem(exc)})") from None
        line = (record.model_dump_json() + "\n").encode("utf-8", errors="strict")
        if len(line) > MAX_LINE_BYTES:
            raise InvalidInput(f"a feedback record of {len(line):,} bytes is over the limit of {MAX_LINE_BYTES:,}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexWriteError.in_folder(self.folder, exc.strerror or str(exc)) from None
        try:
            with _locked(fd):
                # A crash in the middle of an earlier write leaves a line without its end: start
                # a new line, so this record is not glued to the torn one.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
        except OSError as exc:
            raise IndexWriteError.in_folder(self.folder, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)
        return record

    def read(self) -> FeedbackRead:
        """Every record in the file (none when there is no file yet). Read under a shared lock, so
        a line being appended meanwhile is read whole or not at all."""
        records: list[FeedbackRecord] = []
        skipped: list[int] = []
        try:
            with open(self.path, "rb") as handle, _locked(handle.fileno(), fcntl.LOCK_SH):
                for number, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue
                    try:
                        if len(raw) > MAX_LINE_BYTES + 1:
                            raise ValueError("longer than any record")
                        records.append(FeedbackRecord.model_validate_json(raw))
                    except ValueError:  # ValidationError and UnicodeDecodeError are ValueErrors
                        skipped.append(number)
        except FileNotFoundError:
            return FeedbackRead([], [])
        except OSError as exc:
            raise InvalidInput(f"cannot read the feedback file {self.path}: {exc.strerror or exc}") from None
        return FeedbackRead(records, skipped)


@contextlib.contextmanager
def _locked(fd: int, kind: int = fcntl.LOCK_EX) -> Iterator[None]:
    fcntl.flock(fd, kind)  # an append takes milliseconds: waiting needs no timeout
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def latest_ratings(records: list[FeedbackRecord]) -> list[FeedbackRecord]:
    """The last rating of each answer (a reader who changed their mind counts once), in the order
    the answers were first rated."""
    latest: dict[str, FeedbackRecord] = {}
    for record in records:
        latest[record.answer_id] = record  # a dict keeps the position a key was first given
    return list(latest.values())


def evaluation_question(record: FeedbackRecord) -> dict:
    """``record`` as a line of ``qa eval``'s question file."""
    line: dict = {
        "id": f"feedback-{record.answer_id}",
        "question": record.question,
        "rating": record.rating,
        "rated_at": record.time.isoformat(),
        "mode": record.mode,
    }
    if record.earlier_questions:
        line["history"] = [{"role": "user", "content": question} for question in record.earlier_questions]
    if record.rating == "down":
        line["rejected_answer"] = record.answer
        line["rejected_paragraphs"] = [{"doc": c.doc, "paragraph": c.paragraph} for c in record.citations]
        return line
    if record.abstained or not record.citations:
        line["answers"] = []  # rated right to say the articles do not answer
        return line
    docs = list(dict.fromkeys(c.doc for c in record.citations))
    line["answers"] = list(dict.fromkeys(c.quote for c in record.citations if c.quote))
    line["doc"] = docs[0]
    if docs[1:]:
        line["also_docs"] = docs[1:]
    line["gold_paragraphs"] = list({(c.doc, c.paragraph): {"doc": c.doc, "paragraph": c.paragraph}
                                    for c in record.citations}.values())
    return line


def evaluation_questions(records: list[FeedbackRecord]) -> list[dict]:
    return [evaluation_question(record) for record in latest_ratings(records)]
