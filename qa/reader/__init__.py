"""The reader: from retrieved paragraphs to a cited extractive answer, or an abstention.

- ``_extractive``: scores the candidate sentences and quotes the best, cited.
- ``_answer_types``: the kind of answer a question asks for and the sentences that hold one
  (spaCy's small English pipeline).
- ``_constraints``: the years, figures and names a question insists on, looked up in an article.
"""

from qa.reader._answer_types import ANSWER_TYPES, AnswerType, SpacyTagger, answering_entities, question_type
from qa.reader._constraints import (
    ArticleFacts, Constraint, missing_constraints, not_mentioned_message, question_constraints,
)
from qa.reader._extractive import (
    ABSTENTION, ExtractiveAnswer, RankedSentences, answer_extractively, rank_sentences, score_sentences,
)

__all__ = [
    "ABSTENTION", "ANSWER_TYPES", "AnswerType", "ArticleFacts", "Constraint", "ExtractiveAnswer", "RankedSentences",
    "SpacyTagger", "answer_extractively", "answering_entities", "missing_constraints", "not_mentioned_message",
    "question_constraints", "question_type", "rank_sentences", "score_sentences",
]
