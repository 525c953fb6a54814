"""Text helpers shared by parsing, indexing and answering: sentences, tokens, boilerplate."""

from __future__ import annotations

import functools
import re
import threading
from typing import Iterator

import snowballstemmer

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and
# something that can start a sentence.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9£$€])")
# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "gen", "col", "lt", "sgt", "capt",
    "gov", "sen", "rep", "rev", "hon", "no", "vs", "v", "inc", "ltd", "co", "corp", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s",
    "u.k", "e.g", "i.e", "etc", "approx", "dept", "est", "fig", "mt", "ft",
}



def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds an unpaired surrogate ("\\ud800"): JSON can carry one, but no
    tokenizer, store or encoder takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text``, stripped of surrounding white space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start() + 1]
        last_word = re.search(r"([\w.]+)\.$", before.rstrip("\"'”’)]"))
        if last_word:
            word = last_word.group(1).lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        end = match.end()
        spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return [_strip_span(text, s, e) for s, e in spans if text[s:e].strip()]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.-]*[A-Za-z0-9]|[A-Za-z0-9]")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself nor of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves also its
    said says say did does do much many whose whether""".split()
)


def tokens(text: str) -> list[str]:
    """Word tokens as written (case kept), punctuation dropped, hyphenated and dotted words whole."""
    return _WORD.findall(text)


def words(text: str) -> list[str]:
    """Lower-cased :func:`tokens`."""
    return [w.lower().replace("’", "'") for w in tokens(text)]


@functools.lru_cache(maxsize=1 << 17)  # the vocabulary is small; stemming is on every query's path
def stem(word: str) -> str:
    """A light, predictable stemmer: possessives and plural endings only."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_ROOT_LOCK = threading.Lock()  # a Snowball stemmer keeps the word it works on in itself


@functools.cache
def _snowball():
    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=1 << 17)
def root(term: str) -> str:
    """The Snowball (Porter 2) stem of a term: "sacking", "sacked" -> "sack"; "existence",
    "exist" -> "exist". The reader matches question terms to sentences by it as well; the keyword
    index keeps the light :func:`stem` (a new stem there means indexing every article again)."""
    with _ROOT_LOCK:
        return _snowball().stemWord(term)


def terms(text: str) -> list[str]:
    """Index terms: words minus stop words, lightly stemmed. Used by BM25 and by the answerer."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


@functools.lru_cache(maxsize=1 << 15)
def sentence_term_sets(text: str) -> tuple[frozenset[str], ...]:
    """The term set of each sentence of ``text``. Cached, because re-scoring reads the same
    popular paragraphs for query after query; a pure function of the text, so never stale."""
    return tuple(frozenset(terms(text[a:b])) for a, b in sentence_spans(text)) or (frozenset(),)


@functools.lru_cache(maxsize=1 << 15)
def sentence_root_sets(text: str) -> tuple[frozenset[str], ...]:
    """The Snowball stems (:func:`root`) of each sentence's terms, in the order of
    :func:`sentence_term_sets`; cached alike, since the reader reads the same paragraphs again."""
    return tuple(frozenset(root(term) for term in sentence) for sentence in sentence_term_sets(text))


def word_count(text: str) -> int:
    return len(text.split())


# News boilerplate: navigation and promotion lines that are never content.
_BOILERPLATE_LINE = re.compile(
    r"""^\s*(?:
        (?:also\s+read|read\s+more|read\s+also|see\s+also|related(?:\s+(?:news|stories|articles))?|
           more\s+news|recommended|don'?t\s+miss|watch)\s*[:：|-]
      | (?:share\s+(?:this|on|via)|click\s+(?:here|to\s+share)|subscribe\b|sign\s+up\b|follow\s+us\b|
           advertisement\s*$|sponsored\s*$|tweet\s*$|print\s*$|email\s*$)
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# A heading after which the rest of the article is a list of other stories.
_TRAILING_LIST = re.compile(r"^\s*(?:other\s+news|more\s+stories|latest\s+news|trending)\s*:?\s*$", re.I)


def is_boilerplate(block: str) -> bool:
    return word_count(block) <= 40 and bool(_BOILERPLATE_LINE.match(block))


def starts_trailing_list(block: str) -> bool:
    return bool(_TRAILING_LIST.match(block))


def iter_blocks(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Spans of blank-line separated blocks of ``text[start:end]``, white space trimmed."""
    end = len(text) if end is None else end
    for match in re.finditer(r"\S(?:.|\n(?![ \t\r]*\n))*", text[start:end]):
        s, e = _strip_span(text, start + match.start(), start + match.end())
        if s < e:
            yield s, e
