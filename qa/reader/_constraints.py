"""The constraint check: years, figures and names a question insists on, looked up in an article.

"What was Time Warner's revenue in 2007?" over articles from 2004-5 should not be
answered with the sentence about its 2004 revenue: the words match, the asked-for
year does not. Before answering, the answerer takes the question's constraints

- years (``1500``-``2099`` written as a plain four-digit number),
- figures, compared by value so that paraphrases meet: "4.5 million", "4.5m" and
  "4,500,000" are one number; "$25.4bn" and "25.4 billion dollars" too; "20%" and
  "20 per cent" (the unit is ignored, the value is what a reader checks),
- names: capitalised words after the question's first word ("Time Warner",
  "Hong Kong"), each looked up as a word of the article, case-insensitively,

and an article that lacks one of them cannot support the answer. A follow-up carries
the earlier question's years and names, except of a kind the follow-up names itself
("And in 2005?" replaces the earlier year).

Names are capitalised-word spans, not the reader's named-entity model: the lookup only needs
"does the article mention this word", which needs no entity type, and it runs on every question.
Names are checked by default (``[answer] check_names``), met by British news's aliases ("Lib
Dems", "UK" for British) and by a one-letter misspelling; on squad2-500 misspelt and paraphrased
names still cost a few answerable questions (docs/benchmarks.md). With ``figures_near_answer``
the reader looks years and figures up in the answer's paragraph, its neighbours and the title.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Iterable, Literal

from qa._models import ArticleRecord
from qa._text import stem, words

ConstraintKind = Literal["year", "number", "name"]


@dataclass(frozen=True)
class Constraint:
    text: str  # as written in the question, for the abstention message
    kind: ConstraintKind
    value: str  # the normalised form looked up in the article: "2007", "4500000", "warner"


_SCALES = {
    "k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9,
    "tn": 1e12, "trillion": 1e12,
}
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "hundred": 100, "a": 1, "half": 0.5,
}
# A numeral (1,234 / 4.5 / 2007) with an optional scale; never part of a word ("19th",
# "1990s", "MP3" are not figures a reader would check by value), nor an argument or index in
# brackets glued to one ("alert(1)" in pasted markup, "Article 50(1)").
_NUMERAL = re.compile(
    r"(?<![\w.,])(?<!\w\()(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s?(thousand|million|billion|trillion|bn|mn|tn|m|k)"
    r"(?![\w]))?(?![\w]|\.\d|,\d{3})",
    re.I,
)
# "two million", "half a billion": only in articles, where a question's numeral may be spelled out.
_SPELLED = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\s(?:a\s)?(thousand|million|billion|trillion)\b", re.I)
_YEAR = re.compile(r"^(1[5-9]\d\d|20\d\d)$")

_QUESTION_WORDS = {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was", "were",
    "did", "do", "does", "in", "on", "at", "the", "a", "an", "and", "but", "so", "also", "i", "if",
    "according", "after", "before", "during", "name", "tell", "give", "can", "could", "would", "should",
    "has", "have", "had", "will", "then", "there", "this", "that", "for", "of", "to", "by", "from",
}
_CAPITALISED_SPAN = re.compile(r"[A-Z][A-Za-z0-9'’&.-]*(?:\s+(?:&\s+)?[A-Z][A-Za-z0-9'’&.-]*)*")


# Runs of capitalised words in an article ("European Union", "Bank of England"), whose initials
# a question may use instead.
_TITLE_CASE_RUN = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:of\s+|and\s+|the\s+|for\s+)*[A-Z][a-z]+)+")
_ACRONYM_SKIPS = {"of", "and", "the", "for"}


def _normalised(value: float) -> str:
    return f"{value:.6g}"


def _figures(text: str) -> Iterable[tuple[str, str, bool]]:
    """(text as written, normalised value, written as a plain four-digit year) for each numeral."""
    for match in _NUMERAL.finditer(text):
        digits, scale = match.group(1), match.group(2)
        value = float(digits.replace(",", "")) * (_SCALES[scale.lower()] if scale else 1)
        plain_year = not scale and "," not in digits and bool(_YEAR.match(digits))
        yield match.group(0), _normalised(value), plain_year


def _names(question: str) -> list[str]:
    """Capitalised-word spans ("Time Warner", "Johnson & Johnson"), possessives stripped, without the
    question's first word (capitalised because it starts the question) and question words."""
    found: list[str] = []
    first_word_at = len(question) - len(question.lstrip())
    for match in _CAPITALISED_SPAN.finditer(question):
        # "Cesar-winning" names Cesar: the lower-case parts of a hyphenated word are not the name.
        kept = [re.sub(r"['’]s?$", "", part).strip(".")
                for w in match.group(0).split() for part in w.split("-") if part[:1].isupper() or part == "&"]
        if match.start() == first_word_at:
            kept = kept[1:]
        while kept and (kept[0].lower() in _QUESTION_WORDS or kept[0] == "&"):
            kept = kept[1:]
        span = " ".join(w for w in kept if w)
        if span and span.lower() not in (f.lower() for f in found):
            found.append(span)
    return found


