"""The local model as a re-ranker of the reader's best sentences, by query likelihood: how
likely the model finds the question after reading the sentence (log P(question | sentence), per
question token, as in "Improving Passage Retrieval with Zero-Shot Question Generation", Sachan et
al. 2022). Issue 12's last untried use of the local model; measured, not adopted
(docs/benchmarks.md, "sixth slice").

    make install-local-llm
    .venv/bin/python -m bench.query_likelihood --index-dir /tmp/idx-kw-new --sets bbc-dev

For each answerable question of the tuning half, the reader ranks every sentence of the top
paragraphs as it does to answer (``rank_sentences``: words, the answer type, meaning); the
model then reads each of the best ``--sentences`` after its article's title, in Qwen's chat
format, and scores the standalone question as the reply. Printed: how often the first sentence holds the
gold answer when ranked by the reader's support plus ``w`` times the model's score, for a few
``w`` (0 is the reader alone, a large one the model alone), and how often any of them holds it.

The model runs in this process (llama-cpp-python), about 1.5 s a sentence on 2 cores: a bench
of its own, not a variant of ``bench.reader``. The product never loads it in-process (its
local model is a supervised server, qa/llm/_supervisor.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from llama_cpp import Llama

from qa import QAService, load_settings
from qa.llm._local_model import local_model_path
from qa.reader import SpacyTagger, rank_sentences
from bench.reader import SETS, load_cases

WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 100.0)


def _folded(text: str) -> str:
    return " ".join(text.lower().replace(",", "").split())


def question_log_likelihood(model: Llama, passage: str, question: str) -> float:
    prompt = (f"<|im_start|>user\nPassage: {passage}\nWrite a question that this passage answers.<|im_end|>\n"
              "<|im_start|>assistant\n")
    prompt_tokens = model.tokenize(prompt.encode(), add_bos=False, special=True)
    question_tokens = model.tokenize(question.encode(), add_bos=False, special=False)
    model.reset()
    model.eval(prompt_tokens + question_tokens)
    logits = np.asarray(model.scores[len(prompt_tokens) - 1 : len(prompt_tokens) + len(question_tokens) - 1])
    peak = logits.max(axis=1, keepdims=True)
    log_normaliser = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    chosen = logits[np.arange(len(question_tokens)), question_tokens]
    return float((chosen - log_normaliser).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", default=["bbc-dev"], choices=list(SETS))
    parser.add_argument("--sentences", type=int, default=6)
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions a set")
    args = parser.parse_args()
    service = QAService(load_settings(index={"dir": str(args.index_dir)}))
    tagger = SpacyTagger()
    top_k, keyword = service.settings.retrieval.top_k, service.snapshot().keyword
    model = Llama(model_path=str(local_model_path()), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    for set_name in args.sets:
        cases = [c for c in load_cases(set_name, SETS[set_name], service, "tune") if c.question.answers]
        cases = cases[: args.limit]
        ranked: list[list[tuple[float, float, bool]]] = []  # (support, model score, holds) per sentence
        began = time.perf_counter()
        for case in cases:
            golds = [_folded(g) for g in case.question.answers]
            rows = []
            order = rank_sentences(case.condensed, case.candidates[:top_k], keyword, service.settings.answer,
                                   tagger, service.embedder, case.vector)
            for sentence in order.scored[: args.sentences]:
                passage = f"{sentence.candidate.record.title}. {sentence.text}"
                score = question_log_likelihood(model, passage, case.condensed.standalone)
                rows.append((sentence.support, score, any(g in _folded(sentence.text) for g in golds)))
            ranked.append(rows)
        seconds = time.perf_counter() - began
        print(f"\n### {set_name}, tuning half: {len(cases)} answerable questions, best {args.sentences} sentences, "
              f"{seconds / max(len(cases), 1):.1f} s a question\n")
        print("| w (reader support + w × model score) | first sentence holds the answer |")
        print("|---|---|")
        for weight in WEIGHTS:
            hits = sum(max(rows, key=lambda r: r[0] + weight * r[1])[2] for rows in ranked if rows)
            print(f"| {weight:g} | {hits} |")
        print(f"| any of the {args.sentences} | {sum(any(r[2] for r in rows) for rows in ranked)} |")


if __name__ == "__main__":
    main()
