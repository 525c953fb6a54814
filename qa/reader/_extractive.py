"""The extractive answerer: the sentences of the retrieved paragraphs that answer, cited.

For each sentence of the top paragraphs it measures how much of the question
the sentence covers (IDF-weighted question terms found in the sentence, also by their Snowball
stem, "sacking" as "sacked", and a past-tense verb as its role noun, "directed" as "Director", with
half credit for a term found only in the article title or section, since
"it" in a sentence often means the title's subject) and combines that with the
paragraph's retrieval signals (cosine, rank, re-scorer score). For a question that asks for a
kind of answer (a person, a date, a figure: ``qa/reader/_answer_types.py``) sentences holding
one gain ``type_bonus`` and the others lose ``type_penalty``, and an answer whose paragraph
holds one quotes it. With ``meaning_weight`` set (0.15 by default: docs/benchmarks.md), the best
few are reordered by their cosine to the question as well. The best sentence becomes the answer; a second one from the same paragraph joins it when
it covers question terms the first misses (from another paragraph it would add
a citation, and measured on squad2-500 such second citations are mostly wrong). When the best
sentence's support is below ``abstain_threshold`` the answerer abstains and
lists the closest paragraphs as related, not as citations. Before answering, the
constraint check (``qa/reader/_constraints.py``) keeps only sentences whose article mentions
every name, and whose paragraph or the ones beside it every year and figure, the question insists
on (``check_names``, ``figures_near_answer``); when the sentence that would have
been the answer fails it and no other clears the threshold, the abstention says what the
articles don't mention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from qa._condense import Condensed
from qa._config import AnswerSettings
from qa._errors import EmbeddingError
from qa._keyword import KeywordIndex
from qa._models import Citation
from qa._retrieval import Candidate
from qa._text import root, sentence_root_sets, sentence_spans, sentence_term_sets, terms, words
from qa.reader._answer_types import AnswerType, Entity, Tagger, answering_entities, could_hold, question_type
from qa.reader._constraints import (
    ArticleFacts, Constraint, missing_constraints, not_mentioned_message, question_constraints,
)

log = logging.getLogger(__name__)

ABSTENTION = "The indexed articles don't answer this question."
_FACT_WINDOW = 15  # words kept around the asked-for entity when an answer must be trimmed


@dataclass
class ScoredSentence:
    candidate: Candidate
    rank: int  # of its paragraph, 1-based
    start: int  # span within the paragraph text
    end: int
    covered: frozenset[str]
    coverage: float
    support: float
    base_support: float  # before the answer type's bonus or penalty
    answers_type: bool | None = None  # holds an entity of the asked-for type; None: not tagged
    entities: tuple[Entity, ...] = ()  # those entities, offsets within the sentence
    meaning: float = 0.0  # support added for its cosine to the question (``prefer_meaning``)

    @property
    def text(self) -> str:
        return self.candidate.paragraph.text[self.start : self.end]


@dataclass
class ExtractiveAnswer:
    answer: str
    abstained: bool
    citations: list[Citation]
    support: float
    missing: list[str] = field(default_factory=list)  # constraints no answering article mentions
    answer_type: AnswerType | None = None
    sources: list[Candidate] = field(default_factory=list)  # the paragraph of each citation, in order


def _weights(condensed: Condensed, keyword: KeywordIndex) -> dict[str, float]:
    weights: dict[str, float] = {}
    for term in condensed.context_terms:
        weights[term] = 0.3 * keyword.idf(term)
    for term in condensed.focus_terms:
        weights[term] = keyword.idf(term)
    return weights


def score_sentences(condensed: Condensed, candidates: list[Candidate], keyword: KeywordIndex,
                    neighbours: list[tuple[Candidate, int]] = ()) -> list[ScoredSentence]:
    """Every sentence of the candidates, best first. ``neighbours`` are paragraphs read
    beside a retrieved one, each with the rank of the paragraph it neighbours (whose
    retrieval signals it borrows)."""
    weights = _weights(condensed, keyword)
    total = sum(weights.values()) or 1.0
    best_dense = max((c.dense for c in candidates), default=0.0)
    best_score = max((c.score for c in candidates), default=0.0)
    forms = {term: (term, *_agent_nouns(term)) for term in weights}
    roots = {term: root(term) for term in weights}
    scored: list[ScoredSentence] = []
    for candidate, rank in [*((c, r) for r, c in enumerate(candidates, 1)), *neighbours]:
        context_terms = set(terms(f"{candidate.record.title} {candidate.paragraph.section}"))
        text = candidate.paragraph.text
        # The re-scorer has just read the same sentences; their term sets come from its cache.
        for (start, end), sentence_terms, sentence_roots in zip(
                sentence_spans(text), sentence_term_sets(text), sentence_root_sets(text)):
            covered = frozenset(t for t, written in forms.items()
                                if roots[t] in sentence_roots or any(f in sentence_terms for f in written))
            from_context = sum(weights[t] for t in weights if t not in covered and t in context_terms)
            coverage = (sum(weights[t] for t in covered) + 0.5 * from_context) / total
            dense = candidate.dense if candidate.dense else best_dense * 0.8
            support = (0.65 * coverage + 0.35 * max(dense, 0.0) - 0.05 * (rank - 1)
                       + 0.2 * (candidate.score - best_score))
            scored.append(ScoredSentence(candidate, rank, start, end, covered, coverage, support, support))
    scored.sort(key=lambda s: s.support, reverse=True)
    return scored


def _agent_nouns(term: str) -> tuple[str, ...]:
    """The nouns for who did what a past-tense verb says: "directed" is matched by "Director
    Ryuhei Kitamura", "founded" by "founder", "owned" by "owners" (a news story names people by
    their role; questions ask with the verb)."""
    if len(term) < 5 or not term.endswith("ed"):
        return ()
    stem = term[:-2]
    return tuple(f"{stem}{ending}" for ending in ("or", "er", "ors", "ers"))


def neighbouring_paragraphs(candidates: list[Candidate], after: int) -> list[tuple[Candidate, int]]:
    """The ``after`` paragraphs that follow the top candidate in its article, and the one
    before it, that were not retrieved themselves: a news story's lead repeats the question's
    words while the figure asked for sits a paragraph or two further on."""
    if not candidates or after <= 0:
        return []
    top = candidates[0]
    retrieved = {(c.record.article_id, c.paragraph.number) for c in candidates}
    by_number = {p.number: p for p in top.record.paragraphs}
    wanted = [top.paragraph.number - 1, *range(top.paragraph.number + 1, top.paragraph.number + after + 1)]
    return [(replace(top, paragraph=by_number[n], chunk_ids=set()), 1) for n in wanted
            if n in by_number and (top.record.article_id, n) not in retrieved]


def _tag(sentences: list[ScoredSentence], answer_type: AnswerType, asked: set[str], tagger: Tagger) -> None:
    untagged = []
    for sentence in sentences:
        if sentence.answers_type is None:
            if could_hold(sentence.text, answer_type, asked):
                untagged.append(sentence)
            else:
                sentence.answers_type = False
    for sentence, entities in zip(untagged, tagger.entities([s.text for s in untagged])):
        sentence.entities = tuple(answering_entities(sentence.text, entities, answer_type, asked))
        sentence.answers_type = bool(sentence.entities)


def prefer_answer_type(scored: list[ScoredSentence], answer_type: AnswerType, asked: set[str], tagger: Tagger,
                       settings: AnswerSettings) -> list[ScoredSentence]:
    """Re-rank for the asked-for type: a sentence holding an entity of the type (not named in
    the question) gains ``type_bonus``, any other loses ``type_penalty``.

    Tagging costs about 7 ms a sentence on this project's 2-core machine, so sentences are
    tagged best first and only while one could still come out on top: once a tagged
    sentence's new support exceeds every untagged sentence's support plus the bonus, the
    order is final (the same as tagging them all), at most ``typed_sentences`` tagged."""
    best_so_far = float("-inf")
    for position in range(min(settings.typed_sentences, len(scored))):
        sentence = scored[position]
        if sentence.support + settings.type_bonus <= best_so_far:
            break
        # The first two are nearly always both needed: one batch.
        _tag(scored[position : position + (2 if position == 0 else 1)], answer_type, asked, tagger)
        best_so_far = max(best_so_far, sentence.support + (
            settings.type_bonus if sentence.answers_type else -settings.type_penalty))
    for sentence in scored:
        sentence.support += settings.type_bonus if sentence.answers_type else -settings.type_penalty
    scored.sort(key=lambda s: s.support, reverse=True)
    return scored


def typed_companion(best: ScoredSentence, scored: list[ScoredSentence], answer_type: AnswerType,
                    asked: set[str], tagger: Tagger) -> ScoredSentence | None:
    """When the best sentence holds no entity of the asked-for type, the best sentence of its
    paragraph that does: the paragraph is right and the fact is beside the words that matched
    ("…thrown out by an appeal court. … rejected in a 2-1 decision"). Quoted with it, so no
    answer lacks the asked-for type while its own paragraph has it."""
    same_paragraph = [s for s in scored if s.candidate.paragraph is best.candidate.paragraph]
    _tag(same_paragraph, answer_type, asked, tagger)
    if best.answers_type:
        return None
    return next((s for s in same_paragraph if s.answers_type), None)


class SentenceEmbedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


def prefer_meaning(scored: list[ScoredSentence], question: str, embedder: SentenceEmbedder,
                   settings: AnswerSettings, question_vector: np.ndarray | None = None) -> list[ScoredSentence]:
    """Re-rank the best ``meaning_sentences`` by what they mean as well as the words they share:
    each gains ``meaning_weight`` times its cosine to the question, in the embedding model the
    index uses. "Which official spoke for Madrid?" shares only "Madrid" with "Madrid is being
    represented by … Jose Maria Pons", and more with the lead. ``question`` is the standalone
    one ("When was he arrested?" means nothing alone), and a sentence is read after its
    article's title, which names what its "he" or "the firm" stands for.

    Embedding costs about 4 ms a sentence on 2 cores, so only the sentences that could overtake
    the best are embedded: those trailing it by less than ``meaning_weight`` (a shift is at most
    the weight, and the best sentence's cosine to the question is not below 0: it shares the
    question's words). When no other sentence is that close, nothing is embedded. The question's
    vector is the one retrieval searched with, when the caller has it. When the embedding
    endpoint fails here, the words alone decide: the retrieval it served has already run."""
    if not scored:
        return scored
    reach = scored[0].support - settings.meaning_weight
    top = [s for s in scored[: settings.meaning_sentences] if s.support > reach]
    if len(top) < 2:
        return scored
    texts = [f"{s.candidate.record.title}. {s.text}" for s in top]
    try:
        if question_vector is None:
            question_vector, *vectors = embedder.embed([question, *texts])
        else:
            vectors = embedder.embed(texts)
    except EmbeddingError as exc:
        log.warning("sentences not re-ranked by meaning: %s", exc)
        return scored
    for sentence, vector in zip(top, vectors):
        shift = settings.meaning_weight * float(vector @ question_vector)
        sentence.support += shift
        sentence.base_support += shift
        sentence.meaning = shift
    scored.sort(key=lambda s: s.support, reverse=True)
    return scored


def _below_threshold(scored: list[ScoredSentence], settings: AnswerSettings) -> bool:
    """Whether to abstain: no sentence's support clears ``abstain_threshold``, the meaning's
    share left out. Meaning only reorders: a cosine is high for any sentence on the question's
    topic, and counted in the threshold it halved abstention recall on squad2-500's test half
    (0.221 -> 0.122). The answer type's bonus or penalty counts at ``type_in_abstention`` of its
    weight (whole by default: config/default.toml says what half of it did)."""
    share = settings.type_in_abstention
    return not scored or max(s.base_support - s.meaning + share * (s.support - s.base_support)
                             for s in scored) < settings.abstain_threshold


def _word_budgets(chosen: list[ScoredSentence], max_words: int) -> list[int]:
    """Words each chosen sentence may keep: all of them when the answer fits in ``max_words``
    (the [n] markers count as words too). Otherwise a sentence holding the asked-for entity
    keeps at least a window of ``_FACT_WINDOW`` words around it (``_trim`` keeps the entity in
    view), the others keep what remains, so that neither the fact nor the words that matched
    the question are cut away; without such a sentence, shares in proportion to the lengths."""
    budget = max_words - len(chosen)
    lengths = [len(s.text.split()) for s in chosen]
    if sum(lengths) <= budget:
        return lengths
    holding = [bool(s.entities) for s in chosen]
    if any(holding) and not all(holding):
        reserved = sum(min(length, _FACT_WINDOW) for length, fact in zip(lengths, holding) if fact)
        rest = sum(length for length, fact in zip(lengths, holding) if not fact)
        others = min(rest, budget - reserved)
        facts = budget - others
        fact_total = sum(length for length, fact in zip(lengths, holding) if fact)
        return [max(8, (facts if fact else others) * length // (fact_total if fact else rest))
                for length, fact in zip(lengths, holding)]
    return [max(8, budget * length // sum(lengths)) for length in lengths]


def _trim(sentence: ScoredSentence, max_words: int, weights_terms: set[str]) -> tuple[int, int]:
    """A window of at most ``max_words`` words of the sentence, where most question terms are,
    holding the sentence's first entity of the asked-for type when it has one."""
    text = sentence.candidate.paragraph.text
    tokens: list[tuple[int, int]] = []
    position = sentence.start
    for word in text[sentence.start : sentence.end].split():
        begin = text.index(word, position)
        tokens.append((begin, begin + len(word)))
        position = begin + len(word)
    if len(tokens) <= max_words:
        return sentence.start, sentence.end
    hits = [1 if set(terms(text[s:e])) & weights_terms else 0 for s, e in tokens]
    windows = range(len(tokens) - max_words + 1)
    if sentence.entities:
        entity = sentence.entities[0]
        first = next(i for i, (_, e) in enumerate(tokens) if e > sentence.start + entity.start)
        last = next((i for i, (b, _) in enumerate(tokens) if b >= sentence.start + entity.end), len(tokens)) - 1
        holding = [i for i in windows if i <= first and last <= i + max_words - 1]
        windows = holding or windows
    best = max(windows, key=lambda i: sum(hits[i : i + max_words]))
    return tokens[best][0], tokens[best + max_words - 1][1]


def _meeting_constraints(scored: list[ScoredSentence], constraints: list[Constraint], near: bool
                         ) -> tuple[list[ScoredSentence], list[Constraint], list[Constraint]]:
    """The sentences whose article mentions every constraint; when there are none, what the
    abstention may truthfully say is missing, and what is met beside it.

    With ``near``, years and figures count only in the sentence's paragraph, the ones beside it
    and the title: "the 2005 World Championships" in a story's outlook does not date the race it
    reports. Missing are the constraints no candidate's article mentions; when each is mentioned
    somewhere, the ones lacking where most are met (the best-ranked such place), with the ones
    met there: "Bafta" must not be called unmentioned because the best-worded article lacks it
    while the one about the Baftas lacks "Howard Hughes"."""
    names = [c for c in constraints if c.kind == "name"]
    figures = [c for c in constraints if c.kind != "name"] if near else []
    whole = names if near else constraints
    missing_by_place: dict[tuple[str, int], list[Constraint]] = {}
    kept: list[ScoredSentence] = []
    for sentence in scored:
        record = sentence.candidate.record
        number = sentence.candidate.paragraph.number if near else 0
        key = (record.article_id, number)
        if key not in missing_by_place:
            missing = missing_constraints(whole, ArticleFacts.of_record(record))
            if figures:
                window = [p.text for p in record.paragraphs if abs(p.number - number) <= 1]
                missing += missing_constraints(figures, ArticleFacts.of_text("\n".join([record.title, *window])))
            missing_by_place[key] = missing
        if not missing_by_place[key]:
            kept.append(sentence)
    if kept:
        return kept, [], []
    places = list(missing_by_place.values())  # best-ranked first
    nowhere = [c for c in constraints if all(c in missing for missing in places)]
    if nowhere:
        return [], nowhere, []
    fewest = min(places, key=len)
    return [], fewest, [c for c in constraints if c not in fewest]


@dataclass
class RankedSentences:
    """Every sentence the reader read, best first, and the answer type it ranked them for."""
    scored: list[ScoredSentence]
    answer_type: AnswerType | None
    asked: set[str]  # the words of the question and of the earlier one it follows


def rank_sentences(condensed: Condensed, candidates: list[Candidate], keyword: KeywordIndex,
                   settings: AnswerSettings, tagger: Tagger | None = None,
                   embedder: SentenceEmbedder | None = None,
                   question_vector: np.ndarray | None = None) -> RankedSentences:
    """The sentences of ``candidates`` (best first) in the order the reader answers from: by the
    words they share with the question, then the answer type, then their meaning. Without a
    ``tagger`` (or with ``answer_types`` off) the answer type is not considered; without an
    ``embedder`` (or with ``meaning_weight`` 0) neither is the sentences' meaning.
    ``question_vector`` is ``condensed.standalone`` embedded, when retrieval already did it."""
    answer_type = None
    if tagger is not None and settings.answer_types:
        answer_type = question_type(tagger.tag_question(condensed.question))
    neighbours = neighbouring_paragraphs(candidates, settings.neighbour_paragraphs) if answer_type else []
    scored = score_sentences(condensed, candidates, keyword, neighbours)
    asked = set(words(f"{condensed.question} {condensed.earlier_question or ''}"))
    if scored and answer_type is not None:
        scored = prefer_answer_type(scored, answer_type, asked, tagger, settings)
    if scored and embedder is not None and settings.meaning_weight:
        scored = prefer_meaning(scored, condensed.standalone, embedder, settings, question_vector)
    return RankedSentences(scored, answer_type, asked)


def answer_extractively(condensed: Condensed, candidates: list[Candidate], keyword: KeywordIndex,
                        settings: AnswerSettings, tagger: Tagger | None = None,
                        embedder: SentenceEmbedder | None = None,
                        question_vector: np.ndarray | None = None) -> ExtractiveAnswer:
    """The cited answer from ``candidates`` (best first), or an abstention; the sentences are
    ranked by :func:`rank_sentences`, whose arguments these are."""
    ranked = rank_sentences(condensed, candidates, keyword, settings, tagger, embedder, question_vector)
    scored, answer_type, asked = ranked.scored, ranked.answer_type, ranked.asked
    if _below_threshold(scored, settings):
        return ExtractiveAnswer(ABSTENTION, True, [], scored[0].support if scored else 0.0, answer_type=answer_type)
    if settings.check_constraints:
        constraints = question_constraints(condensed.question, condensed.earlier_question,
                                           names=settings.check_names)
        if constraints:
            scored, missing, met = _meeting_constraints(scored, constraints, settings.figures_near_answer)
            if not scored:
                return ExtractiveAnswer(not_mentioned_message(missing, met), True, [], 0.0,
                                        [c.text for c in missing], answer_type=answer_type)
            if _below_threshold(scored, settings):
                # The articles mention all of it; they only don't answer it.
                return ExtractiveAnswer(ABSTENTION, True, [], scored[0].support, answer_type=answer_type)

    chosen = [scored[0]]
    companion = typed_companion(scored[0], scored, answer_type, asked, tagger) if answer_type else None
    if companion is not None:
        chosen.append(companion)
    elif answer_type is not None and settings.require_answer_type and not scored[0].answers_type:
        return ExtractiveAnswer(ABSTENTION, True, [], scored[0].support, answer_type=answer_type)
    question_terms = set(condensed.focus_terms) | set(condensed.context_terms)
    for other in scored[1 : 12]:
        if len(chosen) >= settings.max_sentences:
            break
        if other.candidate is not chosen[0].candidate:
            continue  # a second paragraph would be a second citation, right far less often
        adds = other.covered - chosen[0].covered
        words_so_far = sum(len(s.text.split()) for s in chosen)
        # Compared before the type's bonus: a sentence left untagged carries the penalty.
        if (adds and other.base_support >= 0.6 * chosen[0].base_support
                and words_so_far + len(other.text.split()) + 2 <= settings.max_words):
            chosen.append(other)
    # Read the chosen sentences in article order when they come from one paragraph.
    chosen.sort(key=lambda s: (s.rank, s.start))

    citations: list[Citation] = []
    sources: list[Candidate] = []
    numbers: dict[tuple[str, int], int] = {}
    parts: list[str] = []
    for sentence, budget in zip(chosen, _word_budgets(chosen, settings.max_words)):
        start, end = _trim(sentence, budget, question_terms)
        quote = sentence.candidate.paragraph.text[start:end]
        paragraph = sentence.candidate.paragraph
        key = (sentence.candidate.record.article_id, paragraph.number)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
            public = sentence.candidate.public()
            sources.append(sentence.candidate)
            citations.append(
                Citation(
                    n=numbers[key],
                    **public.model_dump(exclude={"score"}),
                    quote_start=paragraph.start + start,
                    quote_end=paragraph.start + end,
                )
            )
        trimmed = start != sentence.start or end != sentence.end
        parts.append(f"{'…' if start != sentence.start else ''}{quote}{'…' if trimmed and end != sentence.end else ''} [{numbers[key]}]")
    return ExtractiveAnswer(" ".join(parts), False, citations, scored[0].support, answer_type=answer_type,
                            sources=sources)