def question_constraints(question: str, earlier_question: str = "", names: bool = True) -> list[Constraint]:
    """The years, figures and (with ``names``) names ``question`` insists on; a follow-up inherits
    ``earlier_question``'s years and names of every kind it does not name itself."""
    if not names:
        return [c for c in question_constraints(question, earlier_question) if c.kind != "name"]
    own = _own_constraints(question)
    if not earlier_question:
        return own
    own_kinds = {c.kind for c in own}
    own_values = {c.value for c in own}
    # Years and names carry over; an earlier figure ("died at 93") is rarely what the next question
    # is about, and measured on the BBC tuning half it only made follow-ups abstain.
    inherited = [c for c in _own_constraints(earlier_question)
                 if c.kind != "number" and c.kind not in own_kinds and c.value not in own_values]
    return own + inherited


def _own_constraints(question: str) -> list[Constraint]:
    constraints: list[Constraint] = []
    for written, value, plain_year in _figures(question):
        constraints.append(Constraint(written, "year" if plain_year else "number", value))
    for name in _names(question):
        constraints.append(Constraint(name, "name", name.lower()))  # every word of it must be in the article
    return constraints


@dataclass(frozen=True)
class ArticleFacts:
    """What an article offers the check: its words, its years and the values of its figures."""

    words: frozenset[str]
    years: frozenset[str]
    figures: frozenset[str]
    acronyms: frozenset[str] = frozenset()  # "eu" for "European Union", "us" for "U.S." or "United States"

    @classmethod
    def of_text(cls, text: str) -> "ArticleFacts":
        years: set[str] = set()
        figures: set[str] = set()
        for _, value, plain_year in _figures(text):
            figures.add(value)
            if plain_year:
                years.add(value)
        for match in _SPELLED.finditer(text):
            figures.add(_normalised(_NUMBER_WORDS[match.group(1).lower()] * _SCALES[match.group(2).lower()]))
        # Words split at apostrophes and hyphens too, so "Warner's" and "Anglo-Dutch" offer their parts.
        lowered = {w.lower() for w in words(text)}
        lowered |= {part for w in lowered for part in re.split(r"['’.-]", w) if part}
        # Stems too, so "Normans" in a question meets "Norman" in the article.
        lowered |= {stem(w) for w in lowered}
        acronyms = {w.replace(".", "") for w in lowered if "." in w}
        for match in _TITLE_CASE_RUN.finditer(text):
            initials = "".join(w[0] for w in match.group(0).split() if w.lower() not in _ACRONYM_SKIPS)
            if len(initials) >= 2:
                acronyms.add(initials.lower())
        return cls(frozenset(lowered), frozenset(years), frozenset(figures), frozenset(acronyms))

    @classmethod
    def of_record(cls, record: ArticleRecord) -> "ArticleFacts":
        # Popular articles come back query after query; reading one costs a few milliseconds.
        key = (record.article_id, record.content_hash, record.title)
        facts = _FACTS_CACHE.get(key)
        if facts is None:
            facts = cls.of_text("\n".join([record.title, *(p.text for p in record.paragraphs)]))
            with _FACTS_CACHE_LOCK:  # the API answers on several threads
                if len(_FACTS_CACHE) >= _FACTS_CACHE_SIZE:
                    _FACTS_CACHE.pop(next(iter(_FACTS_CACHE)))
                _FACTS_CACHE[key] = facts
        return facts

    def lacks(self, constraint: Constraint) -> bool:
        if constraint.kind == "year":
            return constraint.value not in self.years and constraint.value not in self.figures
        if constraint.kind == "number":
            return constraint.value not in self.figures
        # Questions misspell and paraphrase names ("Emma Marry", "the Kelven Report"): a span of
        # several words is met when at least half of them are in the article.
        span = [w for w in constraint.value.split() if w != "&"]
        met = sum(1 for w in span if self._mentions(w))
        return met * 2 < len(span) if len(span) > 1 else met == 0

    def _mentions(self, word: str) -> bool:
        if word in self.words or stem(word) in self.words or word in self.acronyms:
            return True
        if any(alias in self.words or alias in self.acronyms for alias in _ALIASES.get(word, ())):
            return True
        # "Brazil" is met by "Brazilian", "Victoria" by "Victorian", "Indian" by "India"; a long
        # name misspelt by one letter or a swap ("Zeria" for "Zeira") by the name.
        return len(word) >= 4 and any(
            w.startswith(word) or (len(w) >= 4 and len(word) - len(w) <= 3 and word.startswith(w))
            or (len(word) >= 5 and _one_edit_apart(word, w))
            for w in self.words)


