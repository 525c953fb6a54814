"""The extractive answerer: the sentences of the retrieved paragraphs that answer, cited.

For each sentence of the top paragraphs it measures how much of the question
the sentence covers (IDF-weighted question terms found in the sentence, with
half credit for a term found only in the article title or section, since
"it" in a sentence often means the title's subject) and combines that with the
paragraph's retrieval signals (cosine, rank, re-scorer score). The best
sentence becomes the answer; a second one from the same paragraph joins it when
it covers question terms the first misses (from another paragraph it would add
a citation, and measured on squad2-500 such second citations are mostly wrong). When the best
sentence's support is below ``abstain_threshold`` the answerer abstains and
lists the closest paragraphs as related, not as citations. Before answering, the
constraint check (``qa/_constraints.py``) keeps only sentences whose article mentions
every year and figure (with ``check_names``, every name) the question insists on; when the sentence that would have
been the answer fails it and no other clears the threshold, the abstention says what the
articles don't mention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa._condense import Condensed
from qa._config import AnswerSettings
from qa._constraints import ArticleFacts, Constraint, missing_constraints, not_mentioned_message, question_constraints
from qa._keyword import KeywordIndex
from qa._models import Citation
from qa._retrieval import Candidate
from qa._text import sentence_spans, sentence_term_sets, terms, words

ABSTENTION = "The indexed articles don't answer this question."


@dataclass
class ScoredSentence:
    candidate: Candidate
    rank: int  # of its paragraph, 1-based
    start: int  # span within the paragraph text
    end: int
    covered: frozenset[str]
    coverage: float
    support: float

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


_NUMBER_QUESTION = re.compile(
    r"\b(how (many|much|long|old|far|large|big|often|tall|high)|what (number|percentage|proportion|amount|size)|"
    r"what year|which year|when|what date|what time|what age)\b", re.I)
_ENTITY_QUESTION = re.compile(r"\b(who|whom|whose|where|which (country|city|company|team|person|group|party))\b", re.I)
_NUMBER_WORDS = {
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "dozen", "dozens", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion", "billions", "half",
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "century", "decade",
}


def answer_type_bonus(question: str, sentence: str) -> float:
    """A small bonus when the sentence holds the kind of thing the question asks for:
    a number or date for "how many"/"when", a name not in the question for "who"/"where"."""
    if _NUMBER_QUESTION.search(question):
        sentence_words = set(words(sentence))
        has_number = any(ch.isdigit() for ch in sentence) or bool(sentence_words & _NUMBER_WORDS)
        return 0.08 if has_number else -0.04
    if _ENTITY_QUESTION.search(question):
        asked = {w.lower() for w in re.findall(r"[A-Za-z]+", question)}
        names = [w for w in re.findall(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+", sentence) if w.lower() not in asked]
        return 0.06 if names else -0.03
    return 0.0


def _weights(condensed: Condensed, keyword: KeywordIndex) -> dict[str, float]:
    weights: dict[str, float] = {}
    for term in condensed.context_terms:
        weights[term] = 0.3 * keyword.idf(term)
    for term in condensed.focus_terms:
        weights[term] = keyword.idf(term)
    return weights


def score_sentences(condensed: Condensed, candidates: list[Candidate],
                    keyword: KeywordIndex) -> list[ScoredSentence]:
    weights = _weights(condensed, keyword)
    total = sum(weights.values()) or 1.0
    best_dense = max((c.dense for c in candidates), default=0.0)
    best_score = max((c.score for c in candidates), default=0.0)
    scored: list[ScoredSentence] = []
    for rank, candidate in enumerate(candidates, 1):
        context_terms = set(terms(f"{candidate.record.title} {candidate.paragraph.section}"))
        text = candidate.paragraph.text
        # The re-scorer has just read the same sentences; their term sets come from its cache.
        for (start, end), sentence_terms in zip(sentence_spans(text), sentence_term_sets(text)):
            covered = frozenset(t for t in weights if t in sentence_terms)
            from_context = sum(weights[t] for t in weights if t not in covered and t in context_terms)
            coverage = (sum(weights[t] for t in covered) + 0.5 * from_context) / total
            dense = candidate.dense if candidate.dense else best_dense * 0.8
            support = (0.65 * coverage + 0.35 * max(dense, 0.0) - 0.05 * (rank - 1)
                       + 0.2 * (candidate.score - best_score)
                       + answer_type_bonus(condensed.question, text[start:end]))
            scored.append(ScoredSentence(candidate, rank, start, end, covered, coverage, support))
    scored.sort(key=lambda s: s.support, reverse=True)
    return scored


def _trim(sentence: ScoredSentence, max_words: int, weights_terms: set[str]) -> tuple[int, int]:
    """A window of at most ``max_words`` words of the sentence, where most question terms are."""
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
    best = max(range(len(tokens) - max_words + 1), key=lambda i: sum(hits[i : i + max_words]))
    return tokens[best][0], tokens[best + max_words - 1][1]


def _meeting_constraints(scored: list[ScoredSentence], constraints: list[Constraint]
                         ) -> tuple[list[ScoredSentence], list[Constraint]]:
    """The sentences whose article mentions every constraint, and what the best sentence's article lacks."""
    missing_by_article: dict[str, list[Constraint]] = {}
    kept: list[ScoredSentence] = []
    for sentence in scored:
        record = sentence.candidate.record
        if record.article_id not in missing_by_article:
            missing_by_article[record.article_id] = missing_constraints(constraints, ArticleFacts.of_record(record))
        if not missing_by_article[record.article_id]:
            kept.append(sentence)
    return kept, missing_by_article[scored[0].candidate.record.article_id]


