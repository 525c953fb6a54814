"""Follow-up detection, both ways (issue 15's figure): a question that leans on the earlier turn
borrows from it; one that names its own subject stands alone.

    .venv/bin/python -m bench.follow_up                              # detection only, no index
    .venv/bin/python -m bench.follow_up --index-dir /tmp/idx-bbc     # and hit@5 through QAService.ask

The follow-up questions of ``tests/data/bbc_dev.jsonl`` are asked with their own history; every
other question of the file (plain, needs-title, unanswerable) is asked after an unrelated
earlier turn (the previous standalone question of the file, which is about another article),
as a user who changes the subject in the middle of a chat does. Prints, per half (tune/test)
and kind, how often the question was read as the user meant it and, with ``--index-dir``, hit@5
of the gold article (unanswerable questions have a gold article too: the one their false
premise is about), each beside the same figure for the rule before issue 15 (any pronoun, or
two content terms or fewer, made a follow-up), run in the same process.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

from qa import QAService, load_settings
from qa import _condense
from qa._models import ChatTurn
from qa._text import terms, words

REPO = Path(__file__).resolve().parent.parent


_EARLIER_ANAPHORA = {
    "it", "its", "they", "them", "their", "he", "him", "his", "she", "her", "this", "that",
    "these", "those", "there", "then", "one", "ones", "same", "such", "former", "latter",
}


def earlier_rule(question: str) -> bool:
    """The rule before issue 15: any of these words, a leading "and"/"what about", or two terms or fewer."""
    return bool(set(words(question)) & _EARLIER_ANAPHORA or _condense._FOLLOW_UP_START.match(question)
                or len(terms(question)) <= 2)


def cases(path: Path) -> list[tuple[dict, list[ChatTurn], bool]]:
    """(question, the history it is asked with, whether it is a follow-up)."""
    out, previous = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        if question.get("history"):
            out.append((question, [ChatTurn(**turn) for turn in question["history"]], True))
            continue
        if previous is not None:
            out.append((question, [ChatTurn(role="user", content=previous["question"]),
                                   ChatTurn(role="assistant", content="(an answer)")], False))
        previous = question
    return out


def measure(rows, detect: Callable[[str], bool], service: QAService | None) -> dict[tuple[str, str], list[float]]:
    tallies: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0])  # right, hits, count
    original = _condense.is_follow_up
    _condense.is_follow_up = detect
    try:
        for question, history, follow_up in rows:
            key = (question.get("split", "-"), "follow-up" if follow_up else "standalone")
            tally = tallies[key]
            tally[0] += detect(question["question"]) == follow_up
            tally[2] += 1
            if service is not None:
                response = service.ask(question["question"], history, retrieve=5, mode="extractive")
                gold = {question["doc"], *question.get("also_docs", [])}
                tally[1] += bool(gold & {r.doc for r in response.retrieved[:5]})
    finally:
        _condense.is_follow_up = original
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, default=REPO / "tests/data/bbc_dev.jsonl")
    parser.add_argument("--index-dir", type=Path, help="an index of the BBC articles, for hit@5")
    args = parser.parse_args()
    rows = cases(args.questions)
    service = QAService(load_settings(index={"dir": str(args.index_dir)})) if args.index_dir else None
    before = measure(rows, earlier_rule, service)
    after = measure(rows, _condense.is_follow_up, service)
    print(f"{len(rows)} questions from {args.questions.name}; each standalone one asked after an unrelated turn\n")
    print("| half | asked as | n | read as meant: before → now |" + (" hit@5: before → now |" if service else ""))
    print("|---|---|---|---|" + ("---|" if service else ""))
    for key in sorted(after):
        b, a = before[key], after[key]
        line = f"| {key[0]} | {key[1]} | {a[2]} | {b[0] / b[2]:.3f} → {a[0] / a[2]:.3f} |"
        if service:
            line += f" {b[1] / b[2]:.3f} → {a[1] / a[2]:.3f} |"
        print(line)


if __name__ == "__main__":
    main()