def _one_edit_apart(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or swap of neighbours turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1 or a == b or a[0] != b[0]:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i, (x, y) in enumerate(zip(short, long_)) if x != y), len(short))
    return short[i:] == long_[i + 1 :]


# What British news writes for a name or nationality a question may use: "the Lib Dems" for the
# Liberal Democrats, "the UK" for British, "Irish" for Ireland. Each word of a question's name
# is met by any of these in the article.
_DEMONYMS = {
    "british": ("britain", "uk"), "britain": ("british", "uk"), "uk": ("britain", "british"),
    "english": ("england",), "scottish": ("scotland", "scots"), "welsh": ("wales",), "irish": ("ireland",),
    "ireland": ("irish",), "american": ("us", "usa", "america"), "america": ("us", "usa", "american"),
    "us": ("america", "american", "usa"), "french": ("france",), "france": ("french",), "dutch": ("netherlands", "holland"),
    "netherlands": ("dutch", "holland"), "spanish": ("spain",), "spain": ("spanish",), "greek": ("greece",),
    "greece": ("greek",), "swiss": ("switzerland",), "chinese": ("china",), "japanese": ("japan",),
    "german": ("germany",), "germany": ("german",), "italian": ("italy",), "italy": ("italian",),
    "liberal": ("lib",), "democrat": ("dem", "dems", "democrats"), "democrats": ("dem", "dems", "democrat"),
    "conservative": ("tory", "tories"), "conservatives": ("tory", "tories"), "labour": ("labour's",),
}
_ALIASES: dict[str, tuple[str, ...]] = _DEMONYMS


_FACTS_CACHE_SIZE = 4096
_FACTS_CACHE: dict[tuple[str, str, str], ArticleFacts] = {}
_FACTS_CACHE_LOCK = threading.Lock()


def missing_constraints(constraints: list[Constraint], facts: ArticleFacts) -> list[Constraint]:
    return [c for c in constraints if facts.lacks(c)]


def not_mentioned_message(missing: list[Constraint], met: list[Constraint] | tuple[Constraint, ...] = ()) -> str:
    """ "The indexed articles don't mention 2007." — the abstention that says what was not covered.

    With ``met``, the constraints are each mentioned somewhere but never all in one article, and
    the message says so rather than deny what some article does mention: "The indexed articles
    that mention Bafta and Aviator don't mention Howard Hughes." """
    if met:
        return f"The indexed articles that mention {_listed(met, 'and')} don't mention {_listed(missing, 'or')}."
    return f"The indexed articles don't mention {_listed(missing, 'or')}."


def _listed(constraints: list[Constraint] | tuple[Constraint, ...], last: str) -> str:
    written = [c.text for c in constraints]
    return written[0] if len(written) == 1 else ", ".join(written[:-1]) + f" {last} " + written[-1]
