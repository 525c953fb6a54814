"""The Gradio chat over the same service as ``qa ask``: answers with clickable citations, a
sources panel showing each cited paragraph in its article, and a library to upload and delete
articles.

Article text and questions are untrusted. Nothing here hands them to Markdown or to the
browser as HTML: every page fragment is built by the ``render_*`` functions below, which pass
each piece of untrusted text through :func:`html.escape`. The page's scripts only move elements
that this module rendered (:data:`CITATION_SCRIPT`, :data:`SOURCES_SCRIPT`), copy the text of one
(:data:`ANSWER_ACTIONS_SCRIPT`) or write numbers the user typed as text (:data:`SOURCES_NOTE_SCRIPT`);
none of them parses a string as HTML.

Every event's arguments are untrusted too: any client can call an event with any JSON, not only
what the page would send. No handler takes a server path from the client: the upload event reads
only files that Gradio's upload route wrote into its upload folder (see :meth:`ChatUI.upload`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import math
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import gradio as gr
from gradio.utils import get_upload_folder

from qa import (
    AnswerDelta, AnswerDone, ArticleRecord, AskResponse, ChatTurn, Citation, QAError, QAService,
    RetrievedParagraph, Settings, UploadedFile, safe_upload_name,
)
from qa._articles import SkipFile, read_regular_file
from qa._feedback import MAX_EARLIER_QUESTIONS, RATINGS, FeedbackCitation, FeedbackStore
from qa._feedback import now as feedback_time
from qa._service import MAX_K

LOG = logging.getLogger(__name__)

# Paragraphs shown on each side of the cited one in the sources panel.
CONTEXT_PARAGRAPHS = 2
MAX_SOURCES = 20
# One-click example questions: one about each of the most recently indexed articles, from its
# title (every title of the seed and of a sample of the BBC set gets a cited answer that way).
EXAMPLE_COUNT = 3
EXAMPLE_TITLE_CHARS = 80
EXAMPLES_EMPTY = ('<p class="examples-empty">Example questions appear here once articles are indexed: '
                  "upload some in the Library tab.</p>")
# A rating changed back and forth is stored each time; past this many, an answer stores no more.
MAX_RATINGS_PER_ANSWER = 10
# Answers kept for rating (ChatUI.given_answers): a few kB each.
MAX_GIVEN_ANSWERS = 5_000
UPLOAD_TYPES = [".txt", ".md", ".markdown", ".html", ".htm"]
ANSWER_MODES = {
    "extractive": "Extractive: quotes the articles",
    "llm": "LLM: written answer",
    "judged": "Extractive, checked by the LLM",
}
# The one answer for every file an upload event names that Gradio's upload route did not write:
# the same whether the path exists or not, so it cannot be used to probe the server's files.
NOT_UPLOADED = "not a file uploaded through this page; upload it with the Upload box"
K_RANGE = f"The number of sources (k) must be a whole number from 1 to {MAX_K}."
# The chat's own range is the slider's: a client that sends more than the page offers is told so.
SOURCES_RANGE = f"Sources to use must be a whole number from 1 to {MAX_SOURCES}."
# How much of a refused, too-long question the chat repeats: the whole of it stays in the box.
SHOWN_QUESTION_CHARS = 280
# Rows of the library sent at a time: the page stays as light at 100,000 articles as at ten.
LIBRARY_PAGE_SIZE = 50
# A search longer than any title and file name together can match nothing they hold.
MAX_LIBRARY_SEARCH_CHARS = 200

Span = tuple[int, int]  # [begin, end) offsets into a text


# -- conversation state ----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceView:
    """What the sources panel shows for one citation or related paragraph."""

    key: str  # unique within a turn: "c1" for citation [1], "r0" for the first related article
    label: str  # "[1]" for a citation, "" for a related article
    title: str
    doc: str
    paragraph: int
    paragraph_total: int
    section: str
    # (number, text) of the cited paragraph and its neighbours, in reading order
    context: tuple[tuple[int, str], ...]
    # every sentence the citation quotes, as sorted, non-overlapping offsets into the paragraph text
    quotes: tuple[Span, ...] = ()
    # The article's id in the index: what a conversation kept in the browser stores to find the
    # paragraph again (StoredTurn), never its text.
    article_id: str = ""

    @property
    def missing(self) -> bool:
        """A source restored from the browser whose article (or paragraph) is no longer indexed:
        there is nothing to show but its number."""
        return not self.context


@dataclass(frozen=True)
class ChatEntry:
    """One question and what became of it."""

    question: str
    state: str = "pending"  # pending → streaming → done, or error
    answer: str = ""
    abstained: bool = False
    mode: str = ""
    standalone_question: str = ""
    notice: str = ""
    error: str = ""
    citations: tuple[SourceView, ...] = ()
    # spans of the answer its cited paragraphs do not support (a generated answer's check)
    unsupported: tuple[tuple[int, int], ...] = ()
    related: tuple[SourceView, ...] = ()
    # The key of the server's own record of this answer (ChatUI.given_answers), set when it is
    # done: a rating stores that record, never text a client sent, whatever else the entry holds.
    answer_id: str = ""
    rating: str = ""  # "up" or "down" once rated in this session
    rating_note: str = ""  # what became of the last rating: saved, or why it was not


@dataclass(frozen=True)
class GivenAnswer:
    """What the server answered in one turn, as a rating of it is stored."""

    question: str
    earlier_questions: tuple[str, ...]
    answer: str
    abstained: bool
    mode: str
    citations: tuple[FeedbackCitation, ...]


class GivenAnswers:
    """The answers this process gave lately, each under a random id that its turn carries.

    A rating names a turn; its record comes from here, so it is the answer the server gave even
    if a session's entries came from elsewhere (a client can name an id it was shown, never make
    one up). Bounded: an answer older than the last MAX_GIVEN_ANSWERS can no longer be rated.
    """

    def __init__(self, size: int = 0) -> None:
        self.size = size or MAX_GIVEN_ANSWERS
        self._answers: OrderedDict[str, GivenAnswer] = OrderedDict()
        self._ratings: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, given: GivenAnswer) -> str:
        answer_id = secrets.token_urlsafe(12)
        with self._lock:
            self._answers[answer_id] = given
            while len(self._answers) > self.size:
                dropped, _ = self._answers.popitem(last=False)
                self._ratings.pop(dropped, None)
        return answer_id

    def get(self, answer_id: object) -> GivenAnswer | None:
        if not isinstance(answer_id, str):
            return None
        with self._lock:
            return self._answers.get(answer_id)

    def may_rate(self, answer_id: str) -> bool:
        """Whether one more rating of the answer may be stored (and count it): a rating changed
        back and forth is stored each time, up to MAX_RATINGS_PER_ANSWER."""
        with self._lock:
            count = self._ratings.get(answer_id, 0)
            if answer_id not in self._answers or count >= MAX_RATINGS_PER_ANSWER:
                return False
            self._ratings[answer_id] = count + 1
            return True


def history_of(entries: list[ChatEntry]) -> list[ChatTurn]:
    """The earlier turns the service reads follow-up questions against."""
    turns: list[ChatTurn] = []
    for entry in entries:
        if entry.state == "done":
            turns.append(ChatTurn(role="user", content=entry.question))
            turns.append(ChatTurn(role="assistant", content=entry.answer))
    return turns


def merged_spans(spans: list[Span] | tuple[Span, ...], length: int) -> tuple[Span, ...]:
    """``spans`` inside ``0..length``, sorted, with overlapping or touching ones joined."""
    merged: list[Span] = []
    for begin, end in sorted(span for span in spans if 0 <= span[0] < span[1] <= length):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


def claims_citing(answer: str, label: str) -> list[str]:
    """The text before each ``label`` marker in ``answer``, back to the previous marker: the
    sentence that marker backs. "claim [1] [2]" gives "claim" to both markers."""
    claims: list[str] = []
    position, previous = 0, ""
    for marker in _MARKER.finditer(answer):
        claim = answer[position:marker.start()].strip().strip("…").strip()
        claim = claim or previous
        if marker.group(0) == label and claim:
            claims.append(claim)
        position, previous = marker.end(), claim
    return claims


def quoted_spans(answer: str, label: str, text: str, own: tuple[int, int] | None) -> tuple[tuple[int, int], ...]:
    """Every sentence of ``text`` (a cited paragraph) that the answer quotes under ``label``.

    A citation carries one quote span, the first sentence it backs; an extractive answer that
    takes two sentences from one paragraph cites both with the same ``[n]``, and each of them is
    a verbatim cut of the paragraph, so the others are found by looking them up in it. A
    written (LLM) answer paraphrases: only the citation's own span is found then.
    """
    spans = [own] if own else []
    for claim in claims_citing(answer, label):
        found = text.find(claim)
        if found >= 0:
            spans.append((found, found + len(claim)))
    return merged_spans(spans, len(text))


def source_view(service: QAService, paragraph: Citation | RetrievedParagraph, key: str,
                label: str, answer: str = "") -> SourceView:
    try:
        record = service.document(paragraph.article_id)
        paragraphs = record.paragraphs
    except QAError:
        # Deleted between the answer and now: the cited paragraph alone is still worth showing.
        paragraphs = ()
    numbers = range(paragraph.paragraph - CONTEXT_PARAGRAPHS, paragraph.paragraph + CONTEXT_PARAGRAPHS + 1)
    context = tuple((p.number, p.text) for p in paragraphs if p.number in numbers)
    if not any(number == paragraph.paragraph for number, _ in context):
        context = ((paragraph.paragraph, paragraph.text),)
    quotes: tuple[tuple[int, int], ...] = ()
    if isinstance(paragraph, Citation):
        own = None
        if paragraph.quote_start is not None and paragraph.quote_end is not None:
            own = (paragraph.quote_start - paragraph.start, paragraph.quote_end - paragraph.start)
        # Offsets into the cited paragraph as the panel shows it: its text in the article.
        shown = dict(context).get(paragraph.paragraph, paragraph.text)
        quotes = quoted_spans(answer, label, shown, own if shown == paragraph.text else None)
    return SourceView(
        key=key, label=label, title=paragraph.title, doc=paragraph.doc, paragraph=paragraph.paragraph,
        paragraph_total=len(paragraphs) or paragraph.paragraph, section=paragraph.section,
        context=context, quotes=quotes, article_id=paragraph.article_id,
    )


# -- conversations kept in the browser -------------------------------------------------------
#
# Each browser keeps its own conversations in localStorage (gr.BrowserState), so they survive a
# reload and a server restart with nothing kept on the server. What comes back from the browser
# is client-controlled: only plain data is stored (questions, answer text, modes, notices, and a
# citation as an article id and a paragraph number), every field is checked and bounded when it
# is read back, and anything malformed is dropped. Cited paragraphs are read again from the index
# (in memory, by id; never a path), and every string goes through the render_* functions again.

MAX_CONVERSATIONS = 10
MAX_STORED_TURNS = 40  # per conversation: the newest are kept
MAX_STORED_ANSWER_CHARS = 10_000
MAX_STORED_NOTE_CHARS = 1_000  # a notice, a "searched for" question
MAX_STORED_SPANS = 50
# Everything stored together, as JSON: far below localStorage's 5 MB per origin, and small enough
# to travel with the events that read it.
MAX_STORED_CHARS = 400_000
CONVERSATION_TITLE_CHARS = 80
STORE_VERSION = 1
NO_LONGER_INDEXED = "No longer indexed"
_CONVERSATION_ID = re.compile(r"[0-9a-f]{16}")
# Article ids are hex digests today; anything outside this (a path such as ../../etc/passwd) is
# not an id, and ids are only ever looked up in the index's in-memory records.
_STORED_ARTICLE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_STORED_ANSWER_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def new_conversation_id() -> str:
    return secrets.token_hex(8)


def paragraph_digest(text: str) -> str:
    """Tells whether a cited paragraph still reads as it did: only then are the stored quote
    offsets into it used again."""
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:16]


def conversation_storage(settings: Settings) -> tuple[str, str]:
    """(localStorage key, Gradio's encryption secret), the same for every process over one index
    folder, so a restarted server reads what the browser kept. Gradio hands the secret to every
    page in its config: the encryption hides nothing from the client, which is why every value
    read back is checked."""
    folder = str(Path(settings.index.dir).expanduser().resolve())
    digest = hashlib.sha256(f"news-qa conversations\n{folder}".encode("utf-8", errors="replace")).hexdigest()
    return f"news-qa-conversations-{digest[:12]}", digest[12:44]


def _text(value: object, limit: int) -> str | None:
    """``value`` if it is text of at most ``limit`` characters, made displayable; else None."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    return displayable(value)


def _count(value: object, low: int = 0, high: int = 10**9) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _spans(value: object, length: int) -> tuple[Span, ...]:
    """Offsets into a text of ``length`` characters; malformed or out-of-range pairs are dropped."""
    if not isinstance(value, list):
        return ()
    spans = []
    for pair in value[:MAX_STORED_SPANS]:
        if isinstance(pair, list) and len(pair) == 2:
            begin, end = _count(pair[0], 0, length), _count(pair[1], 0, length)
            if begin is not None and end is not None and begin < end:
                spans.append((begin, end))
    return tuple(spans)


@dataclass(frozen=True)
class StoredSource:
    """A citation ([n], ``number`` > 0) or a related article (``number`` 0) as the browser keeps it."""

    article_id: str
    paragraph: int
    number: int = 0
    digest: str = ""  # paragraph_digest of the paragraph the quotes point into
    quotes: tuple[Span, ...] = ()

    @classmethod
    def of(cls, view: SourceView) -> "StoredSource":
        number = int(view.label.strip("[]")) if _MARKER.fullmatch(view.label) else 0
        text = dict(view.context).get(view.paragraph)
        return cls(view.article_id, view.paragraph, number, paragraph_digest(text) if text is not None else "",
                   view.quotes if number and text is not None else ())

    @classmethod
    def read(cls, raw: object, cited: bool) -> "StoredSource | None":
        if not isinstance(raw, dict):
            return None
        article_id, paragraph = raw.get("article"), _count(raw.get("paragraph"), 1, 10**6)
        if not isinstance(article_id, str) or not _STORED_ARTICLE_ID.fullmatch(article_id) or paragraph is None:
            return None
        if not cited:
            return cls(article_id, paragraph)
        number, digest = _count(raw.get("n"), 1, MAX_SOURCES), raw.get("digest")
        if number is None:
            return None
        digest = digest if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{16}", digest) else ""
        return cls(article_id, paragraph, number, digest, _spans(raw.get("quotes"), 10**7) if digest else ())

    def value(self) -> dict:
        if not self.number:
            return {"article": self.article_id, "paragraph": self.paragraph}
        return {"n": self.number, "article": self.article_id, "paragraph": self.paragraph, "digest": self.digest,
                "quotes": [list(span) for span in self.quotes]}

    def view(self, records: dict[str, ArticleRecord], key: str, answer: str) -> SourceView:
        """The source as the panel shows it, read again from the index; a "no longer indexed"
        view when the article or the paragraph is gone."""
        label = f"[{self.number}]" if self.number else ""
        record = records.get(self.article_id)
        cited = next((p for p in record.paragraphs if p.number == self.paragraph), None) if record else None
        if record is None or cited is None:
            return SourceView(key=key, label=label, title=NO_LONGER_INDEXED, doc="", paragraph=self.paragraph,
                              paragraph_total=0, section="", context=(), article_id=self.article_id)
        numbers = range(self.paragraph - CONTEXT_PARAGRAPHS, self.paragraph + CONTEXT_PARAGRAPHS + 1)
        quotes: tuple[Span, ...] = ()
        if label:
            # Offsets kept from when the paragraph read the same; else the answer's own sentences only.
            own = self.quotes if self.digest == paragraph_digest(cited.text) else ()
            quotes = merged_spans([*own, *quoted_spans(answer, label, cited.text, None)], len(cited.text))
        return SourceView(
            key=key, label=label, title=record.title, doc=record.doc, paragraph=cited.number,
            paragraph_total=len(record.paragraphs), section=cited.section,
            context=tuple((p.number, p.text) for p in record.paragraphs if p.number in numbers),
            quotes=quotes, article_id=record.article_id,
        )


@dataclass(frozen=True)
class StoredTurn:
    """One answered question as the browser keeps it: plain data, never markup or article text."""

    question: str
    answer: str
    abstained: bool = False
    mode: str = ""
    standalone_question: str = ""
    notice: str = ""
    citations: tuple[StoredSource, ...] = ()
    related: tuple[StoredSource, ...] = ()
    unsupported: tuple[Span, ...] = ()
    # GivenAnswers' key: a rating still stores the server's own copy of the answer, if it has one.
    answer_id: str = ""
    rating: str = ""

    @classmethod
    def of(cls, entry: ChatEntry) -> "StoredTurn":
        return cls(
            question=entry.question, answer=entry.answer, abstained=entry.abstained, mode=entry.mode,
            standalone_question=entry.standalone_question, notice=entry.notice,
            citations=tuple(StoredSource.of(view) for view in entry.citations if view.article_id),
            related=tuple(StoredSource.of(view) for view in entry.related if view.article_id),
            unsupported=entry.unsupported, answer_id=entry.answer_id, rating=entry.rating,
        )

    @classmethod
    def read(cls, raw: object, question_limit: int) -> "StoredTurn | None":
        """The turn the browser sent, checked; None if anything in it is malformed or too long."""
        if not isinstance(raw, dict):
            return None
        question = _text(raw.get("question"), question_limit)
        answer = _text(raw.get("answer"), MAX_STORED_ANSWER_CHARS)
        standalone = _text(raw.get("searched_for", ""), MAX_STORED_NOTE_CHARS)
        notice = _text(raw.get("notice", ""), MAX_STORED_NOTE_CHARS)
        abstained, mode = raw.get("abstained", False), raw.get("mode", "")
        citations, related = raw.get("citations", []), raw.get("related", [])
        if (not question or not question.strip() or answer is None or standalone is None or notice is None
                or not isinstance(abstained, bool) or not isinstance(citations, list) or not isinstance(related, list)
                or len(citations) > MAX_SOURCES or len(related) > MAX_SOURCES):
            return None
        cited = tuple(source for source in (StoredSource.read(c, True) for c in citations) if source)
        numbers = [source.number for source in cited]
        answer_id, rating = raw.get("answer_id", ""), raw.get("rating", "")
        return cls(
            question=question, answer=answer, abstained=abstained,
            mode=mode if isinstance(mode, str) and mode in ANSWER_MODES else "",
            standalone_question=standalone, notice=notice,
            citations=cited if len(set(numbers)) == len(numbers) else (),
            related=tuple(source for source in (StoredSource.read(r, False) for r in related) if source),
            unsupported=_spans(raw.get("unsupported"), len(answer)),
            answer_id=answer_id if isinstance(answer_id, str) and _STORED_ANSWER_ID.fullmatch(answer_id) else "",
            rating=rating if isinstance(rating, str) and rating in RATINGS else "",
        )

    def value(self) -> dict:
        return {
            "question": self.question, "answer": self.answer, "abstained": self.abstained, "mode": self.mode,
            "searched_for": self.standalone_question, "notice": self.notice,
            "citations": [source.value() for source in self.citations],
            "related": [source.value() for source in self.related],
            "unsupported": [list(span) for span in self.unsupported],
            "answer_id": self.answer_id, "rating": self.rating,
        }

    def entry(self, records: dict[str, ArticleRecord]) -> ChatEntry:
        return ChatEntry(
            question=self.question, state="done", answer=self.answer, abstained=self.abstained, mode=self.mode,
            standalone_question=self.standalone_question, notice=self.notice,
            citations=tuple(source.view(records, f"c{source.number}", self.answer) for source in self.citations),
            related=tuple(source.view(records, f"r{i}", "") for i, source in enumerate(self.related)),
            unsupported=self.unsupported, answer_id=self.answer_id, rating=self.rating,
        )


def conversation_title(question: str) -> str:
    title = " ".join(question.split())
    if len(title) <= CONVERSATION_TITLE_CHARS:
        return title
    cut = title[:CONVERSATION_TITLE_CHARS]
    return (cut[:cut.rfind(" ")] if " " in cut else cut).rstrip(" ,;:-–—") + "…"


@dataclass(frozen=True)
class StoredConversation:
    id: str
    turns: tuple[StoredTurn, ...]

    @property
    def title(self) -> str:
        """Its first question: never a title the browser sent."""
        return conversation_title(self.turns[0].question) if self.turns else ""

    def value(self) -> dict:
        return {"id": self.id, "turns": [turn.value() for turn in self.turns]}


@dataclass(frozen=True)
class ConversationStore:
    """A browser's conversations, the latest first, and which one is on screen (``current``:
    possibly a new one that has no turns yet, and so is not listed)."""

    current: str
    conversations: tuple[StoredConversation, ...] = ()

    @classmethod
    def empty(cls) -> "ConversationStore":
        return cls(new_conversation_id())

    @classmethod
    def read(cls, raw: object, question_limit: int) -> "ConversationStore":
        """What the browser sent, checked: malformed turns and conversations are dropped, the
        sizes bounded; anything that is not a store at all is an empty one."""
        if not isinstance(raw, dict) or raw.get("version") != STORE_VERSION:
            return cls.empty()
        current = raw.get("current")
        listed = raw.get("conversations")
        conversations: list[StoredConversation] = []
        for item in listed[:MAX_CONVERSATIONS] if isinstance(listed, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("turns"), list):
                continue
            ident = item.get("id")
            if not isinstance(ident, str) or not _CONVERSATION_ID.fullmatch(ident) or \
                    any(c.id == ident for c in conversations):
                continue
            turns = tuple(turn for turn in (StoredTurn.read(t, question_limit)
                                            for t in item["turns"][-MAX_STORED_TURNS:]) if turn)
            if turns:
                conversations.append(StoredConversation(ident, turns))
        if not isinstance(current, str) or not _CONVERSATION_ID.fullmatch(current):
            current = new_conversation_id()
        return cls(current, tuple(conversations)).bounded()

    def value(self) -> dict:
        return {"version": STORE_VERSION, "current": self.current,
                "conversations": [conversation.value() for conversation in self.conversations]}

    def find(self, ident: object) -> StoredConversation | None:
        return next((c for c in self.conversations if c.id == ident), None)

    def bounded(self) -> "ConversationStore":
        """At most MAX_CONVERSATIONS, MAX_STORED_CHARS in all: the oldest conversations go first,
        then the current one's oldest turns."""
        conversations = list(self.conversations[:MAX_CONVERSATIONS])
        sizes = [len(json.dumps(c.value(), ensure_ascii=False)) for c in conversations]
        while len(conversations) > 1 and sum(sizes) > MAX_STORED_CHARS:
            drop = next((i for i in range(len(conversations) - 1, -1, -1)
                         if conversations[i].id != self.current), len(conversations) - 1)
            del conversations[drop], sizes[drop]
        if conversations and sum(sizes) > MAX_STORED_CHARS:
            turns = list(conversations[0].turns)
            while len(turns) > 1 and len(json.dumps([t.value() for t in turns], ensure_ascii=False)) > MAX_STORED_CHARS:
                turns.pop(0)
            conversations[0] = StoredConversation(conversations[0].id, tuple(turns))
        return replace(self, conversations=tuple(conversations))

    def with_turns(self, turns: tuple[StoredTurn, ...]) -> "ConversationStore":
        """The current conversation's turns as they are now. A conversation that changed moves to
        the top of the list; one merely opened again keeps its place."""
        turns = turns[-MAX_STORED_TURNS:]
        existing = self.find(self.current)
        if not turns or existing == StoredConversation(self.current, turns):
            return self
        updated = StoredConversation(self.current, turns)
        if existing is not None and [(t.question, t.answer, t.rating) for t in existing.turns] == \
                [(t.question, t.answer, t.rating) for t in turns]:
            conversations = tuple(updated if c.id == self.current else c for c in self.conversations)
        else:
            conversations = (updated, *(c for c in self.conversations if c.id != self.current))
        return replace(self, conversations=conversations).bounded()

    def without(self, ident: str) -> "ConversationStore":
        rest = tuple(c for c in self.conversations if c.id != ident)
        return ConversationStore(new_conversation_id() if ident == self.current else self.current, rest)


# -- the library: the indexed articles, a page at a time -------------------------------------

# Column: (header, the direction a first click sorts in, how the summary says each direction).
LIBRARY_COLUMNS = {
    "title": ("Title", False, ("title A–Z", "title Z–A")),
    "doc": ("File", False, ("file A–Z", "file Z–A")),
    "paragraphs": ("Paragraphs", True, ("fewest paragraphs first", "most paragraphs first")),
    "indexed": ("Indexed", True, ("oldest first", "newest first")),
}


@dataclass(frozen=True)
class LibraryQuery:
    """What the library shows one session: the search, the sort and the page. The default is the
    newest articles first, so an upload is at the top."""

    search: str = ""
    sort: str = "indexed"
    descending: bool = True
    page: int = 1
    # What this session's last upload indexed: highlighted wherever it is listed.
    highlighted: frozenset[str] = frozenset()

    def sorted_by(self, column: object) -> "LibraryQuery":
        """A click on ``column``'s header: the other direction if already sorted by it, else its
        first direction; back to page 1 either way. An unknown column changes nothing."""
        if not isinstance(column, str) or column not in LIBRARY_COLUMNS:
            return self
        descending = not self.descending if column == self.sort else LIBRARY_COLUMNS[column][1]
        return replace(self, sort=column, descending=descending, page=1)

    def searching(self, text: object) -> "LibraryQuery":
        search = displayable(text.strip())[:MAX_LIBRARY_SEARCH_CHARS] if isinstance(text, str) else ""
        return replace(self, search=search, page=1)

    def on_page(self, page: object) -> "LibraryQuery":
        """Page ``page``, as a client sent it; clamped into range when the page is listed."""
        if isinstance(page, float) and page.is_integer():
            page = int(page)
        if isinstance(page, bool) or not isinstance(page, int):
            return self
        return replace(self, page=max(1, min(page, 10**9)))


def library_query(value: object) -> LibraryQuery:
    """The session's query; a fresh one if the state holds anything else."""
    return value if isinstance(value, LibraryQuery) else LibraryQuery()


@dataclass(frozen=True)
class LibraryPage:
    """One page of the library: its rows and where it stands in the whole list."""

    query: LibraryQuery  # with the page clamped into range
    rows: tuple[ArticleRecord, ...]
    matching: int  # articles the search matches (all of them without a search)
    total: int  # articles indexed
    pages: int

    @property
    def first(self) -> int:
        """The 1-based position of the first row in the matching articles (0 when there are none)."""
        return (self.query.page - 1) * LIBRARY_PAGE_SIZE + 1 if self.rows else 0


class LibraryListing:
    """The articles of one snapshot in every order the library sorts by, each worked out once,
    on its first use: a page is then a slice, even at 100,000 articles."""

    def __init__(self, records: Sequence[ArticleRecord]) -> None:
        # Ties in any order are listed by file name, A–Z, in both directions (the sorts are stable).
        self.records = sorted(records, key=lambda record: record.doc)
        self.searched = [f"{record.title}\n{record.doc}".casefold() for record in self.records]
        self._orders: dict[tuple[str, bool], list[int]] = {}
        self._lock = threading.Lock()

    def _order(self, column: str, descending: bool) -> list[int]:
        with self._lock:
            order = self._orders.get((column, descending))
            if order is None:
                keys = {
                    "title": lambda i: self.records[i].title.casefold(),
                    "doc": lambda i: self.records[i].doc.casefold(),
                    "paragraphs": lambda i: len(self.records[i].paragraphs),
                    "indexed": lambda i: self.records[i].ingested_at,
                }
                order = sorted(range(len(self.records)), key=keys[column], reverse=descending)
                self._orders[(column, descending)] = order
            return order

    def page(self, query: LibraryQuery) -> LibraryPage:
        order = self._order(query.sort, query.descending)
        words = query.search.casefold().split()
        if words:
            order = [i for i in order if all(word in self.searched[i] for word in words)]
        pages = max(1, math.ceil(len(order) / LIBRARY_PAGE_SIZE))
        query = replace(query, page=min(query.page, pages))
        start = (query.page - 1) * LIBRARY_PAGE_SIZE
        rows = tuple(self.records[i] for i in order[start:start + LIBRARY_PAGE_SIZE])
        return LibraryPage(query, rows, len(order), len(self.records), pages)


class LibraryListings:
    """The listing of the newest snapshot a session asked for, shared by every session."""

    def __init__(self) -> None:
        self._latest: tuple[str, LibraryListing] | None = None
        self._lock = threading.Lock()

    def of(self, generation: str, records: dict[str, ArticleRecord]) -> LibraryListing:
        with self._lock:
            if self._latest is None or self._latest[0] != generation:
                self._latest = (generation, LibraryListing(list(records.values())))
            return self._latest[1]


# -- rendering (every piece of untrusted text goes through html.escape) ---------------------


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def displayable(text: str) -> str:
    """``text`` with unpaired surrogates (which JSON can carry) replaced: the page's JSON cannot hold them."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def sentence(message: str) -> str:
    """A service message (written to follow "Error: ") as a sentence of its own."""
    return message[:1].upper() + message[1:]


def user_error(message: str) -> gr.Error:
    # Gradio shows an error's message as HTML. A client's mistake is no server fault: no traceback.
    return gr.Error(escape(sentence(message)), print_exception=False)


def event_data(event: object) -> dict:
    """What the page's script sent with an event it triggered; ``{}`` for anything but an object."""
    data = getattr(event, "_data", None)
    return data if isinstance(data, dict) else {}


def sources_count(k: object, maximum: int = MAX_K, message: str = K_RANGE) -> int | None:
    """``k`` as the client sent it (slider float, JSON number or text), checked; None: the default."""
    if k is None:
        return None
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    elif isinstance(k, str) and re.fullmatch(r"\s*\d{1,3}\s*", k):
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= maximum:
        raise ValueError(message)
    return k


def too_long(question: str, limit: int) -> str | None:
    """What the chat says about a question over ``limit`` characters, before the service sees it."""
    if len(question) <= limit:
        return None
    return (f"The question is {len(question):,} characters long; the limit is {limit:,} characters. "
            f"Shorten it by {len(question) - limit:,} characters and ask again: it is still in the box.")


def example_question(title: str) -> str:
    """A question about the article titled ``title``; "" for an untitled one."""
    title = " ".join(displayable(title).split())
    if not title:
        return ""
    if len(title) > EXAMPLE_TITLE_CHARS:
        cut = title[:EXAMPLE_TITLE_CHARS]
        title = (cut[:cut.rfind(" ")] if " " in cut else cut).rstrip(" ,;:-–—") + "…"
    return f"What does “{title}” report?"


def shortened(question: str) -> str:
    if len(question) <= SHOWN_QUESTION_CHARS:
        return question
    return question[:SHOWN_QUESTION_CHARS].rstrip() + f"… ({len(question):,} characters)"


_MARKER = re.compile(r"\[(\d+)\]")


def render_checked_answer(answer: str, citations: tuple[SourceView, ...], clickable: bool,
                          unsupported: tuple[tuple[int, int], ...]) -> str:
    """The answer with the sentences its citations do not support marked as such."""
    pieces: list[str] = []
    position = 0
    for start, end in sorted(unsupported):
        if not position <= start < end <= len(answer):
            continue
        pieces.append(render_answer_text(answer[position:start], citations, clickable))
        pieces.append('<span class="unsupported" title="Not supported by the paragraph it cites: check the source">'
                      f"{render_answer_text(answer[start:end], citations, clickable)}</span>")
        position = end
    pieces.append(render_answer_text(answer[position:], citations, clickable))
    return "".join(pieces)


def render_answer_text(answer: str, citations: tuple[SourceView, ...], clickable: bool) -> str:
    """The answer with each known ``[n]`` as a button that opens its source."""
    labels = {view.label: view for view in citations}
    pieces: list[str] = []
    position = 0
    for marker in _MARKER.finditer(answer):
        pieces.append(escape(answer[position:marker.start()]))
        view = labels.get(marker.group(0))
        if clickable and view is not None:
            pieces.append(
                f'<button type="button" class="cite" data-source="{view.key}" '
                f'data-citation="{marker.group(1)}" title="{escape(view.title)}, paragraph {view.paragraph}" '
                f'aria-label="Source {marker.group(1)}: {escape(view.title)}, paragraph {view.paragraph}">'
                f"{escape(marker.group(0))}</button>"
            )
        else:
            pieces.append(f'<span class="cite-pending">{escape(marker.group(0))}</span>')
        position = marker.end()
    pieces.append(escape(answer[position:]))
    return "".join(pieces)


def render_source_card(view: SourceView) -> str:
    if view.missing:
        label = f'<span class="card-label">{escape(view.label)}</span>' if view.label else ""
        return (
            f'<button type="button" class="source-card is-missing" data-source="{view.key}">'
            f'{label}<span class="card-title">{NO_LONGER_INDEXED}</span>'
            f'<span class="card-meta">¶{view.paragraph}</span></button>'
        )
    cited = dict(view.context).get(view.paragraph, "")
    excerpt = " … ".join(cited[begin:end] for begin, end in view.quotes) if view.quotes else cited
    if len(excerpt) > 220:
        excerpt = excerpt[:217].rstrip() + "…"
    label = f'<span class="card-label">{escape(view.label)}</span>' if view.label else ""
    return (
        f'<button type="button" class="source-card" data-source="{view.key}">'
        f'{label}<span class="card-title">{escape(view.title)}</span>'
        f'<span class="card-meta">{escape(view.doc)} · ¶{view.paragraph}</span>'
        f'<span class="card-excerpt">{escape(excerpt)}</span></button>'
    )


def render_paragraph_text(text: str, quotes: tuple[tuple[int, int], ...] = ()) -> str:
    """``text`` with each quoted span marked; the spans are merged first, so marks never nest."""
    pieces: list[str] = []
    position = 0
    for begin, end in merged_spans(quotes, len(text)):
        pieces.append(f"{escape(text[position:begin])}<mark>{escape(text[begin:end])}</mark>")
        position = end
    pieces.append(escape(text[position:]))
    return "".join(pieces)


def render_source_detail(view: SourceView) -> str:
    """The sources-panel content for one source; kept hidden in the turn until it is opened."""
    if view.missing:
        label = f'<span class="card-label">{escape(view.label)}</span> ' if view.label else ""
        return (
            f'<div class="source-detail is-missing" data-source-detail="{view.key}" hidden>'
            f'<div class="detail-header"><h3 class="detail-title">{label}{NO_LONGER_INDEXED}</h3>'
            f'<p class="detail-meta"><span class="detail-paragraph">Paragraph {view.paragraph}</span></p></div>'
            '<p class="detail-missing">The article this answer cited has been deleted from the index (or '
            "changed) since the answer was given, so its paragraph cannot be shown.</p></div>"
        )
    items = []
    for number, text in view.context:
        cited = number == view.paragraph
        items.append(
            f'<li class="para{" is-cited" if cited else ""}" data-paragraph="{number}">'
            f'<span class="para-number">¶{number}</span>'
            f'<p>{render_paragraph_text(text, view.quotes if cited else ())}</p></li>'
        )
    section = f'<span class="detail-section">{escape(view.section)}</span>' if view.section else ""
    label = f'<span class="card-label">{escape(view.label)}</span> ' if view.label else ""
    # The header is sticky in the panel's scrolling body: in a long paragraph the reader still
    # sees which article and which paragraph the marked sentence comes from.
    return (
        f'<div class="source-detail" data-source-detail="{view.key}" hidden>'
        f'<div class="detail-header"><h3 class="detail-title">{label}{escape(view.title)}</h3>'
        f'<p class="detail-meta"><span class="detail-doc">{escape(view.doc)}</span>'
        f'<span class="detail-paragraph">Paragraph {view.paragraph} of {view.paragraph_total}</span>'
        f"{section}</p></div>"
        f'<ol class="context">{"".join(items)}</ol></div>'
    )


def render_entry(index: int, entry: ChatEntry, last: bool = False) -> str:
    question = f'<div class="msg user"><div class="bubble">{escape(entry.question)}</div></div>'
    details = "".join(render_source_detail(v) for v in entry.citations + entry.related)
    if entry.state == "error":
        body = (f'<div class="bubble error" role="alert"><strong>Could not answer.</strong> '
                f"{escape(entry.error)}</div>")
    elif entry.state == "pending":
        body = '<div class="bubble answer thinking">Searching the articles<span class="dots"></span></div>'
    elif entry.abstained and entry.state == "done":
        related = "".join(f"<li>{render_source_card(v)}</li>" for v in entry.related)
        related_block = (
            f'<p class="related-heading">Closest articles</p><ul class="related">{related}</ul>'
            if related else ""
        )
        body = (f'<div class="bubble abstention"><p class="abstention-text">{escape(entry.answer)}</p>'
                f"{related_block}</div>")
    else:
        done = entry.state == "done"
        cards = "".join(render_source_card(v) for v in entry.citations) if done else ""
        body = (f'<div class="bubble answer">{render_checked_answer(entry.answer, entry.citations, done, entry.unsupported)}</div>'
                + (f'<div class="source-cards">{cards}</div>' if cards else ""))
    footnotes = []
    if entry.standalone_question and entry.standalone_question != entry.question:
        footnotes.append(f'<span class="searched-for">Searched for: {escape(entry.standalone_question)}</span>')
    if entry.notice:
        footnotes.append(f'<span class="notice">{escape(entry.notice)}</span>')
    if entry.mode and entry.state == "done":
        footnotes.append(f'<span class="mode" data-mode="{escape(entry.mode)}">{escape(mode_footnote(entry.mode))}</span>')
    footer = f'<div class="footnotes">{"".join(footnotes)}</div>' if footnotes else ""
    actions = render_answer_actions(entry, last) if entry.state == "done" else ""
    return (
        f'<article class="turn" data-turn="{index}" data-state="{entry.state}">{question}'
        f'<div class="msg bot">{body}{actions}{footer}</div>{details}</article>'
    )


# How the footnote under an answer names the mode that produced it.
MODE_FOOTNOTES = {
    "extractive": "Extractive answer: sentences quoted from the articles",
    "llm": "Written by the LLM from the cited paragraphs",
    "judged": "Extractive answer, checked by the LLM",
}


def render_single_mode(label: str) -> str:
    return ('<p class="answer-mode-note" style="margin: 0; font-size: 0.9em;">'
            f"<strong>Answer mode:</strong> {escape(label)}. LLM answers are off: no LLM is configured "
            "(<code>[llm] backend</code> in the config).</p>")


def mode_footnote(mode: str) -> str:
    return MODE_FOOTNOTES.get(mode, f"Answer mode: {mode}")


def copy_text(entry: ChatEntry) -> str:
    """What Copy puts on the clipboard: the answer as shown, then one line per source, e.g.
    "[1] “Title” — file.txt, paragraph 3" (the closest articles, for an abstention)."""
    lines = [entry.answer.strip()]
    if entry.abstained:
        if entry.related:
            lines += ["", "Closest articles:"]
            lines += [f"- “{view.title}” — {view.doc}, paragraph {view.paragraph}" for view in entry.related]
    elif entry.citations:
        lines += ["", "Sources:"]
        lines += [f"{view.label} “{view.title}” — {view.doc}, paragraph {view.paragraph}" for view in entry.citations]
    return "\n".join(lines)


# Drawn, not emoji: a machine without an emoji font (many offline ones) shows 👍 as an empty box.
THUMB_ICON = ('<svg class="thumb" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false">'
              '<path fill="currentColor" d="M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79'
              '-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05'
              'c.09-.23.14-.47.14-.73v-2z"/></svg>')
THUMB_DOWN_ICON = THUMB_ICON.replace('class="thumb"', 'class="thumb down"')


def render_answer_actions(entry: ChatEntry, last: bool) -> str:
    """Copy, 👍 / 👎 and, under the newest answer, Regenerate. The buttons only say which turn and
    which rating (ANSWER_ACTIONS_SCRIPT); what is copied is the escaped text rendered here."""
    rating_buttons = "".join(
        f'<button type="button" class="answer-action rate" data-action="rate" data-rating="{rating}" '
        f'aria-pressed="{"true" if entry.rating == rating else "false"}" aria-label="{label}" title="{label}">'
        f"{THUMB_ICON if rating == 'up' else THUMB_DOWN_ICON}</button>"
        for rating, label in (("up", "Good answer (👍): keep it for evaluation"),
                              ("down", "Bad answer (👎): keep it for evaluation, to look at"))
    )
    regenerate = ('<button type="button" class="answer-action regenerate" data-action="regenerate" '
                  'title="Ask the same question again, with the same earlier turns">↻ Regenerate</button>'
                  if last else "")
    note = escape(entry.rating_note)
    return (
        '<div class="answer-actions" role="group" aria-label="Answer actions">'
        '<button type="button" class="answer-action copy" data-action="copy" '
        'title="Copy the answer and its sources as text">Copy</button>'
        f'{rating_buttons}{regenerate}<span class="action-status" role="status">{note}</span>'
        f'<pre class="copy-text" hidden>{escape(copy_text(entry))}</pre></div>'
    )


def render_conversation(entries: list[ChatEntry], examples_hint: bool = True) -> str:
    if not entries:
        hint = "Ask about the indexed news articles. Every claim in an answer links to the paragraph behind it."
        return f'<div class="conversation empty"><p class="empty-hint">{hint}</p></div>' if examples_hint else ""
    turns = "".join(render_entry(i, e, last=i == len(entries) - 1) for i, e in enumerate(entries))
    return f'<div class="conversation">{turns}</div>'


def render_conversation_list(store: ConversationStore) -> str:
    """The browser's earlier conversations, titled by their first question: each opens with a
    click, and ✕ deletes it from the browser (CONVERSATION_LIST_SCRIPT sends only its id)."""
    heading = '<h2 class="conversations-heading">Conversations</h2>'
    if not store.conversations:
        return (f'<nav class="conversation-list" aria-label="Conversations">{heading}'
                f'<p class="conversations-empty">Your last {MAX_CONVERSATIONS} conversations are kept in this '
                "browser and listed here.</p></nav>")
    items = []
    for conversation in store.conversations:
        current = conversation.id == store.current
        title = escape(conversation.title)
        ident = escape(conversation.id)
        pressed = ' aria-current="true"' if current else ""
        items.append(
            f'<li class="conversation-item{" is-current" if current else ""}">'
            f'<button type="button" class="conversation-open" data-open="{ident}" title="{title}"{pressed}>'
            f'<span class="conversation-title">{title}</span>'
            f'<span class="conversation-meta">{plural(len(conversation.turns), "question")}'
            f'{" · open" if current else ""}</span></button>'
            f'<button type="button" class="conversation-delete" data-delete="{ident}" '
            f'aria-label="Delete the conversation “{title}”" title="Delete from this browser">✕</button></li>'
        )
    return (f'<nav class="conversation-list" aria-label="Conversations">{heading}'
            f'<ul class="conversations">{"".join(items)}</ul></nav>')


SOURCES_PANEL = (
    '<section class="sources" aria-label="Sources">'
    '<div class="sources-top"><h2 class="sources-heading">Sources</h2>'
    # Its visible text is its name: "Close ✕" beside the chat, "‹ Back to the answer" on a phone's sheet.
    '<button type="button" class="sources-close" hidden><span class="close-wide">Close ✕</span>'
    '<span class="close-narrow">‹ Back to the answer</span></button></div>'
    '<p class="sources-empty">Click a citation such as <span class="cite-sample">[1]</span> or a source '
    "card to read the cited paragraph in its article.</p>"
    '<div class="sources-body" aria-live="polite"></div></section>'
)


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def render_header(service: QAService) -> str:
    try:
        snapshot = service.snapshot()
        articles = len(snapshot.records)
        summary = (f"{plural(articles, 'article')}, {plural(snapshot.paragraph_count, 'paragraph')} indexed"
                   if articles else "Nothing is indexed yet: upload articles in the Library tab")
    except QAError as exc:
        summary = f"The index cannot be read: {exc.message}"
    return (
        '<header class="app-header"><h1>News QA</h1>'
        "<p>Answers from news articles, citing the exact paragraph behind every claim. "
        f'<span class="index-summary">{escape(summary)}</span></p></header>'
    )


def render_delete_question(record: ArticleRecord) -> str:
    return (f'<p class="delete-question" role="alert">Delete <strong>{escape(record.doc)}</strong> '
            f"(“{escape(record.title)}”, {plural(len(record.paragraphs), 'paragraph')})? It leaves the "
            "index, and an uploaded file leaves the upload folder; this cannot be undone.</p>")


def format_ingested(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return stamp


def render_library(listed: LibraryPage | Sequence[ArticleRecord], upload_folder: Path | None = None) -> str:
    """One page of the library: a summary line, the table with sortable headers and a Delete
    button per row, and the pager. ``listed`` may be plain records, shown as a single page.
    Articles saved in ``upload_folder`` are tagged as uploads, and those the query highlights
    (what the session just uploaded) stand out."""
    page = listed if isinstance(listed, LibraryPage) else LibraryPage(LibraryQuery(), tuple(listed), len(listed),
                                                                      len(listed), 1)
    if not page.total:
        return '<p class="library-empty">No articles are indexed. Upload some above.</p>'
    query = page.query
    headers = []
    for column, (label, _, _) in LIBRARY_COLUMNS.items():
        sorted_here = column == query.sort
        direction = ("descending" if query.descending else "ascending") if sorted_here else "none"
        arrow = ("▼" if query.descending else "▲") if sorted_here else "↕"
        headers.append(
            f'<th class="col-{column}" data-column="{column}" aria-sort="{direction}">'
            f'<button type="button" class="sort" data-sort="{column}" title="Sort by {label.lower()}">'
            f'{label} <span class="sort-mark" aria-hidden="true">{arrow}</span></button></th>'
        )
    rows = "".join(render_library_row(record, upload_folder, record.article_id in query.highlighted)
                   for record in page.rows)
    if not rows:
        rows = f'<tr class="no-match"><td colspan="5">No article matches “{escape(query.search)}”.</td></tr>'
    view = f"{query.sort} {query.descending} {query.page} {query.search}"
    return (
        f'<div class="library-view" data-view="{escape(view)}" data-page="{query.page}" data-pages="{page.pages}">'
        f'<p class="library-summary" role="status">{escape(library_summary(page))}</p>'
        f'<div class="library-scroll"><table class="library"><thead><tr>{"".join(headers)}'
        '<th class="col-actions"><span class="visually-hidden">Delete</span></th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>{render_pager(page)}</div>"
    )


def render_library_row(record: ArticleRecord, upload_folder: Path | None, new: bool) -> str:
    uploaded = upload_folder is not None and Path(record.path).parent == upload_folder
    tags = ('<span class="tag tag-new">new</span>' if new else "") + (
        '<span class="tag">uploaded</span>' if uploaded else "")
    highlight = ' class="is-new"' if new else ""
    return (
        f'<tr data-article-id="{escape(record.article_id)}"{highlight}>'
        f'<td class="col-title">{escape(record.title)}</td>'
        f'<td class="col-doc">{escape(record.doc)}{tags}</td><td class="col-count">{len(record.paragraphs)}</td>'
        f'<td class="col-date">{escape(format_ingested(record.ingested_at))}</td>'
        f'<td class="col-actions"><button type="button" class="row-delete" data-delete="{escape(record.article_id)}" '
        f'aria-label="Delete {escape(record.doc)}">Delete</button></td></tr>'
    )


def library_summary(page: LibraryPage) -> str:
    query = page.query
    order = LIBRARY_COLUMNS[query.sort][2][query.descending]
    if query.search:
        found = (f"{page.matching:,} of {plural(page.total, 'article')} match “{query.search}”"
                 if page.matching else f"No article of {page.total:,} matches “{query.search}”")
    else:
        found = plural(page.total, "article")
    shown = f"{page.first:,}–{page.first + len(page.rows) - 1:,} shown" if page.rows else ""
    return " · ".join(part for part in (found, order, shown) if part)


def render_pager(page: LibraryPage) -> str:
    at = page.query.page

    def button(label: str, target: int, name: str) -> str:
        usable = 1 <= target <= page.pages and target != at
        return (f'<button type="button" class="page-button" data-page="{target}" aria-label="{name}"'
                f'{"" if usable else " disabled"}>{label}</button>')

    return (
        '<nav class="library-pager" aria-label="Library pages">'
        f'{button("« First", 1, "First")}{button("‹ Previous", at - 1, "Previous")}'
        f'<span class="page-of">Page {at:,} of {page.pages:,}</span>'
        f'{button("Next ›", at + 1, "Next")}{button("Last »", page.pages, "Last")}</nav>'
    )


def named_paths(payload: object) -> list[object]:
    """The ``path`` of each file record in an upload event's payload, whatever its shape."""
    records = payload if isinstance(payload, list) else [payload] if payload is not None else []
    return [record.get("path") if isinstance(record, dict) else record for record in records]


def shown_name(raw_path: object) -> str:
    """A client-named path's base name, short enough for a report line."""
    name = Path(raw_path).name if isinstance(raw_path, str) and "\x00" not in raw_path else ""
    return displayable(name or "(unnamed file)")[:120]


def upload_line(outcome: UploadedFile, record: ArticleRecord | None) -> tuple[bool, str]:
    if outcome.status == "skipped" or record is None:
        return False, f"{outcome.name}: {outcome.note or 'not indexed'}"
    saved = f"{outcome.name}: {outcome.note}; " if outcome.note else f"{outcome.saved_as}: "
    count = plural(len(record.paragraphs), "paragraph")
    summary = f"already indexed, {count}" if outcome.status == "unchanged" else f"{count} indexed"
    return True, f"{saved}“{record.title}”, {summary}"


def render_upload_report(lines: list[tuple[bool, str]]) -> str:
    items = "".join(
        f'<li class="{"ok" if ok else "failed"}">{"✓" if ok else "✗"} {escape(text)}</li>' for ok, text in lines
    )
    return f'<ul class="upload-report">{items}</ul>' if items else ""


# -- the page's scripts and styles --------------------------------------------------------------

# Opens a source in the panel beside the chat: clones the hidden detail that render_entry placed
# in the same turn (already-escaped markup, so nothing is parsed from strings here). Also keeps
# the newest turn in view: Gradio's own autoscroll follows only when the box was within 100 px of
# its end, so from the second question on (a new turn adds more) the answer landed out of sight.
CITATION_SCRIPT = r"""
const scroller = () => {
  for (let node = element.parentElement; node; node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowY;
    if (overflow === 'auto' || overflow === 'scroll') return node;
  }
  return null;
};
let turnsShown = 0;
let following = true;
// Scrolling by hand while an answer streams in stops the following, until the next question.
['wheel', 'touchmove'].forEach((name) => element.addEventListener(name, () => { following = false; },
                                                                   {passive: true}));
const followNewest = () => {
  const turns = element.querySelectorAll('.turn');
  if (turns.length !== turnsShown) { turnsShown = turns.length; following = true; }
  const box = scroller();
  const newest = turns[turns.length - 1];
  if (!box || !newest || !following) return;
  const view = box.getBoundingClientRect();
  const turn = newest.getBoundingClientRect();
  // The end of the answer in view, but never so far that its question leaves the top.
  const toEnd = turn.bottom - view.bottom + 8;
  const toQuestion = turn.top - view.top - 8;
  box.scrollTop += Math.min(toEnd, toQuestion);
};
// Gradio patches the element's content on every update; the page's own clicks change classes
// only, which are not watched, so opening an older turn's source does not scroll the chat away.
new MutationObserver(followNewest).observe(element, {childList: true, subtree: true, characterData: true});

element.addEventListener('click', (event) => {
  const opener = event.target.closest('[data-source]');
  if (!opener || !element.contains(opener)) return;
  const turn = opener.closest('.turn');
  const detail = turn && Array.from(turn.querySelectorAll('[data-source-detail]'))
    .find((node) => node.dataset.sourceDetail === opener.dataset.source);
  const panel = document.getElementById('sources-panel');
  const body = panel && panel.querySelector('.sources-body');
  if (!detail || !body) return;
  // On a phone the panel opens over the chat as a sheet; Back returns to where the reader was.
  const section = panel.querySelector('.sources');
  const sheet = window.matchMedia('(max-width: 700px)').matches;
  if (sheet && !section.classList.contains('is-sheet')) {
    const box = scroller();
    section.returnTo = {x: window.scrollX, y: window.scrollY, box, top: box ? box.scrollTop : 0, opener};
    section.classList.add('is-sheet');
    section.setAttribute('role', 'dialog');
    section.setAttribute('aria-modal', 'true');
  }
  const copy = detail.cloneNode(true);
  copy.hidden = false;
  body.replaceChildren(copy);
  body.dataset.turn = turn.dataset.turn;
  body.dataset.source = opener.dataset.source;
  panel.querySelector('.sources-empty').hidden = true;
  panel.querySelector('.sources-close').hidden = false;
  if (sheet) panel.querySelector('.sources-close').focus({preventScroll: true});
  element.querySelectorAll('.is-open').forEach((node) => node.classList.remove('is-open'));
  turn.querySelectorAll('[data-source="' + opener.dataset.source + '"]')
    .forEach((node) => node.classList.add('is-open'));
  const cited = body.querySelector('.is-cited');
  if (!cited) return;
  // The first marked sentence just below the pinned header (scrollIntoView would put it under it).
  const header = copy.querySelector('.detail-header');
  const pinned = header ? header.offsetHeight : 0;
  const target = cited.querySelector('mark') || cited;
  const offset = target.getBoundingClientRect().top - body.getBoundingClientRect().top + body.scrollTop;
  const citedTop = cited.getBoundingClientRect().top - body.getBoundingClientRect().top + body.scrollTop;
  const fits = cited.offsetHeight <= body.clientHeight - pinned;
  body.scrollTop = Math.max(0, (fits ? citedTop : offset - 24) - pinned - 4);
  // The sheet covers the window already; beside the chat, the panel may be partly out of it.
  if (!sheet) target.scrollIntoView({block: 'nearest'});
});
"""

# The buttons under each answer (render_answer_actions). Copy puts the text the server rendered
# into the turn (already escaped, read back with textContent) on the clipboard; 👍 / 👎 and
# Regenerate send only the turn's number and the rating, as the conversation's like and retry
# events: the server takes everything else from the answer it keeps for that turn.
ANSWER_ACTIONS_SCRIPT = r"""
const copied = async (text) => {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (error) {
    // No clipboard API outside a secure context (plain http to a LAN address): a selection copy.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    const done = document.execCommand('copy');
    area.remove();
    return done;
  }
};
element.addEventListener('click', async (event) => {
  const button = event.target.closest('.answer-action');
  const turn = button && button.closest('.turn');
  if (!turn || !element.contains(button)) return;
  const number = Number(turn.dataset.turn);
  const status = turn.querySelector('.action-status');
  if (button.dataset.action === 'copy') {
    const done = await copied(turn.querySelector('.copy-text').textContent);
    status.textContent = done ? 'Copied the answer and its sources.' : 'Could not copy: select the text instead.';
  } else if (button.dataset.action === 'rate') {
    // The rating re-renders the turns; a reader who scrolled to an older answer to rate it stays
    // there: CITATION_SCRIPT stops following the newest answer on a wheel, as after scrolling.
    if (turn !== element.querySelector('.turn:last-of-type')) element.dispatchEvent(new Event('wheel'));
    status.textContent = 'Saving…';
    trigger('like', {turn: number, rating: button.dataset.rating});
  } else if (button.dataset.action === 'regenerate') {
    trigger('retry', {turn: number});
  }
});
"""

# The panel's close button. The panel content was placed by CITATION_SCRIPT, so it is emptied here.
SOURCES_SCRIPT = r"""
element.addEventListener('click', (event) => {
  if (!event.target.closest('.sources-close')) return;
  element.querySelector('.sources-body').replaceChildren();
  element.querySelector('.sources-empty').hidden = false;
  element.querySelector('.sources-close').hidden = true;
  document.querySelectorAll('#conversation .is-open').forEach((node) => node.classList.remove('is-open'));
  // The phone's sheet (CITATION_SCRIPT): back to the answer, scrolled as the reader left it.
  const section = element.querySelector('.sources');
  if (!section.classList.contains('is-sheet')) return;
  section.classList.remove('is-sheet');
  section.removeAttribute('role');
  section.removeAttribute('aria-modal');
  const back = section.returnTo;
  section.returnTo = null;
  if (!back) return;
  if (back.box) back.box.scrollTop = back.top;
  window.scrollTo(back.x, back.y);
  if (back.opener && back.opener.isConnected) back.opener.focus({preventScroll: true});
});
document.addEventListener('keydown', (event) => {
  const section = element.querySelector('.sources');
  if (event.key === 'Escape' && section.classList.contains('is-sheet')) element.querySelector('.sources-close').click();
});
"""

# Run by the clear button before its Python handler: the panel content was placed by the script.
CLEAR_SOURCES_SCRIPT = """
() => {
  const panel = document.getElementById('sources-panel');
  if (panel) {
    panel.querySelector('.sources-body').replaceChildren();
    panel.querySelector('.sources-empty').hidden = false;
    panel.querySelector('.sources-close').hidden = true;
  }
}
"""

# Run once the page-load restore has opened the question box (Gradio's autofocus came while it was
# still closed): the focus goes to the box, unless the reader is already in another control, e.g.
# typing a number into the settings while the page loaded. Moved then, the focus would end that
# number half-typed and send the rest of the keys into the question box.
FOCUS_QUESTION_SCRIPT = """
() => {
  const active = document.activeElement;
  if (active && active !== document.body && active !== document.documentElement) return;
  document.querySelector('#question-box textarea')?.focus();
}
"""

# Gradio's number box beside the "Sources to use" slider takes any number and, when it loses focus,
# quietly puts an out-of-range one back in range. This says so, under the slider. It listens in the
# capture phase, so it reads what was typed before Gradio's own blur handler changes it, and it
# writes only textContent.
SOURCES_NOTE_SCRIPT = r"""
const note = element.querySelector('.sources-note');
// Shown inside the slider's own box, right under it (moved there when first needed: the slider
// may not be on the page yet when this runs); the empty block it came in would leave a gap.
const holder = element.closest('#sources-note');
if (holder) holder.style.display = 'none';
const show = (box, message) => {
  const slider = box.closest('#sources-to-use');
  if (slider && note.parentElement !== slider) slider.append(note);
  note.textContent = message;
  note.hidden = !message;
};
const typedBox = (event) => {
  const box = event.target;
  return box instanceof HTMLInputElement && box.closest('#sources-to-use') ? box : null;
};
document.addEventListener('blur', (event) => {
  const box = typedBox(event);
  if (!box || box.type !== 'number') return;
  const typed = box.value.trim();
  const value = Number(typed);
  const low = Number(box.min);
  const high = Number(box.max);
  let message = '';
  if (typed === '' || !Number.isFinite(value)) {
    message = 'Sources to use needs a number from ' + low + ' to ' + high + '.';
  } else if (value > high) {
    message = typed + ' is more than ' + high + ', the most Sources to use allows: set to ' + high + '.';
  } else if (value < low) {
    message = typed + ' is less than ' + low + ', the fewest Sources to use allows: set to ' + low + '.';
  } else if (!Number.isInteger(value)) {
    message = 'Sources to use takes whole numbers only: ' + typed + ' will be refused.';
  }
  show(box, message);
}, true);
document.addEventListener('input', (event) => {
  const box = typedBox(event);
  if (!box) return;
  const value = Number(box.value);
  if (Number.isInteger(value) && value >= Number(box.min) && value <= Number(box.max)) show(box, '');
}, true);
"""

HEADER_CSS = """
.app-header { padding: 4px 2px 8px; }
.app-header h1 { margin: 0 0 4px; font-size: 1.6rem; }
.app-header p { margin: 0; color: var(--body-text-color-subdued); }
.index-summary { display: inline-block; margin-left: 4px; font-weight: 600; color: var(--body-text-color); }
"""

CONVERSATION_CSS = """
.conversation { display: flex; flex-direction: column; gap: 18px; padding: 4px 2px; }
.empty-hint { color: var(--body-text-color-subdued); margin: 24px 0; text-align: center; }
.turn { display: flex; flex-direction: column; gap: 8px; }
.msg { display: flex; flex-direction: column; }
.msg.user { align-items: flex-end; }
.bubble { padding: 10px 14px; border-radius: 14px; max-width: 92%; line-height: 1.55;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.user .bubble { background: var(--color-accent-soft); border: 1px solid var(--border-color-accent-subdued); }
.bot .bubble { background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.bubble.abstention { border-style: dashed; background: transparent; }
.abstention-text { margin: 0 0 6px; font-weight: 600; }
.abstention-text::before { content: "∅ "; }
.bubble.error { border-color: var(--error-border-color, #ef4444); background: var(--error-background-fill, #fef2f2);
  color: var(--error-text-color, #b91c1c); }
.thinking { color: var(--body-text-color-subdued); }
.dots::after { content: "…"; }
.cite, .cite-pending { font: inherit; font-size: 0.8em; font-weight: 700; vertical-align: super;
  padding: 0 3px; margin: 0 1px; border-radius: 4px; line-height: 1; }
.cite { cursor: pointer; color: var(--color-accent); background: var(--color-accent-soft);
  border: 1px solid var(--color-accent); }
.cite:hover, .cite.is-open { background: var(--color-accent); color: white; }
.source-cards, .related { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 0; padding: 0; list-style: none; }
.source-card { display: flex; flex-direction: column; gap: 2px; text-align: left; cursor: pointer;
  max-width: 320px; min-width: 0; flex: 1 1 220px; padding: 8px 10px; border-radius: 10px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); font: inherit; }
.source-card:hover, .source-card.is-open { border-color: var(--color-accent); }
.card-label { font-weight: 700; color: var(--color-accent); }
.card-title { font-weight: 600; font-size: 0.9em; overflow-wrap: anywhere; }
.card-meta { font-size: 0.8em; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.card-excerpt { font-size: 0.85em; color: var(--body-text-color-subdued); overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.related-heading { margin: 4px 0 0; font-size: 0.85em; color: var(--body-text-color-subdued); }
.footnotes { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 4px; font-size: 0.78em;
  color: var(--body-text-color-subdued); }
.mode { font-style: italic; }
.answer-actions { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 6px; }
.answer-action { font: inherit; font-size: 0.82em; cursor: pointer; padding: 2px 10px; min-height: 30px;
  border-radius: 8px; background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  color: var(--body-text-color); }
.answer-action:hover, .answer-action:focus-visible { border-color: var(--color-accent); }
.answer-action[aria-pressed="true"] { background: var(--color-accent-soft); border-color: var(--color-accent); }
.answer-action.rate { padding: 2px 8px; display: inline-flex; align-items: center; }
.thumb { display: block; color: var(--body-text-color-subdued); }
.thumb.down { transform: rotate(180deg); }
.answer-action[aria-pressed="true"] .thumb { color: var(--color-accent); }
.action-status { font-size: 0.8em; color: var(--body-text-color-subdued); }
@media (max-width: 700px) { .answer-action { min-height: 40px; } }
.notice { color: var(--color-accent); }
.unsupported { text-decoration: underline wavy #d97706; text-underline-offset: 3px; cursor: help; }
.source-card.is-missing { border-style: dashed; }
/* A phone: every [n] is a 44 px touch target. The chip drawn inside stays text-sized, and the
   negative margins keep the line as tall as the others. */
@media (max-width: 700px) {
  .cite { position: relative; z-index: 0; display: inline-flex; align-items: center; justify-content: center;
    min-width: 44px; min-height: 44px; margin: -11px 0; padding: 0 6px; vertical-align: middle;
    font-size: 0.85em; background: transparent; border-color: transparent; transition: none;
    -webkit-tap-highlight-color: transparent; }
  .cite::before { content: ""; position: absolute; z-index: -1; inset: 10px 4px; border-radius: 6px;
    background: var(--color-accent-soft); border: 1px solid var(--color-accent); }
  .cite:hover, .cite.is-open { background: transparent; }
  .cite:hover::before, .cite.is-open::before { background: var(--color-accent); }
  .source-card { min-height: 44px; }
}
"""

SOURCES_CSS = """
.sources { padding: 12px 14px; border: 1px solid var(--border-color-primary); border-radius: 12px;
  background: var(--background-fill-secondary); }
.sources-top { display: flex; align-items: center; justify-content: space-between; gap: 8px; margin: 0 0 6px; }
.sources-heading { margin: 0; font-size: 1.1rem; }
.sources-close { font: inherit; font-size: 0.85em; cursor: pointer; padding: 4px 10px; border-radius: 8px;
  min-height: 32px; background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); }
.sources-close:hover { border-color: var(--color-accent); }
.sources-close[hidden], .sources-empty[hidden] { display: none; }
.sources-empty { color: var(--body-text-color-subdued); margin: 0; }
.cite-sample { font-weight: 700; color: var(--color-accent); }
/* Short enough that the whole panel, header included, fits the window beside the chat. */
.sources-body { max-height: min(60vh, calc(100vh - 260px)); min-height: 0; overflow-y: auto; position: relative; }
.detail-header { position: sticky; top: 0; z-index: 1; padding: 0 0 6px; margin: 0 0 6px;
  background: var(--background-fill-secondary); border-bottom: 1px solid var(--border-color-primary); }
.detail-title { margin: 4px 0; font-size: 1rem; overflow-wrap: anywhere; }
.card-label { color: var(--color-accent); }
.detail-meta { display: flex; flex-wrap: wrap; gap: 4px 12px; margin: 0; font-size: 0.85em;
  color: var(--body-text-color-subdued); }
.detail-doc { font-family: var(--font-mono); overflow-wrap: anywhere; }
.context { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
.para { display: flex; gap: 8px; padding: 6px 8px; border-radius: 8px; border-left: 3px solid transparent;
  color: var(--body-text-color-subdued); }
.para p { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.5; }
.para-number { flex: none; font-size: 0.8em; font-weight: 700; padding-top: 2px; min-width: 2.2em; }
.para.is-cited { color: var(--body-text-color); background: var(--color-accent-soft);
  border-left-color: var(--color-accent); }
.para mark { background: #fde68a; color: #1f2937; border-radius: 3px; padding: 0 1px; }
.detail-missing { margin: 6px 0; color: var(--body-text-color-subdued); }
.close-narrow { display: none; }
/* A phone: the source opens over the chat, as a sheet filling the window, with Back at its top. */
@media (max-width: 700px) {
  .sources.is-sheet { position: fixed; inset: 0; z-index: 1000; margin: 0; border: none; border-radius: 0;
    display: flex; flex-direction: column; padding: 8px 14px calc(8px + env(safe-area-inset-bottom));
    box-shadow: 0 0 0 100vmax rgba(0, 0, 0, 0.3); }
  .sources.is-sheet .sources-top { flex: none; }
  .sources.is-sheet .sources-body { flex: 1 1 auto; max-height: none; overscroll-behavior: contain; }
  .sources-close { min-height: 44px; padding: 6px 14px; font-size: 0.95em; }
  .sources.is-sheet .close-wide { display: none; }
  .sources.is-sheet .close-narrow { display: inline; }
}
"""

LIBRARY_PLACEHOLDER = '<p class="library-empty">Opening the library…</p>'

# Sends the table's clicks to the server as events: a column header sorts ({sort}), a pager button
# turns the page ({page}), a row's Delete asks to delete that article ({article_id}). It reads only
# data attributes that render_library wrote. A new page, sort or search starts at the top of the
# list; the same view re-rendered (after a delete) keeps the reader's place in it.
LIBRARY_SCRIPT = r"""
let shownView = null;
let place = 0;
element.addEventListener('scroll', (event) => {
  if (event.target.classList && event.target.classList.contains('library-scroll')) place = event.target.scrollTop;
}, true);
element.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (!button || !element.contains(button) || button.disabled) return;
  if (button.dataset.sort) trigger('click', {sort: button.dataset.sort});
  else if (button.dataset.page) trigger('click', {page: Number(button.dataset.page)});
  else if (button.dataset.delete) trigger('select', {article_id: button.dataset.delete});
});
watch('value', () => {
  const view = element.querySelector('.library-view');
  const list = element.querySelector('.library-scroll');
  if (!view || !list) return;
  list.scrollTop = view.dataset.view === shownView ? place : 0;
  place = list.scrollTop;
  shownView = view.dataset.view;
});
"""

# Run once a row's Delete has been answered: the confirmation sits above the table, which the
# reader may have scrolled away from. It appears on the next frames, after Gradio's update.
SHOW_DELETE_QUESTION_SCRIPT = """
() => {
  const reveal = (frames) => {
    const box = document.getElementById('delete-confirm');
    if (box && box.offsetParent !== null) box.scrollIntoView({block: 'nearest'});
    else if (frames > 0) requestAnimationFrame(() => reveal(frames - 1));
  };
  reveal(60);
}
"""

LIBRARY_CSS = """
.library-summary { margin: 0 0 6px; color: var(--body-text-color-subdued); font-size: 0.9em; }
.library-scroll { max-height: 60vh; overflow: auto; border: 1px solid var(--border-color-primary); border-radius: 10px; }
.library { width: 100%; min-width: 620px; border-collapse: collapse; font-size: 0.9em; }
.library th { position: sticky; top: 0; z-index: 1; text-align: left; background: var(--background-fill-secondary); }
.library th, .library td { padding: 6px 10px; border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
.library th[aria-sort] { padding: 0; }
.sort { font: inherit; font-weight: 600; width: 100%; text-align: left; cursor: pointer; padding: 8px 10px;
  min-height: 36px; background: none; border: none; color: inherit; white-space: nowrap; }
.sort:hover, .sort:focus-visible { color: var(--color-accent); }
.sort-mark { color: var(--body-text-color-subdued); font-size: 0.85em; }
th[aria-sort="ascending"] .sort-mark, th[aria-sort="descending"] .sort-mark { color: var(--color-accent); }
.col-title { overflow-wrap: break-word; min-width: 12em; }
.col-doc { font-family: var(--font-mono); overflow-wrap: break-word; min-width: 10em; }
.col-paragraphs, .col-count { text-align: right; }
.col-indexed, .col-date { white-space: nowrap; }
.col-actions { width: 1%; }
.tag { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; font-family: var(--font-sans);
  font-size: 0.8em; background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.tag-new { background: var(--color-accent); border-color: var(--color-accent); color: white; }
tr.is-new td { background: var(--color-accent-soft); }
.row-delete { font: inherit; font-size: 0.85em; cursor: pointer; padding: 4px 10px; min-height: 32px; border-radius: 8px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  color: var(--error-text-color, #b91c1c); }
.row-delete:hover, .row-delete:focus-visible { border-color: var(--error-text-color, #b91c1c); }
.no-match td { color: var(--body-text-color-subdued); text-align: center; padding: 18px; }
.library-pager { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 8px; }
.page-button { font: inherit; font-size: 0.9em; cursor: pointer; padding: 4px 12px; min-height: 36px; border-radius: 8px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); }
.page-button:hover:not([disabled]) { border-color: var(--color-accent); }
.page-button[disabled] { cursor: default; opacity: 0.45; }
.page-of { padding: 0 6px; font-variant-numeric: tabular-nums; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.library-empty { color: var(--body-text-color-subdued); }
@media (max-width: 700px) {
  .sort, .row-delete, .page-button { min-height: 44px; }
}
"""

# Inline, not a css_template: the script moves the note out of its component, where Gradio's
# scoped styles no longer reach it.
SOURCES_NOTE = ('<p class="sources-note" role="status" hidden style="margin: 6px 0 0; font-size: 0.85em; '
                'font-weight: 600; color: var(--error-text-color, #b91c1c);"></p>')

DELETE_QUESTION_CSS = """
.delete-question { margin: 0; padding: 8px 10px; overflow-wrap: anywhere; }
"""

REPORT_CSS = """
.upload-report { list-style: none; padding: 0; margin: 0; }
.upload-report li { padding: 4px 0; overflow-wrap: anywhere; }
.upload-report .ok { color: var(--body-text-color); }
.upload-report .failed { color: var(--error-text-color, #b91c1c); font-weight: 600; }
"""

# The list of conversations (render_conversation_list): a click sends the conversation's id only,
# to open it or delete it; the handler reads everything else from the browser's store.
CONVERSATION_LIST_SCRIPT = r"""
element.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (!button || !element.contains(button)) return;
  // An answer still coming in belongs to the conversation on screen: switching now would file it
  // under another one.
  if (document.querySelector('#conversation .turn[data-state="pending"], #conversation .turn[data-state="streaming"]')) return;
  const item = button.closest('.conversation-item');
  const shown = item && item.classList.contains('is-current');
  // The panel shows a paragraph of the conversation on screen: it closes when that one goes.
  const closeSources = () => {
    const close = document.querySelector('#sources-panel .sources-close');
    if (close && !close.hidden) close.click();
  };
  if (button.dataset.open) {
    if (shown) return;
    closeSources();
    trigger('click', {open: button.dataset.open});
  } else if (button.dataset.delete) {
    if (shown) closeSources();
    trigger('click', {delete: button.dataset.delete});
  }
});
"""

CONVERSATION_LIST_CSS = """
.conversation-list { margin-top: 4px; }
.conversations-heading { margin: 0 0 6px; font-size: 1rem; }
.conversations-empty { margin: 0; font-size: 0.85em; color: var(--body-text-color-subdued); }
.conversations { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 4px; }
.conversation-item { display: flex; align-items: stretch; gap: 4px; }
.conversation-open { flex: 1 1 auto; min-width: 0; display: flex; flex-direction: column; align-items: flex-start;
  gap: 1px; text-align: left; font: inherit; cursor: pointer; padding: 5px 10px; min-height: 36px; border-radius: 8px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  color: var(--body-text-color); }
.conversation-open:hover, .conversation-open:focus-visible { border-color: var(--color-accent); }
.is-current .conversation-open { border-color: var(--color-accent); background: var(--color-accent-soft); }
.conversation-title { max-width: 100%; font-size: 0.88em; font-weight: 600; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.conversation-meta { font-size: 0.75em; color: var(--body-text-color-subdued); }
.conversation-delete { flex: none; width: 36px; min-height: 36px; font: inherit; cursor: pointer; border-radius: 8px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  color: var(--body-text-color-subdued); }
.conversation-delete:hover, .conversation-delete:focus-visible { color: var(--error-text-color, #b91c1c);
  border-color: var(--error-text-color, #b91c1c); }
@media (max-width: 700px) {
  .conversation-open, .conversation-delete { min-height: 44px; }
  .conversation-delete { width: 44px; }
}
"""


# -- the app -------------------------------------------------------------------------------------


@dataclass
class ChatUI:
    """The handlers behind the page, over one shared service."""

    service: QAService
    settings: Settings
    log: logging.Logger = field(default=LOG)
    # The paths Gradio's upload route wrote: the page's Blocks.upload_file_set once it is built.
    gradio_uploads: set[str] = field(default_factory=set)
    listings: LibraryListings = field(default_factory=LibraryListings)
    given_answers: GivenAnswers = field(default_factory=GivenAnswers)

    def answer_modes(self) -> list[tuple[str, str]]:
        """The modes this server can answer in, the default first; LLM only when one is configured."""
        labels = dict(ANSWER_MODES)
        if self.settings.llm.backend == "local":  # a 1.5B model on the CPU: seconds per answer, not ms
            labels["llm"] += " (local model, slower)"
            labels["judged"] += " (local model, slower)"
        return [(labels[mode], mode) for mode in self.service.answer_modes]

    def respond(self, question: str, entries: list[ChatEntry], k: float, mode: str
                ) -> Iterator[tuple[str, list[ChatEntry], str]]:
        """Stream one answer into the conversation: (conversation HTML, new state, input box).

        ``mode`` is the answer mode picked in the settings; each answer's footnote shows the mode
        that produced it (an LLM answer the check replaced says extractive, with its notice).
        """
        typed = question if isinstance(question, str) else ""
        question = typed.strip()
        if not question:
            yield render_conversation(entries), entries, ""
            return
        history = history_of(entries)
        entry = ChatEntry(question=displayable(question))
        # Refused before the box is cleared: the user fixes the question (or the setting) in place.
        refusal = too_long(question, self.settings.answer.max_question_chars)
        if refusal:
            entry = replace(entry, question=displayable(shortened(question)))
        else:
            try:
                sources = sources_count(k, MAX_SOURCES, SOURCES_RANGE)
            except ValueError as exc:
                refusal = str(exc)
        if refusal:
            done = [*entries, replace(entry, state="error", error=refusal)]
            yield render_conversation(done), done, typed
            return
        yield render_conversation([*entries, entry]), entries, ""
        try:
            for event in self.service.ask_stream(question, history, k=sources, mode=mode or None):
                if isinstance(event, AnswerDelta):
                    entry = replace(entry, state="streaming", answer=entry.answer + event.text)
                    yield render_conversation([*entries, entry]), entries, ""
                elif isinstance(event, AnswerDone):
                    entry = self.finished_entry(question, event.response, history)
        except QAError as exc:
            entry = replace(entry, state="error", error=sentence(exc.message))
        except Exception:  # the chat shows a sentence, the server log keeps the traceback
            self.log.exception("answering %r failed", question)
            entry = replace(entry, state="error",
                            error="Something went wrong on the server while answering. Please try again.")
        done = [*entries, entry]
        # A question that could not be answered goes back into the box, to be asked again as it is.
        yield render_conversation(done), done, typed if entry.state == "error" else ""

    def finished_entry(self, question: str, response: AskResponse, history: Sequence[ChatTurn] = ()) -> ChatEntry:
        citations = tuple(source_view(self.service, c, f"c{c.n}", f"[{c.n}]", response.answer)
                          for c in response.citations)
        closest = {r.article_id: r for r in reversed(response.related)}  # best paragraph per article
        ordered = [r for r in response.related if closest.get(r.article_id) is r]
        related = tuple(source_view(self.service, r, f"r{i}", "") for i, r in enumerate(ordered))
        return ChatEntry(
            question=question, state="done", answer=response.answer, abstained=response.abstained,
            mode=response.mode, standalone_question=response.standalone_question,
            notice=response.notice or "", citations=citations, related=related,
            unsupported=tuple((u.start, u.end) for u in response.unsupported),
            answer_id=self.given_answers.add(GivenAnswer(
                question=question, answer=response.answer, abstained=response.abstained, mode=response.mode,
                earlier_questions=tuple(t.content for t in history if t.role == "user")[-MAX_EARLIER_QUESTIONS:],
                citations=tuple(FeedbackCitation.of(c) for c in response.citations[:MAX_SOURCES]))),
        )

    def ask_api(self, question: str, k: int | None = None) -> dict:
        """Answer a question from the indexed articles: the answer with [n] markers, whether it
        abstained, and the cited paragraphs (title, file, paragraph number, text)."""
        if not isinstance(question, str):
            raise user_error("the question must be text")
        try:
            sources = sources_count(k)
        except ValueError as exc:
            raise user_error(str(exc)) from None
        try:
            return self.service.ask(question, k=sources).model_dump(mode="json")
        except QAError as exc:
            raise user_error(exc.message) from None

    def clear(self) -> tuple[str, list[ChatEntry], str]:
        return render_conversation([]), [], ""

    @property
    def feedback(self) -> FeedbackStore:
        return FeedbackStore(self.settings.index.dir)

    def rate(self, entries: object, event: gr.EventData) -> tuple[str, list[ChatEntry]] | tuple[dict, dict]:
        """A 👍 or 👎 under an answer (``{"turn": n, "rating": "up" | "down"}``): one record in the
        index folder's feedback file of what the server answered in turn n of this session (the
        question, the earlier questions, the answer, its citations, the mode).

        A click sends nothing else, and the record is the one the server kept when it gave the
        answer (:class:`GivenAnswers`), so no client can put an answer of its own into the
        evaluation file. A turn that does not exist or is not answered, any other rating, or the
        rating the answer already has stores nothing and changes nothing.
        """
        data = event_data(event)
        turn, rating = data.get("turn"), data.get("rating")
        if (not isinstance(entries, list) or isinstance(turn, bool) or not isinstance(turn, int)
                or not 0 <= turn < len(entries) or not isinstance(rating, str) or rating not in RATINGS):
            return gr.skip(), gr.skip()
        entry = entries[turn]
        if (not isinstance(entry, ChatEntry) or entry.state != "done" or not entry.answer_id
                or entry.rating == rating):
            return gr.skip(), gr.skip()
        given = self.given_answers.get(entry.answer_id)
        if given is None:
            rated = replace(entry, rating_note="Not saved: this answer is too old to rate; ask the question again.")
        elif not self.given_answers.may_rate(entry.answer_id):
            rated = replace(entry, rating_note="Not saved: this answer has been rated too many times.")
        else:
            record = {
                "time": feedback_time(), "answer_id": entry.answer_id, "rating": rating, "question": given.question,
                "earlier_questions": list(given.earlier_questions), "answer": given.answer,
                "abstained": given.abstained, "mode": given.mode, "citations": list(given.citations),
            }
            try:
                self.feedback.append(record)
            except QAError as exc:
                rated = replace(entry, rating_note=f"Not saved: {sentence(exc.message)}")
            else:
                rated = replace(entry, rating=rating, rating_note="Thanks: saved with the question for evaluation.")
        updated = [*entries[:turn], rated, *entries[turn + 1:]]
        return render_conversation(updated), updated

    def regenerate(self, entries: object, k: float, mode: str, event: gr.EventData
                   ) -> Iterator[tuple[str, list[ChatEntry]] | tuple[dict, dict]]:
        """Regenerate under the newest answer (``{"turn": n}``): its question asked again over the
        same earlier turns, with the settings as they are now; the new answer replaces that turn's
        (and its rating). Only the newest answered turn can be asked again: any other turn a client
        names changes nothing."""
        turn = event_data(event).get("turn")
        if (not isinstance(entries, list) or not entries or isinstance(turn, bool) or not isinstance(turn, int)
                or turn != len(entries) - 1 or not isinstance(entries[-1], ChatEntry)
                or entries[-1].state != "done"):
            yield gr.skip(), gr.skip()
            return
        for conversation, state, _ in self.respond(entries[-1].question, entries[:-1], k, mode):
            yield conversation, state

    def example_questions(self) -> list[str]:
        """A question about each of the most recently indexed articles, from its title (at most
        EXAMPLE_COUNT); none when nothing is indexed or the index cannot be read."""
        try:
            snapshot = self.service.snapshot()
        except QAError:
            return []
        questions: list[str] = []
        # The library's listing, newest first: worked out once per index generation for both.
        for record in self.listings.of(snapshot.generation, snapshot.records).page(LibraryQuery()).rows:
            question = example_question(record.title)
            if question and question not in questions:
                questions.append(question)
            if len(questions) == EXAMPLE_COUNT:
                break
        return questions

    def examples(self) -> list[dict]:
        """The example buttons' labels (hidden when there are fewer articles), and the note that
        stands in for them over an empty index."""
        questions = self.example_questions()
        buttons = [gr.update(value=text, visible=True) for text in questions]
        buttons += [gr.update(visible=False)] * (EXAMPLE_COUNT - len(questions))
        return [*buttons, gr.update(visible=not questions)]

    def library_table(self, query: LibraryQuery) -> tuple[str, LibraryQuery]:
        """(the library page ``query`` asks for, over the index as it is now; the query as shown,
        its page brought into range)."""
        try:
            snapshot = self.service.snapshot()
        except QAError as exc:
            return f'<p class="library-empty">{escape(sentence(exc.message))}</p>', query
        page = self.listings.of(snapshot.generation, snapshot.records).page(query)
        return render_library(page, self.settings.index.upload_folder), page.query

    def open_library(self, query: object) -> tuple[str, LibraryQuery]:
        """The session's library page, read afresh each time the tab opens."""
        return self.library_table(library_query(query))

    def search_library(self, text: object, query: object) -> tuple[str, LibraryQuery] | tuple[dict, dict]:
        """The first page of what ``text`` finds. The box changes when an upload empties it too:
        the upload has shown the library already, so the same search again changes nothing."""
        shown = library_query(query)
        searched = shown.searching(text)
        if searched.search == shown.search:
            return gr.skip(), gr.skip()
        return self.library_table(searched)

    def navigate_library(self, query: object, event: gr.EventData) -> tuple[str, LibraryQuery]:
        """A click on a column header (``{"sort": column}``) or a pager button (``{"page": n}``)."""
        clicked = event_data(event)
        query = library_query(query)
        if "sort" in clicked:
            query = query.sorted_by(clicked["sort"])
        elif "page" in clicked:
            query = query.on_page(clicked["page"])
        return self.library_table(query)

    def upload(self, payload: object, progress: gr.Progress = gr.Progress()
               ) -> tuple[str, str, str, LibraryQuery, str, None]:
        """Index the files of one upload event, all in one ingest: a ✓ or ✗ line per file, and
        the library's first page, newest first, with what was just indexed highlighted at the top.

        The event gets Gradio's file records unprocessed (``preprocess=False``): Gradio's own
        processing of a file list leaves an empty temp file behind for every file. Each record's
        path was named by the client, so only a file that Gradio's upload route wrote is read
        (:meth:`received_file`); it is deleted once read, whatever becomes of it.
        """
        lines: list[tuple[bool, str]] = []
        accepted: list[tuple[str, bytes]] = []
        limit = self.settings.server.max_upload_bytes
        read_before: dict[object, bytes | None] = {}  # one upload can list the same stored file twice
        for raw_path in progress.tqdm(named_paths(payload), desc="Reading uploads", unit="files"):
            name = shown_name(raw_path)
            key = raw_path if isinstance(raw_path, str) else id(raw_path)
            if key not in read_before:
                read_before[key] = self.received_file(raw_path)
            content = read_before[key]
            if content is None:
                lines.append((False, f"{name}: {NOT_UPLOADED}"))
                continue
            try:
                safe_upload_name(name)
            except QAError as exc:
                lines.append((False, f"{name}: {exc.message}"))
                continue
            if len(content) > limit:
                lines.append((False, f"{name}: {len(content):,} bytes is over the upload limit of {limit:,} bytes"))
                continue
            accepted.append((name, content))
        new: frozenset[str] = frozenset()
        if accepted:
            progress(0.5, desc=f"Indexing {plural(len(accepted), 'article')}")
            try:
                outcomes, _ = self.service.upload(accepted, on_conflict="rename")
            except QAError as exc:
                lines.extend((False, f"{name}: {exc.message}") for name, _ in accepted)
            else:
                records = self.service.snapshot().records
                lines.extend(upload_line(outcome, records.get(outcome.article_id or "")) for outcome in outcomes)
                new = frozenset(outcome.article_id for outcome in outcomes if outcome.article_id)
        table, query = self.library_table(LibraryQuery(highlighted=new))
        return render_upload_report(lines), render_header(self.service), table, query, "", None

    def received_file(self, raw_path: object) -> bytes | None:
        """The bytes of a file that Gradio's upload route wrote, then removed from its temp folder;
        None for any other path (outside the upload folder, through a symlink, not a regular file,
        missing, or never uploaded), without saying which."""
        if not isinstance(raw_path, str) or not raw_path or "\x00" in raw_path:
            return None
        path = os.path.abspath(raw_path)
        # Membership tests only: the upload route adds to the set from another thread meanwhile.
        if path not in self.gradio_uploads and raw_path not in self.gradio_uploads:
            return None
        folder = os.path.abspath(get_upload_folder())
        inside = Path(path).relative_to(folder) if Path(path).is_relative_to(folder) else None
        if inside is None or not inside.parts:
            return None
        # A symlink anywhere below the folder could lead out of it; Gradio never writes one.
        if Path(os.path.realpath(path)) != Path(os.path.realpath(folder), inside):
            return None
        try:
            return read_regular_file(Path(path))
        except SkipFile:
            return None
        finally:
            self.gradio_uploads.discard(raw_path)
            self.discard_upload(path, folder)

    def discard_upload(self, path: str, folder: str) -> None:
        self.gradio_uploads.discard(path)
        try:
            os.unlink(path)
            # Gradio keeps each upload in a folder named after its hash; an empty one is litter.
            if os.path.dirname(path) != folder:
                os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # gone already, or the hash folder still holds another client's upload

    def ask_to_delete(self, event: gr.EventData) -> tuple[str, dict, str, str | None]:
        """The first step of a delete, from a row's Delete button (``{"article_id": id}``):
        (status, confirmation box, its question, article waiting).

        Nothing is deleted here. The article waits in the session's state, which only the server
        holds, so a client cannot confirm a delete it was never asked about, and a pick changed
        after this step does not change what the confirmation deletes.
        """
        hidden = gr.update(visible=False)
        article_id = event_data(event).get("article_id")
        if not isinstance(article_id, str) or not article_id:
            return render_upload_report([(False, "Choose an article to delete first.")]), hidden, "", None
        try:
            record = self.service.document(article_id)
        except QAError as exc:
            return render_upload_report([(False, sentence(exc.message))]), hidden, "", None
        return "", gr.update(visible=True), render_delete_question(record), article_id

    def delete(self, waiting: object, query: object) -> tuple[str, str, str, LibraryQuery, dict, None]:
        """The confirmed delete of the article :meth:`ask_to_delete` asked about; the library stays
        on the page it was on."""
        if not isinstance(waiting, str) or not waiting:
            line = (False, "No delete is waiting for confirmation: click Delete in the article's row first.")
        else:
            try:
                record = self.service.delete_document(waiting)
                line = (True, f"Deleted {record.doc} (“{record.title}”).")
            except QAError as exc:
                line = (False, sentence(exc.message))
        table, shown = self.library_table(library_query(query))
        return (render_upload_report([line]), render_header(self.service), table, shown,
                gr.update(visible=False), None)

    def cancel_delete(self, waiting: object) -> tuple[str, dict, None]:
        try:
            kept = self.service.document(waiting).doc if isinstance(waiting, str) and waiting else ""
        except QAError:
            kept = ""
        line = f"Kept {kept}: nothing was deleted." if kept else "Nothing was deleted."
        return render_upload_report([(True, line)]), gr.update(visible=False), None


@dataclass
class ConversationMemory:
    """The handlers that keep a browser's conversations in its localStorage (gr.BrowserState)
    and bring them back: on page load, after every change to the chat's turns, and from the list
    of conversations. The browser's copy is read with ConversationStore.read, never trusted."""

    service: QAService
    settings: Settings

    def read(self, value: object) -> ConversationStore:
        return ConversationStore.read(value, self.settings.answer.max_question_chars)

    def entries(self, conversation: StoredConversation | None) -> list[ChatEntry]:
        """The conversation's turns as the chat holds them, their sources read again from the index."""
        if conversation is None:
            return []
        try:
            records = self.service.snapshot().records
        except QAError:
            records = {}  # an index that cannot be read shows every source as no longer indexed
        return [turn.entry(records) for turn in conversation.turns]

    def restore(self, value: object) -> tuple[str, list[ChatEntry], str, dict, dict, dict]:
        """On page load: the conversation that was on screen, the list, the store as checked, and
        the question box and Ask button opened. They stay closed until then: a question answered
        before the restore landed would be wiped from the screen by it."""
        opened = gr.update(interactive=True)
        try:
            store = self.read(value)
            entries = self.entries(store.find(store.current))
        except Exception:  # noqa: BLE001  (a chat that cannot be used at all is worse than one without its history)
            LOG.exception("could not restore the browser's conversations")
            store, entries = ConversationStore.empty(), []
        return render_conversation(entries), entries, render_conversation_list(store), store.value(), opened, opened

    def remember(self, entries: object, value: object) -> tuple[dict, str] | tuple[dict, dict]:
        """The chat's answered turns, written into the current conversation. No answered turn
        changes nothing: a regenerated first answer empties the turns while it streams in."""
        if not isinstance(entries, list):
            return gr.skip(), gr.skip()
        turns = tuple(StoredTurn.of(e) for e in entries if isinstance(e, ChatEntry) and e.state == "done")
        store = self.read(value)
        updated = store.with_turns(turns)
        if updated == store:
            # Also when no turn is answered: a Clear's new conversation (start_new, running beside
            # this handler) must not be overwritten with the store as it was before the click.
            return gr.skip(), gr.skip()
        return updated.value(), render_conversation_list(updated)

    def start_new(self, value: object) -> tuple[dict, str]:
        """Clear conversation: a new conversation starts; the one cleared stays in the list."""
        store = self.read(value)
        if store.find(store.current) is None:
            return store.value(), render_conversation_list(store)
        store = replace(store, current=new_conversation_id())
        return store.value(), render_conversation_list(store)

    def choose(self, value: object, event: gr.EventData) -> tuple:
        """A click in the list: ``{"open": id}`` shows that conversation, ``{"delete": id}``
        removes it (the chat starts afresh if it was the one on screen). An unknown id changes
        nothing."""
        data = event_data(event)
        store = self.read(value)
        nothing = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
        if "open" in data:
            conversation = store.find(data["open"])
            if conversation is None:
                return nothing
            store = replace(store, current=conversation.id)
            entries = self.entries(conversation)
            return render_conversation(entries), entries, store.value(), render_conversation_list(store)
        if "delete" in data:
            ident = data["delete"]
            if store.find(ident) is None:
                return nothing
            shown = ident == store.current
            store = store.without(ident)
            if shown:
                return render_conversation([]), [], store.value(), render_conversation_list(store)
            return gr.skip(), gr.skip(), store.value(), render_conversation_list(store)
        return nothing


def offline_theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: its default web fonts come from a font
    CDN, which an offline newsroom machine cannot reach (the page then mixes fallback glyphs)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def build_ui(service: QAService, settings: Settings) -> gr.Blocks:
    with gr.Blocks(title="News QA", fill_width=False) as blocks:
        chat = ChatUI(service, settings, gradio_uploads=blocks.upload_file_set)
        modes = chat.answer_modes()
        header = gr.HTML(lambda: render_header(service), css_template=HEADER_CSS, js_on_load=None,
                         elem_id="app-header")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=340):
                        conversation = gr.HTML(
                            render_conversation([]), elem_id="conversation", css_template=CONVERSATION_CSS,
                            js_on_load=CITATION_SCRIPT + ANSWER_ACTIONS_SCRIPT, autoscroll=False, max_height="68vh", min_height=160,
                        )
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(
                                show_label=False, placeholder="Ask about the articles, e.g. a follow-up: “and why?”",
                                lines=1, max_lines=4, scale=5, min_width=200, elem_id="question-box",
                                autofocus=True, interactive=False,  # opened by ConversationMemory.restore
                            )
                            send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask-button",
                                             interactive=False)
                        # Filled when the page loads and after each upload or delete (chat.examples).
                        with gr.Row(elem_id="examples"):
                            example_buttons = [
                                gr.Button("", size="sm", variant="secondary", min_width=160, visible=False,
                                          elem_classes=["example-question"])
                                for _ in range(EXAMPLE_COUNT)
                            ]
                            examples_empty = gr.HTML(EXAMPLES_EMPTY, visible=False, elem_id="examples-empty")
                    with gr.Column(scale=2, min_width=300):
                        # Filled in the browser by CITATION_SCRIPT, so no handler ever outputs to it.
                        gr.HTML(SOURCES_PANEL, elem_id="sources-panel", css_template=SOURCES_CSS,
                                js_on_load=SOURCES_SCRIPT)
                        # Closed: the defaults answer well, and the panel above keeps the room.
                        with gr.Accordion("Settings", open=False, elem_id="chat-settings"):
                            top_k = gr.Slider(1, MAX_SOURCES, value=min(settings.retrieval.top_k, MAX_SOURCES),
                                              step=1, label="Sources to use",
                                              info="Paragraphs read for each answer", elem_id="sources-to-use")
                            # Filled in the browser by SOURCES_NOTE_SCRIPT when a typed number is out of range.
                            gr.HTML(SOURCES_NOTE, elem_id="sources-note", js_on_load=SOURCES_NOTE_SCRIPT)
                            # With one mode there is nothing to choose: a line says which, and why, instead
                            # of a disabled control. Hidden, the radio still sends its value to the events.
                            mode = gr.Radio(modes, value=modes[0][1], label="Answer mode", elem_id="answer-mode",
                                            visible=len(modes) > 1)
                            if len(modes) == 1:
                                gr.HTML(render_single_mode(modes[0][0]), elem_id="answer-mode-note")
                        # Outside the closed settings: clearing is an everyday action.
                        clear = gr.Button("Clear conversation", variant="secondary", elem_id="clear-button")
                        # Filled from the browser's own store when the page loads (ConversationMemory).
                        conversation_list = gr.HTML(
                            render_conversation_list(ConversationStore.empty()), elem_id="conversation-list",
                            css_template=CONVERSATION_LIST_CSS, js_on_load=CONVERSATION_LIST_SCRIPT)
            with gr.Tab("Library", id="library", elem_id="library-tab") as library_tab:
                with gr.Row(equal_height=False):
                    with gr.Column(min_width=300):
                        files = gr.File(label="Upload articles (.txt, .md, .html)", file_count="multiple",
                                        file_types=UPLOAD_TYPES, type="filepath", elem_id="upload-files",
                                        height=140)
                    with gr.Column(min_width=300):
                        library_search = gr.Textbox(label="Search the library", elem_id="library-search",
                                                    placeholder="Words from a title or a file name",
                                                    max_length=MAX_LIBRARY_SEARCH_CHARS, lines=1)
                # Between the controls and the table, where the upload box, a row's Delete or a
                # Confirm was clicked: the outcome and the confirmation are seen without scrolling.
                library_status = gr.HTML("", css_template=REPORT_CSS, js_on_load=None, elem_id="library-status")
                # A Column, not a Group: Gradio 6.31 puts a Group's elem_id on two nested elements.
                with gr.Column(visible=False, elem_id="delete-confirm", variant="panel") as confirm_box:
                    delete_question = gr.HTML("", css_template=DELETE_QUESTION_CSS, js_on_load=None,
                                              elem_id="delete-question")
                    with gr.Row():
                        confirm_delete = gr.Button("Confirm delete", variant="stop", elem_id="confirm-delete")
                        cancel_delete = gr.Button("Cancel", variant="secondary", elem_id="cancel-delete")
                # Filled when the tab opens, one page at a time: never the whole list in the page.
                library_table = gr.HTML(LIBRARY_PLACEHOLDER, css_template=LIBRARY_CSS, js_on_load=LIBRARY_SCRIPT,
                                        elem_id="library-table")

        entries = gr.State([])
        ask_inputs = [question, entries, top_k, mode]
        ask_outputs = [conversation, entries, question]
        question.submit(chat.respond, ask_inputs, ask_outputs, api_visibility="private")
        send.click(chat.respond, ask_inputs, ask_outputs, api_visibility="private")
        example_outputs = [*example_buttons, examples_empty]
        blocks.load(chat.examples, None, example_outputs, show_progress="hidden", api_visibility="private")
        for button in example_buttons:
            # The button's own label is the question (a client may send any text: it is only a question).
            button.click(lambda text: text, button, question, api_visibility="private", queue=False).then(
                chat.respond, ask_inputs, ask_outputs, api_visibility="private")
        # Only which turn (and which rating): the handlers take the rest from the session's entries.
        conversation.like(chat.rate, entries, [conversation, entries], show_progress="hidden",
                          api_visibility="private")
        conversation.retry(chat.regenerate, [entries, top_k, mode], [conversation, entries],
                           api_visibility="private")
        clear.click(chat.clear, None, ask_outputs, js=CLEAR_SOURCES_SCRIPT, api_visibility="private")

        # The browser keeps its conversations (plain data, checked when read back: ConversationMemory);
        # the session's entries stay the server's own, with their answer ids for rating.
        memory = ConversationMemory(service, settings)
        storage_key, secret = conversation_storage(settings)
        stored = gr.BrowserState(ConversationStore.empty().value(), storage_key=storage_key, secret=secret)
        blocks.load(memory.restore, stored, [conversation, entries, conversation_list, stored, question, send],
                    show_progress="hidden", api_visibility="private").then(None, js=FOCUS_QUESTION_SCRIPT)
        # Every handler that changes the turns (an answer, a rating, a regenerate, a restore) is seen here.
        entries.change(memory.remember, [entries, stored], [stored, conversation_list], show_progress="hidden",
                       api_visibility="private")
        clear.click(memory.start_new, stored, [stored, conversation_list], show_progress="hidden",
                    api_visibility="private")
        conversation_list.click(memory.choose, stored, [conversation, entries, stored, conversation_list],
                                show_progress="hidden", api_visibility="private")

        query = gr.State(LibraryQuery())
        page_outputs = [library_table, query]
        # Listing a page takes milliseconds: a progress overlay would only flicker.
        library_tab.select(chat.open_library, query, page_outputs, show_progress="hidden", api_visibility="private")
        # Not .input: Gradio fires that for typed keys only, not for pasted text.
        library_search.change(chat.search_library, [library_search, query], page_outputs, show_progress="hidden",
                              trigger_mode="always_last", api_visibility="private")
        library_table.click(chat.navigate_library, query, page_outputs, show_progress="hidden",
                            api_visibility="private")
        # One progress indicator, on the upload box the files were dropped on, not one per output.
        files.upload(chat.upload, files, [library_status, header, *page_outputs, library_search, files],
                     show_progress_on=files, api_visibility="private", preprocess=False).then(
            chat.examples, None, example_outputs, show_progress="hidden", api_visibility="private")
        waiting_delete = gr.State(None)
        library_table.select(chat.ask_to_delete, None, [library_status, confirm_box, delete_question, waiting_delete],
                             show_progress="hidden", api_visibility="private").then(
            None, js=SHOW_DELETE_QUESTION_SCRIPT)
        confirm_delete.click(chat.delete, [waiting_delete, query],
                             [library_status, header, *page_outputs, confirm_box, waiting_delete],
                             show_progress_on=library_table, api_visibility="private").then(
            chat.examples, None, example_outputs, show_progress="hidden", api_visibility="private")
        cancel_delete.click(chat.cancel_delete, waiting_delete, [library_status, confirm_box, waiting_delete],
                            show_progress="hidden", api_visibility="private")
        gr.api(chat.ask_api, api_name="ask")
    blocks.queue(default_concurrency_limit=4)
    return blocks
