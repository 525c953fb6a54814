"""The local model's answers as the chat streams them, seen in headless Chromium (issue 14's
"the chat streams it").

    make install-local-llm
    .venv/bin/python -m bench.llm_chat --index-dir /tmp/idx-seed           # qa ingest seeds first

The index is served as ``qa serve`` serves it, with ``[llm] backend = "local"`` (the Qwen2.5-Coder
1.5B GGUF in a supervised child process), on ``--port``. In a laptop-sized window the chat's
*Answer mode* is set to the LLM and each question is asked with Enter. A MutationObserver
records, with the page's clock, every length the answer's text had while it streamed in. Per
question the script prints the time from Enter to the first text and to the finished answer,
how many distinct lengths the text passed through (1 means it arrived at once), the mode the
answer's footnote names (an answer the citation check replaced says extractive, with the
notice), the notice, the answer and the files and paragraphs its ``[n]`` cards cite.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from bench.library import served
from qa import QAService, load_settings
from tests._browser import launch_chromium, new_page

QUESTIONS = (
    "Which country deployed THAAD?",
    "How many anti-ballistic missiles will encompass Russia?",
    "Where have the missiles already been placed?",
)
ANSWER_TIMEOUT_MS = 300_000

# Every length the newest answer's text has had, with the page's clock: the stream as a reader sees it.
RECORD_LENGTHS = """
window.__lengths = [];
new MutationObserver(() => {
  const turns = document.querySelectorAll('#conversation .turn');
  const turn = turns[turns.length - 1];
  if (!turn) return;
  const answer = turn.querySelector('.bubble.answer');
  const length = answer ? answer.textContent.trim().length : 0;
  const last = window.__lengths[window.__lengths.length - 1];
  if (length && (!last || last.length !== length || last.turn !== turns.length))
    window.__lengths.push({turn: turns.length, length: length, at: performance.now()});
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def ask(page: Page, question: str, number: int) -> dict:
    box = page.locator("#question-box textarea")
    box.fill(question)
    sent = page.evaluate("performance.now()")
    box.press("Enter")
    turn = page.locator("#conversation .turn").nth(number)
    expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    done = page.evaluate("performance.now()")
    lengths = [entry for entry in page.evaluate("window.__lengths") if entry["turn"] == number + 1]
    notice = turn.locator(".footnotes .notice")
    return {
        "first_text_s": (lengths[0]["at"] - sent) / 1000 if lengths else None,
        "done_s": (done - sent) / 1000,
        "lengths": len({entry["length"] for entry in lengths}),
        "mode": turn.locator(".footnotes .mode").get_attribute("data-mode"),
        "notice": notice.text_content() if notice.count() else "",
        "answer": turn.locator(".bubble.answer").text_content().strip(),
        "cited": [card.text_content().strip()[:80] for card in turn.locator(".source-card").all()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=7873)
    args = parser.parse_args()
    loaded = load_settings(index={"dir": str(args.index_dir)}, llm={"backend": "local"})
    settings = loaded.model_copy(update={"server": loaded.server.model_copy(
        update={"host": "127.0.0.1", "port": args.port})})
    service = QAService(settings)
    began = time.perf_counter()
    service.warm_up()  # as qa serve does before it reports ready
    service.start_llm()  # the model's child process, started before the page opens
    print(f"warm-up (the local model's process started): {time.perf_counter() - began:.1f} s")
    with served(service, settings) as base, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        with new_page(browser) as page:
            page.add_init_script(RECORD_LENGTHS)
            page.goto(base)
            expect(page.locator("#question-box textarea")).to_be_editable(timeout=60_000)
            page.locator("#chat-settings").get_by_text("Settings").first.click()
            page.get_by_label("LLM: written answer", exact=False).check()
            rows = [ask(page, question, number) for number, question in enumerate(QUESTIONS)]
        browser.close()
    service.close()
    print("| question | first text (s) | done (s) | lengths streamed | answered as | notice | answer | cites |")
    print("|---|---|---|---|---|---|---|---|")
    for question, row in zip(QUESTIONS, rows):
        first = "—" if row["first_text_s"] is None else f"{row['first_text_s']:.1f}"
        print(f"| {question} | {first} | {row['done_s']:.1f} | {row['lengths']} | {row['mode']} | "
              f"{row['notice'] or '—'} | {row['answer']} | {'; '.join(row['cited'])} |")


if __name__ == "__main__":
    main()
