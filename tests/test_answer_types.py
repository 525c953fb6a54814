"""The reader's answer types: what a question asks for, which sentences hold it, and that the
answer holds it whenever its own paragraph does.

The real spaCy model answers (``en_core_web_sm``, installed from the project's own files); the
questions and paragraphs are written for these tests after issue 12's cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import QAService
from qa._condense import condense
from qa._config import AnswerSettings
from qa._errors import EmbeddingError
from qa._models import ArticleRecord, AskResponse, ChatTurn, Paragraph
from qa._retrieval import Candidate
from qa.reader import SpacyTagger, answer_extractively, question_type, score_sentences
from qa._text import sentence_spans, words
from qa.reader._answer_types import answering_entities, could_hold
from conftest import REPO, SHARED_DATA, make_settings


def sentence_texts(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


@pytest.fixture(scope="module")
def tagger() -> SpacyTagger:
    return SpacyTagger()


@pytest.mark.parametrize("question, expected", [
    ("Who chairs the harbour trust?", "person_or_organisation"),
    ("Whom did the council appoint?", "person_or_organisation"),
    ("Which actor will star in the film?", "person"),
    ("Which former assistant has taken over as coach?", "person"),  # a role: assistant, deputy, successor
    ("Which ferry company bought the quay?", "organisation"),
    ("What is the name of the mayor's shipping firm?", "organisation"),
    ("In which city is the regatta held?", "place"),
    ("Where did the ferry run aground?", "place"),
    ("Which country's sailors won the race?", "place"),
    ("When did the harbour reopen?", "date"),
    ("On what date was the captain released?", "date"),
    ("In what year did the quay open?", "year"),
    ("How long did the strike last?", "duration"),
    ("What prison sentence did the smuggler receive?", "duration"),
    ("At what age did she start sailing?", "duration"),
    ("What price did the trust agree to pay for the quay?", "money"),
    ("How much did the new pier cost?", "money"),
    ("What were the harbour's exports worth in May?", "money"),
    ("What percentage of voters backed the plan?", "percent"),
    ("How many ferries does the trust run?", "quantity"),
    ("How many days did the strike last?", "duration"),
    ("What amount of the harbour's trade is in fish?", "amount"),
    ("What was the most notable ship of the fleet?", None),
    ("By what vote did the court reject the claim?", "quantity"),
    ("How much land does the trust own?", "amount"),
    ("How large was the trust's surplus?", "amount"),
    ("Whose boat sank in the harbour?", "person_or_organisation"),
    ("Which jazz flautist played at the festival?", "person"),
    ("What is the present ceiling on a fine?", "amount"),
    ("What are private schools that charge no fees called?", None),
    ("When the tide turned, how many boats were lost?", "quantity"),
    ("Before the quay was sold, who owned it?", "person_or_organisation"),
    ("Why did the ferry company cancel the service?", None),
    ("Which pantomime will the comedian appear in?", "work"),
    ("Which film won the harbour festival's top prize?", "work"),
    ("What did the mayor say about the quay?", None),
])
def test_the_question_type_comes_from_the_wh_word_and_the_noun_it_asks_about(
        tagger: SpacyTagger, question: str, expected: str | None) -> None:
    assert question_type(tagger.tag_question(question)) == expected


def test_an_entity_the_question_already_names_is_not_an_answer(tagger: SpacyTagger) -> None:
    sentence = "Northwind Media's revenue rose to $42.1bn in 2004, chairman Peter Oakes said."
    [entities] = tagger.entities([sentence])
    asked = {"what", "was", "northwind", "media's", "revenue", "in", "2004"}
    assert [e.text for e in answering_entities(sentence, entities, "money", asked)] == ["42.1bn"]
    assert [e.text for e in answering_entities(sentence, entities, "year", asked)] == []  # the question's 2004
    assert [e.text for e in answering_entities(sentence, entities, "person", asked)] == ["Peter Oakes"]


def test_a_year_must_be_written_with_digits(tagger: SpacyTagger) -> None:
    sentence = "The quay opened last year, and the pier in 1998."
    [entities] = tagger.entities([sentence])
    assert [e.text for e in answering_entities(sentence, entities, "year", set())] == ["1998"]
    assert {e.text for e in answering_entities(sentence, entities, "date", set())} >= {"last year", "1998"}


@pytest.mark.parametrize("sentence, answer_type, expected", [
    # The small model labels these DATE, CARDINAL, DATE, MONEY and (for "280bn") PERSON: the unit decides.
    ("But the single is now on sale for 79p.", "money", ["79p"]),
    ("The bulk of the money - about 40m euros - will be offered as loans.", "money", ["about 40"]),
    ("Vodafone has cut off between eight and ten content sellers.", "quantity", ["between eight and ten"]),
    ("Membership rose 20 per cent to 4,500 on Tuesday.", "percent", ["20 per cent"]),
    ("Membership rose 20 per cent to 4,500 on Tuesday.", "quantity", ["4,500"]),
    ("The trust sought $280bn, and the judges ruled in a 2-1 decision in 2004.", "quantity", ["2"]),
])
def test_figures_are_read_by_their_unit_whatever_their_label(
        tagger: SpacyTagger, sentence: str, answer_type: str, expected: list[str]) -> None:
    [entities] = tagger.entities([sentence])
    assert [e.text for e in answering_entities(sentence, entities, answer_type, set())] == expected


@pytest.mark.parametrize("sentence, question, expected", [
    # "24-year" is a span of time, but not in the days asked for.
    ("During its 24-year history, the festival has grown; the harbour fair runs for 11 days in Poole.",
     "For how many days does the harbour fair last?", ["11 days"]),
    # "next weekend" and "two years ago" say when, not how long.
    ("The crew will sail again next weekend, after a crossing that took 38.07 seconds less than planned.",
     "How long did the crossing take?", ["38.07 seconds"]),
    ("The ferry strike began two years ago and lasted a month.", "How long did the ferry strike last?", ["a month"]),
    # A bare number is a time only with a unit of time beside it: the 800m is a distance.
    ("She overhauled Maria Mutola to win the 800m, then ran the 1,500m in 3 minutes 57.90 seconds.",
     "In what time did she win the 1,500m?", ["3 minutes 57.90 seconds"]),
    # Ages have no unit: "how old" is answered by the bare number.
    ("Mr Tanzi, 66, issued a statement.", "How old is Mr Tanzi?", ["66"]),
])
def test_a_duration_is_a_count_of_time_in_the_unit_asked_for(
        tagger: SpacyTagger, sentence: str, question: str, expected: list[str]) -> None:
    [entities] = tagger.entities([sentence])
    assert [e.text for e in answering_entities(sentence, entities, "duration", set(words(question)))] == expected


@pytest.mark.parametrize("sentence, question, answer_type, expected", [
    # The tagger reads "4x100" inside the question's own "4x100m": part of a word the question
    # uses is no answer. A possessive is the same name.
    ("Britain's 4x100m relay team won gold in 38.07 seconds.", "In what time did Britain's 4x100m quartet win?",
     "duration", ["38.07 seconds"]),
    ("Microsoft appointed Peter Oakes as chairman on Monday.", "Who chairs Microsoft's board?",
     "person_or_organisation", ["Peter Oakes"]),
])
def test_an_entity_cut_from_a_word_of_the_question_is_not_an_answer(
        tagger: SpacyTagger, sentence: str, question: str, answer_type: str, expected: list[str]) -> None:
    [entities] = tagger.entities([sentence])
    found = [e.text for e in answering_entities(sentence, entities, answer_type, set(words(question)))]
    assert found == expected


@pytest.mark.parametrize("text, answer_type, possible", [
    ("The harbour has been thrown out by an appeal court.", "quantity", False),
    ("The claim was rejected in a 2-1 decision.", "quantity", True),
    ("Seven ferries sailed.", "quantity", True),
    ("The pier opened on Tuesday.", "date", True),
    ("The pier opened last week.", "year", False),
    ("Eastgate said so.", "person", True),
    ("It said so, the Northwind chief added.", "person", False),  # only the question's own name
])
def test_sentences_that_cannot_hold_the_type_are_not_tagged(text: str, answer_type: str, possible: bool) -> None:
    assert could_hold(text, answer_type, {"northwind"}) is possible


# --- the answer holds the asked-for type -------------------------------------------------

class _FlatIdf:
    def idf(self, term: str) -> float:
        return 1.0


def _record(paragraphs: list[str]) -> ArticleRecord:
    spans, position = [], 0
    for number, text in enumerate(paragraphs, 1):
        spans.append(Paragraph(number, position, position + len(text), text))
        position += len(text) + 2
    return ArticleRecord("t1", "tobacco.txt", "/news/tobacco.txt", "/news", "Tobacco claim thrown out",
                         "hash", "txt", len(paragraphs), tuple(spans), "2026-01-01T00:00:00Z")


def _candidates(paragraphs: list[str], scores=(1.0, 0.9), denses=(0.7, 0.6)) -> list[Candidate]:
    """The paragraphs of one test article, retrieved in order with these scores and cosines."""
    record = _record(paragraphs)
    return [Candidate(record, paragraph, score=score, dense=dense)
            for paragraph, score, dense in zip(record.paragraphs, scores, denses)]


LEAD = ("The government's tobacco claim against the cigarette makers has been thrown out by the appeals court. "
        "The three judges ruled in a 2-1 decision.")
STORY = [LEAD,
         "Lawyers for the makers welcomed the ruling on Friday.",
         "The government had sought $280bn from the companies."]
QUESTION = "By what vote did the appeals court throw out the government's tobacco claim?"


def _answer(tagger, question: str, record: ArticleRecord, number: int = 1, **settings):
    candidate = Candidate(record, record.paragraphs[number - 1], score=1.0, dense=0.7)
    return answer_extractively(condense(question, None), [candidate], _FlatIdf(),
                               AnswerSettings(**settings), tagger)


def test_the_sentence_with_the_asked_for_figure_is_quoted_beside_the_lead(tagger: SpacyTagger) -> None:
    untyped = _answer(tagger, QUESTION, _record(STORY), answer_types=False)
    assert "2-1" not in untyped.answer  # the lead's words win on overlap alone
    typed = _answer(tagger, QUESTION, _record(STORY))
    assert typed.answer_type == "quantity"
    assert "2-1 decision" in typed.answer and not typed.abstained
    assert [c.paragraph for c in typed.citations] == [1]


@pytest.mark.parametrize("question, needed", [
    (QUESTION, "2-1"),
    ("How much had the government sought from the cigarette makers in its tobacco claim?", "$280bn"),
    ("On which day did lawyers for the cigarette makers welcome the appeals court ruling?", "Friday"),
])
def test_no_answer_lacks_the_type_when_its_paragraph_or_the_next_has_it(
        tagger: SpacyTagger, question: str, needed: str) -> None:
    answer = _answer(tagger, question, _record(STORY), neighbour_paragraphs=2)
    assert needed in answer.answer, answer.answer


def test_a_figure_in_the_next_paragraph_is_read_when_the_lead_matched(tagger: SpacyTagger) -> None:
    question = "How much had the government sought from the cigarette makers in its tobacco claim?"
    lead_only = _answer(tagger, question, _record(STORY))
    assert "$280bn" not in lead_only.answer
    answer = _answer(tagger, question, _record(STORY), neighbour_paragraphs=2)
    assert "$280bn" in answer.answer and answer.citations[0].paragraph == 3
    assert answer.citations[0].text == STORY[2]


def test_a_question_for_a_title_prefers_the_sentence_naming_a_work(tagger: SpacyTagger) -> None:
    record = _record(["The comedian who won the jungle show on Monday agreed to appear at the harbour theatre. "
                      "He had signed up to play Jack in Jack and the Beanstalk in Birmingham."])
    question = "Which pantomime had the comedian who won the jungle show agreed to appear in?"
    assert "Beanstalk" not in _answer(tagger, question, record, answer_types=False).answer
    typed = _answer(tagger, question, record)
    assert typed.answer_type == "work"
    assert "Jack and the Beanstalk" in typed.answer


def test_a_description_question_is_not_typed_and_not_reordered(tagger: SpacyTagger) -> None:
    question = "Why was the government's tobacco claim thrown out by the appeals court?"
    typed = _answer(tagger, question, _record(STORY))
    untyped = _answer(tagger, question, _record(STORY), answer_types=False)
    assert typed.answer_type is None and typed.answer == untyped.answer


def test_the_response_carries_the_answer_type() -> None:
    assert "answer_type" in AskResponse.model_json_schema()["properties"]


# --- the invariant on real news ------------------------------------------------------------

BBC = SHARED_DATA / "bbc"
DEV_SET = REPO / "tests" / "data" / "bbc_dev.jsonl"


def test_on_real_news_no_answer_lacks_the_type_when_its_paragraph_holds_it(tmp_path: Path) -> None:
    """Over the articles of 60 answerable development questions, indexed for real, every answer
    to a typed question quotes an entity of the type whenever the cited paragraph has one."""
    questions = [q for q in map(json.loads, DEV_SET.read_text(encoding="utf-8").splitlines())
                 if q["answers"] and not q.get("history")][:60]
    articles = tmp_path / "bbc"
    for question in questions:
        target = articles / question["doc"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BBC / question["doc"], target)
    service = QAService(make_settings(tmp_path))
    service.ingest([articles])
    tagger = service.tagger
    typed = checked = 0
    for question in questions:
        response = service.ask(question["question"])
        answer_type = question_type(tagger.tag_question(question["question"]))
        assert response.answer_type == answer_type
        if answer_type is None or response.abstained:
            continue
        typed += 1
        asked = set(words(question["question"]))
        paragraph = response.citations[0].text
        facts = [entity.text for text in sentence_texts(paragraph)
                 for entity in answering_entities(text, tagger.entities([text])[0], answer_type, asked)]
        if facts:
            checked += 1
            assert any(fact in response.answer for fact in facts), (question["question"], response.answer, facts)
    assert typed >= 40 and checked >= 30, (typed, checked)


class _ScriptedEmbedder:
    """Vectors by text at the embedding boundary: the question and any text holding the sentence
    that means the same point one way, every other text at right angles; it records what it was
    asked."""

    def __init__(self, question: str, same_meaning: str) -> None:
        self.question, self.same_meaning = question, same_meaning
        self.asked: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.asked.extend(texts)
        return np.array([[1.0, 0.0] if t == self.question or self.same_meaning in t else [0.0, 1.0]
                         for t in texts])


HARBOUR = ["The harbour talks in Poole will plan a new forum on the quay's future, the harbour council said.",
           "Lisbon is being represented at them by its director of ports."]
HARBOUR_TITLE = "Tobacco claim thrown out"  # the title ``_record`` gives every test article


def _harbour_answerer(question: str, history: list[ChatTurn] | None, tagger: SpacyTagger):
    candidates = _candidates(HARBOUR)
    condensed = condense(question, history)
    embedder = _ScriptedEmbedder(condensed.standalone, HARBOUR[1])

    def answer(question_vector=None, **settings):
        return answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(**settings), tagger, embedder,
                                   question_vector)

    return answer, embedder


def test_a_sentence_that_means_the_question_beats_one_that_only_shares_its_words(tagger: SpacyTagger) -> None:
    question = "Who is speaking for Lisbon at the harbour talks in Poole?"
    answer, embedder = _harbour_answerer(question, None, tagger)

    assert "director of ports" not in answer(meaning_weight=0.0).answer  # the lead's words win
    assert embedder.asked == []
    meant = answer(meaning_weight=0.5)
    assert "director of ports" in meant.answer and meant.citations[0].paragraph == 2
    # Each sentence is read after its article's title, which names what its "them" stands for.
    assert embedder.asked[0] == question
    assert set(embedder.asked[1:]) == {f"{HARBOUR_TITLE}. {sentence}" for sentence in HARBOUR}


def test_only_sentences_close_enough_to_overtake_the_best_are_embedded(tagger: SpacyTagger) -> None:
    """A cosine shifts a sentence by at most ``meaning_weight``: a sentence trailing the best by
    more cannot overtake it, and embedding it (4 ms a sentence) would be wasted."""
    answer, embedder = _harbour_answerer("Who is speaking for Lisbon at the harbour talks in Poole?", None, tagger)
    lead_only = answer(meaning_weight=0.001)  # the lead leads by more than that
    assert embedder.asked == [] and "director of ports" not in lead_only.answer
    answer(meaning_weight=0.5, meaning_sentences=1)  # the best alone: nothing to reorder
    assert embedder.asked == []


class _FailingEmbedder:
    def embed(self, texts: list[str]) -> np.ndarray:
        raise EmbeddingError("embedding endpoint failed: 502 Bad Gateway")


def test_an_embedding_endpoint_that_fails_at_the_reader_leaves_the_words_to_decide(
        tagger: SpacyTagger, caplog: pytest.LogCaptureFixture) -> None:
    candidates = _candidates(HARBOUR)
    condensed = condense("Who is speaking for Lisbon at the harbour talks in Poole?", None)
    words_only = answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(meaning_weight=0.0), tagger)
    failed = answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(meaning_weight=0.5), tagger,
                                 _FailingEmbedder())
    assert failed.answer == words_only.answer and not failed.abstained
    assert "not re-ranked by meaning" in caplog.text and "502 Bad Gateway" in caplog.text


def test_the_question_vector_retrieval_searched_with_is_not_embedded_again(tagger: SpacyTagger) -> None:
    answer, embedder = _harbour_answerer("Who is speaking for Lisbon at the harbour talks in Poole?", None, tagger)
    meant = answer(meaning_weight=0.5, question_vector=np.array([1.0, 0.0]))
    assert "director of ports" in meant.answer
    assert embedder.asked == [f"{HARBOUR_TITLE}. {sentence}" for sentence in HARBOUR]


def test_a_follow_up_is_compared_by_its_standalone_question(tagger: SpacyTagger) -> None:
    """"Who is speaking for them?" alone means nothing; with the earlier question it does."""
    earlier = [ChatTurn(role="user", content="What will the harbour talks in Poole plan for Lisbon?")]
    answer, embedder = _harbour_answerer("Who is speaking for them?", earlier, tagger)
    meant = answer(meaning_weight=0.5, abstain_threshold=0.0)  # neither sentence names a person
    assert embedder.asked[0] == condense("Who is speaking for them?", earlier).standalone
    assert embedder.asked[0] != "Who is speaking for them?"
    assert "director of ports" in meant.answer


def test_a_role_noun_answers_the_verb_the_question_asks_with(tagger: SpacyTagger) -> None:
    """"Who directed…?" is answered by "Director Anna Leigh…", though the lead shares more words."""
    story = ["The harbour film Quay Lights premiered at the Poole festival on Friday, the festival said.",
             "Director Anna Leigh said the shoot took two years."]
    candidates = _candidates(story)
    condensed = condense("Who directed the harbour film Quay Lights?", None)
    scored = score_sentences(condensed, candidates, _FlatIdf())
    by_text = {s.text: s for s in scored}
    assert "directed" in by_text[story[1]].covered and "directed" not in by_text[story[0]].covered
    answer = answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(), tagger)
    assert "Anna Leigh" in answer.answer and answer.citations[0].paragraph == 2


def test_the_types_penalty_counts_in_the_abstention_at_the_share_set(tagger: SpacyTagger) -> None:
    """"Who gains most…?" is answered by "the poor", which no tagger calls a person or an
    organisation. The type's penalty reorders the sentences; in the decision to abstain it counts
    at ``type_in_abstention`` of its weight: whole (the default), the sentence is withdrawn for
    lacking a name; at half, a sentence that clears the threshold by its words is kept."""
    candidates = _candidates(["The poor gain most when rich and poor countries trade more, the study found."],
                             denses=(0.6,))
    condensed = condense("Who gains most when rich and poor countries trade more?", None)
    assert question_type(tagger.tag_question(condensed.question)) == "person_or_organisation"
    support = score_sentences(condensed, candidates, _FlatIdf())[0].support
    settings = {"abstain_threshold": support - 0.15, "type_bonus": 0.3, "type_penalty": 0.2}

    def answer(share: float):
        return answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(**settings, type_in_abstention=share),
                                   tagger)

    assert answer(1.0).abstained  # the whole penalty takes it below the threshold
    half = answer(0.5)
    assert not half.abstained and "The poor gain most" in half.answer


def test_a_long_sentence_that_answers_is_quoted_whole_by_default(tagger: SpacyTagger) -> None:
    """Wikipedia-style sentences run to 60-80 words, and the fact often sits after the words that
    matched: cut to a window around those words, the quote lost it. A sentence of 70 words is
    quoted whole with the default settings, and cut when ``max_words`` is lower."""
    filler = " ".join(f"clause{n}" for n in range(55))
    sentence = (f"The harbour council of Poole, after {filler} long debates, finally chose "
                "the granite quay design by Anna Leigh.")
    assert 65 < len(sentence.split()) < 80
    candidates = _candidates([sentence])
    condensed = condense("Which design did the harbour council of Poole choose?", None)
    default = answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(), tagger)
    assert "granite quay design by Anna Leigh." in default.answer and "…" not in default.answer
    cut = answer_extractively(condensed, candidates, _FlatIdf(), AnswerSettings(max_words=40), tagger)
    assert "…" in cut.answer


def test_a_question_word_is_found_in_a_sentence_by_its_stem() -> None:
    """"sacking" in the question is "sacked" in the article, "existence" is "exist": the light
    stem of the keyword index keeps them apart, the reader's Snowball stem does not."""
    story = ["The board met at the club on Monday to discuss the season.",
             "Valencia sacked coach Claudio Ranieri after the board meeting, and the blogs that exist on the club agree."]
    candidates = _candidates(story, scores=(1.0, 1.0), denses=(0.7, 0.7))
    condensed = condense("What followed the sacking, and in how many blogs does existence of the story show?", None)
    scored = {s.candidate.paragraph.number: s for s in score_sentences(condensed, candidates, _FlatIdf())}
    assert {"sacking", "existence"} <= scored[2].covered
    assert not {"sacking", "existence"} & scored[1].covered
