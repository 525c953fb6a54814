"""The one service behind the CLI, the API and the chat: ingest, ask, list and delete articles.

It owns the parts (Chroma index, embedding model, keyword index) and the
current :class:`~qa._retrieval.IndexSnapshot`. Queries read a snapshot;
whenever the index generation in Chroma changes (an ingest here, or in another
process) the next query loads a new snapshot, so an article is visible whole
or not at all. Writes are serialised by a lock; reads never wait for a whole
ingest, only for a snapshot swap.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from qa._condense import condense, is_follow_up
from qa._config import Settings
from qa._embedding import make_embedding
from qa._articles import article_id_for
from qa._errors import (
    DocumentNotFound, IndexCorrupt, IndexEmpty, InvalidInput, InvalidQuestion, LLMError, UploadRejected,
)
from qa._generate import Generated, generate_answer, rewrite_follow_up
from qa._ingest import Ingestor, Progress, SourceFile, check_embedding_model
from qa.llm import ChatModel, start_chat_model
from qa._keyword import KeywordStore
from qa._lock import exclusive_writer
from qa._judge import Verdict, judge
from qa._models import ArticleRecord, AskResponse, ChatTurn, CitationCheck, IngestReport, JudgeVerdict
from qa._retrieval import HybridRetriever, IndexSnapshot
from qa._store import ChromaIndex, forget_open_clients, release_dropped_clients
from qa._text import has_lone_surrogate
from qa._uploads import (
    OnConflict, PlannedUpload, UploadedFile, plan_uploads, restore, safe_upload_name, write_atomically,
)
from qa.reader import ABSTENTION, ExtractiveAnswer, SpacyTagger, answer_extractively

MAX_K = 50


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of answer text, as it is produced."""

    text: str


@dataclass(frozen=True)
class AnswerDone:
    """The end of a streamed answer: the whole response with its citations."""

    response: AskResponse