def answer_extractively(condensed: Condensed, candidates: list[Candidate], keyword: KeywordIndex,
                        settings: AnswerSettings) -> ExtractiveAnswer:
    scored = score_sentences(condensed, candidates, keyword)
    if not scored or scored[0].support < settings.abstain_threshold:
        return ExtractiveAnswer(ABSTENTION, True, [], scored[0].support if scored else 0.0)
    if settings.check_constraints:
        constraints = question_constraints(condensed.question, condensed.earlier_question,
                                           names=settings.check_names)
        if constraints:
            scored, missing = _meeting_constraints(scored, constraints)
            if not scored or scored[0].support < settings.abstain_threshold:
                return ExtractiveAnswer(not_mentioned_message(missing), True, [],
                                        scored[0].support if scored else 0.0, [c.text for c in missing])

    chosen = [scored[0]]
    question_terms = set(condensed.focus_terms) | set(condensed.context_terms)
    for other in scored[1 : 12]:
        if len(chosen) >= settings.max_sentences:
            break
        if other.candidate is not chosen[0].candidate:
            continue  # a second paragraph would be a second citation, right far less often
        adds = other.covered - chosen[0].covered
        words_so_far = sum(len(s.text.split()) for s in chosen)
        if (adds and other.support >= 0.6 * chosen[0].support
                and words_so_far + len(other.text.split()) + 2 <= settings.max_words):
            chosen.append(other)
    # Read the chosen sentences in article order when they come from one paragraph.
    chosen.sort(key=lambda s: (s.rank, s.start))

    citations: list[Citation] = []
    numbers: dict[tuple[str, int], int] = {}
    parts: list[str] = []
    budget = settings.max_words - len(chosen)  # the [n] markers count as words too
    for sentence in chosen:
        start, end = _trim(sentence, budget, question_terms)
        quote = sentence.candidate.paragraph.text[start:end]
        budget -= len(quote.split())
        paragraph = sentence.candidate.paragraph
        key = (sentence.candidate.record.article_id, paragraph.number)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
            public = sentence.candidate.public()
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
    return ExtractiveAnswer(" ".join(parts), False, citations, scored[0].support)