class QAService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: ChromaIndex | None = None
        self._embedder = None
        self._tagger: SpacyTagger | None = None
        self._chat_model: ChatModel | None = None
        self._chat_model_started = False
        self._snapshot: IndexSnapshot | None = None
        self._keyword_store = KeywordStore(Path(settings.index.dir) / "keyword")
        self._parts_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._write_lock = threading.Lock()

    # -- parts -------------------------------------------------------------------

    @property
    def index(self) -> ChromaIndex:
        with self._parts_lock:
            if self._index is None:
                self._index = ChromaIndex(self.settings)
            return self._index

    @property
    def tagger(self) -> SpacyTagger:
        """spaCy's tagger for the reader's answer types; the model loads on the first typed question."""
        with self._parts_lock:
            if self._tagger is None:
                self._tagger = SpacyTagger()
            return self._tagger

    @property
    def embedder(self):
        with self._parts_lock:
            if self._embedder is None:
                self._embedder = make_embedding(self.settings.embedding)
            return self._embedder

    # -- the LLM answer path (issue 5) -------------------------------------------

    @property
    def chat_model(self) -> ChatModel | None:
        """The configured LLM, started on first use; None when the backend is extractive.

        A backend that cannot start raises :class:`ConfigError` naming what to set."""
        with self._parts_lock:
            if not self._chat_model_started:
                self._chat_model = start_chat_model(self.settings.llm)
                self._chat_model_started = True
            return self._chat_model

    def start_llm(self) -> None:
        """Start the configured LLM now, so a misconfigured one stops the server at start-up."""
        _ = self.chat_model

    def close(self) -> None:
        """Stop what the LLM runs outside this process (a local model's child); started again on next use.

        Exiting does it too: the child dies with the process."""
        with self._parts_lock:
            model, self._chat_model, self._chat_model_started = self._chat_model, None, False
        if model is not None:
            model.close()

    @property
    def answer_modes(self) -> tuple[str, ...]:
        """The answer modes offered, the default first."""
        return ("extractive",) if self.settings.llm.backend == "extractive" else ("llm", "judged", "extractive")

    def answer_mode(self, mode: str | None) -> str:
        if mode is None:
            return self.answer_modes[0]
        if mode not in self.answer_modes:
            raise InvalidInput(f"mode {mode!r} is not available: use one of {', '.join(self.answer_modes)}"
                               + (" (set [llm] backend in the config for LLM answers)"
                                  if mode in ("llm", "judged") else ""))
        return mode

    # -- end of the LLM answer path ----------------------------------------------

    def _replace_stale(self, stale: ChromaIndex) -> bool:
        """Open a new client in place of one that has not seen another process's commit; False
        when another thread has done so already."""
        with self._parts_lock:
            if self._index is not stale:
                return False
            forget_open_clients()  # Chroma would hand back the stale client's system otherwise
            self._index = ChromaIndex(self.settings)
            return True

    def _current_index(self) -> tuple[ChromaIndex, str]:
        """The index and its generation, through a client that has seen every commit so far."""
        index = self.index
        generation = index.generation()
        if not index.has_seen(generation):
            replaced = self._replace_stale(index)
            index = self.index  # this frame no longer holds the stale client, so the release can free it
            if replaced:
                release_dropped_clients()
            generation = index.generation()
        return index, generation

    @contextlib.contextmanager
    def _writing(self, what: str, refresh: bool = True) -> Iterator[None]:
        """Writes one at a time: in this process, and across the processes sharing an embedded
        index (:mod:`qa._lock`), whose commits the index is first brought up to date with."""
        with self._write_lock:
            if self.settings.vector_store.mode != "embedded":
                yield
                return
            with exclusive_writer(Path(self.settings.index.dir), self.settings.index.writer_wait_s, what):
                if refresh:
                    self._current_index()
                yield

    def snapshot(self) -> IndexSnapshot:
        """The current view of the index, reloaded when another write committed since."""
        index, generation = self._current_index()
        current = self._snapshot
        if current is not None and current.generation == generation:
            return current
        with self._snapshot_lock:
            if self._snapshot is not None and self._snapshot.generation == generation:
                return self._snapshot
            # The previous snapshot's records, brought forward by the commits since, when it has one.
            previous = self._snapshot
            known = (previous.generation, previous.records) if previous is not None else None
            records = index.records(generation, known)
            keyword = self._keyword_store.open_at(generation, records, index)
            self._snapshot = IndexSnapshot.of(generation, records, keyword, index.embedding_model())
            return self._snapshot

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.index, self.embedder, self.settings.chunking, self.settings.ingest.commit_chunks)

    def warm_up(self) -> None:
        """Load the models and the index now rather than on the first question.

        The first vector search goes first: Chroma loads its vector index on it (3.5 s at a
        million paragraphs, in ``chroma run``'s own process in server mode), a wait that a server
        starting its warm-up early overlaps with reading the manifest for the chat page. Loading
        spaCy (half a second) waits for the snapshot, the manifest and the keyword index: beside
        the manifest's unpickling, on the other thread, it made both take twice as long."""
        vector = self.embedder.embed(["warm up"])[0]
        # An index of another model is refused by the first question, with what to do.
        if self.index.embedding_model() == self.embedder.model_name:
            self.index.dense_search(vector, 1)
        self.snapshot()
        if self.settings.answer.answer_types:
            self.tagger.entities(["Warm up in London on 3 March."])

    # -- writing -----------------------------------------------------------------

    def ingest(self, paths: Iterable[Path], rebuild: bool = False,
               progress: Progress | None = None) -> IngestReport:
        paths = list(paths)
        with self._writing("ingest", refresh=not rebuild):
            if rebuild:
                self._drop_index()
                # Uploaded articles have no other copy: a rebuild must not drop them from the index.
                if self.settings.index.upload_folder.is_dir():
                    paths.append(self.settings.index.upload_folder)
            report = self._ingestor().run(paths, progress)
        self.snapshot()
        self.index.leave_manifest_copy()
        return report

    def _drop_index(self) -> None:
        """Empty the index; an embedded index folder that cannot even be opened is deleted."""
        try:
            self.index.reset()
        except IndexCorrupt:
            if self.settings.vector_store.mode != "embedded":
                raise
            shutil.rmtree(Path(self.settings.index.dir) / "chroma", ignore_errors=True)
            forget_open_clients()
        shutil.rmtree(Path(self.settings.index.dir) / "keyword", ignore_errors=True)
        with self._parts_lock:
            self._index = None
        self._snapshot = None

    def upload(self, files: Sequence[tuple[str, bytes]], on_conflict: OnConflict = "refuse"
               ) -> tuple[list[UploadedFile], IngestReport]:
        """Save uploaded articles (client name, bytes) in the upload folder and index them, in one
        ingest and one index reload however many there are.

        Every name and size is checked first, so a refused request changes nothing. A file that
        cannot be indexed is not kept; should indexing fail, every file is put back as it was."""
        limit = self.settings.server.max_upload_bytes
        for name, content in files:
            if len(content) > limit:
                raise UploadRejected(f"{safe_upload_name(name)} is {len(content):,} bytes; the limit is {limit:,}",
                                     http_status=413)
        folder = self.settings.index.upload_folder
        folder.mkdir(parents=True, exist_ok=True)
        with self._writing("upload"):
            plans = plan_uploads(folder, files, on_conflict)
            written = [plan for plan in plans if not plan.duplicate]
            try:
                for plan in written:
                    write_atomically(plan.target, plan.content)  # a concurrent ingest never reads half a file
                report = self._ingestor().run_files([SourceFile(plan.target, folder) for plan in written], [], [])
            except BaseException:
                for plan in written:
                    restore(plan)
                raise
            reasons = dict(report.skipped)
            for plan in written:
                if str(plan.target) in reasons:
                    restore(plan)  # a file we could not index is not kept
        records = self.snapshot().records
        # The report names files by their path on the server; the client knows them by name.
        report.skipped = [(plan.name, reasons[str(plan.target)]) for plan in written if str(plan.target) in reasons]
        return [self._upload_outcome(plan, report, reasons, records) for plan in plans], report

    @staticmethod
    def _upload_outcome(plan: PlannedUpload, report: IngestReport, reasons: dict[str, str],
                        records: dict[str, ArticleRecord]) -> UploadedFile:
        if str(plan.target) in reasons:
            return UploadedFile(plan.name, "", "skipped", note=reasons[str(plan.target)])
        saved = plan.target.name
        record = records.get(article_id_for(plan.target))
        status = ("updated" if saved in report.updated else "added" if saved in report.added else "unchanged")
        return UploadedFile(plan.name, saved, status, record.article_id if record else None, plan.note)

    def delete_document(self, article_id: str) -> ArticleRecord:
        """Remove an article from the index; an uploaded article's file is deleted too, so a
        later ingest of the upload folder does not bring it back."""
        record = self.document(article_id)
        with self._writing("delete"):
            self.index.remove_article(article_id)
            path = Path(record.path)
            if path.parent == self.settings.index.upload_folder:
                path.unlink(missing_ok=True)
        self.snapshot()
        return record

    # -- reading -----------------------------------------------------------------

    def documents(self) -> list[ArticleRecord]:
        return sorted(self.snapshot().records.values(), key=lambda r: r.doc)

    def document(self, article_id: str) -> ArticleRecord:
        record = self.snapshot().records.get(article_id)
        if record is None:
            raise DocumentNotFound(f"no indexed article has id {article_id!r}")
        return record

    def validate_question(self, question: object) -> str:
        """The question as it is searched, or :class:`InvalidQuestion` saying what is wrong with it."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidQuestion("the question is empty; ask something about the articles")
        _check_unicode(question, "the question", InvalidQuestion)
        limit = self.settings.answer.max_question_chars
        if len(question) > limit:
            raise InvalidQuestion(f"the question is {len(question)} characters long; the limit is {limit}")
        # Control and invisible format characters (NUL, zero-width spaces) carry no meaning here.
        visible = "".join(char for char in question
                          if char in "\t\n" or unicodedata.category(char) not in ("Cc", "Cf")).strip()
        if not any(unicodedata.category(char)[0] in "LN" for char in visible):
            raise InvalidQuestion("the question has no words in it; ask something about the articles")
        return visible

    @staticmethod
    def validate_history(history: list[ChatTurn] | None) -> list[ChatTurn]:
        for number, turn in enumerate(history or [], 1):
            _check_unicode(turn.content, f"turn {number} of the history", InvalidInput)
        return list(history or [])

    def ask(self, question: str, history: list[ChatTurn] | None = None, k: int | None = None,
            retrieve: int | None = None, mode: str | None = None) -> AskResponse:
        """Answer ``question`` from the indexed articles, citing paragraphs, or abstain.

        ``k`` paragraphs are read for the answer; ``retrieve`` (at least ``k``) are listed in
        ``retrieved``, so an evaluation can measure hit@10 of the same ranking. ``mode`` is
        "extractive", "llm" (the model writes the answer) or "judged" (the extractive answer,
        withdrawn when the model judges that its paragraph does not answer); by default "llm"
        when an LLM is configured.
        """
        *_, done = self.ask_stream(question, history, k=k, retrieve=retrieve, mode=mode)
        return done.response

    def ask_stream(self, question: str, history: list[ChatTurn] | None = None, k: int | None = None,
                   retrieve: int | None = None, mode: str | None = None) -> Iterator[AnswerDelta | AnswerDone]:
        """The answer as text deltas, then :class:`AnswerDone` with the whole response.

        A generated answer streams as the model writes it (only whole, valid ``[n]`` markers;
        nothing before the first valid one). The extractive answer exists whole at once; it is
        streamed word by word so clients handle it exactly like a generated one. When the LLM
        fails, or its answer keeps no valid citation, the extractive answer replaces it and
        ``notice`` says why; ``AnswerDone`` always carries the answer to show.
        """
        question = self.validate_question(question)
        history = self.validate_history(history)
        mode = self.answer_mode(mode)
        k = self.settings.retrieval.top_k if k is None else k
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}, not {k}")
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 2)
            clock = now

        snapshot = self.snapshot()
        if not snapshot.records:
            raise IndexEmpty("nothing is indexed yet: run `qa ingest PATH` or upload articles first")
        check_embedding_model(snapshot.embedding_model, self.embedder.model_name, self.index)
        lap("snapshot")
        model = self.chat_model if mode in ("llm", "judged") else None
        condensed = condense(question, history)
        notice: str | None = None
        if model is not None and history and self.settings.llm.rewrite_follow_ups and is_follow_up(question):
            try:
                condensed = rewrite_follow_up(model, question, history, condensed)
            except LLMError as exc:
                notice, model = _fallback_notice(exc.message), None
        lap("condense")
        query_vector = self.embedder.embed([condensed.standalone])[0]
        lap("embed")
        retriever = HybridRetriever(self.index, self.embedder, snapshot, self.settings.retrieval)
        candidates = retriever.candidates(condensed.standalone, max(k, retrieve or 0), query_vector,
                                          condensed.context_terms)
        lap("retrieve")
        retrieved = [c.public() for c in candidates]

        generated: Generated | None = None
        streamed = False
        if model is not None and mode == "llm":
            try:
                for piece in generate_answer(model, condensed, candidates[:k], self.embedder, snapshot.keyword,
                                             self.settings.llm.support_threshold):
                    if isinstance(piece, Generated):
                        generated = piece
                    else:
                        streamed = True
                        yield AnswerDelta(piece)
            except LLMError as exc:
                notice = _fallback_notice(exc.message)
            lap("generate")
        if generated is not None and generated.checked is not None:
            checked = generated.checked
            timings["total"] = round(sum(timings.values()), 2)
            yield AnswerDone(AskResponse(
                question=question, standalone_question=condensed.standalone, answer=generated.answer,
                abstained=False, citations=checked.citations, related=[], retrieved=retrieved,
                timings=timings, mode="llm", unsupported=checked.unsupported, citation_check=checked.check,
            ))
            return

        extracted = answer_extractively(condensed, candidates[:k], snapshot.keyword, self.settings.answer,
                                        self.tagger, self.embedder, query_vector)
        lap("answer")
        verdict: Verdict | None = None
        if model is not None and mode == "judged" and not extracted.abstained:
            try:
                verdict = judge(model, condensed.standalone, extracted.sources[0], self.settings.llm.judge_threshold)
            except LLMError as exc:
                notice = f"Not checked by the model: {exc.message}."
            lap("judge")
            if verdict is not None and not verdict.answers:
                extracted = ExtractiveAnswer(ABSTENTION, True, [], extracted.support)
                notice = "The model judged that the best-matching paragraph does not answer this question."
        check = None
        if generated is not None:
            notice = _fallback_notice(generated.fallback or "")
            check = CitationCheck(sentences=generated.sentences, supported=0, removed_citations=generated.removed,
                                  threshold=self.settings.llm.support_threshold, fallback=generated.fallback)
        timings["total"] = round(sum(timings.values()), 2)
        response = AskResponse(
            question=question,
            standalone_question=condensed.standalone,
            answer=extracted.answer,
            abstained=extracted.abstained,
            citations=extracted.citations,
            related=retrieved[:min(k, 3)] if extracted.abstained else [],
            retrieved=retrieved,
            timings=timings,
            mode="extractive",
            notice=notice,
            citation_check=check,
            missing=extracted.missing,
            answer_type=extracted.answer_type,
            judge=JudgeVerdict(probability=verdict.probability, threshold=verdict.threshold) if verdict else None,
        )
        if not streamed:  # after a failure mid-stream, AnswerDone alone replaces what was shown
            for piece in re.findall(r"\S+\s*", response.answer):
                yield AnswerDelta(piece)
        yield AnswerDone(response)


def _check_unicode(text: str, what: str, error: type[InvalidInput] | type[InvalidQuestion]) -> None:
    if has_lone_surrogate(text):
        raise error(f"{what} is not valid Unicode: it contains an unpaired surrogate")


def _fallback_notice(reason: str) -> str:
    return f"Extractive answer: {reason}." if reason else "Extractive answer."

