"""What a reader can do with an answer once it is there (issue 15), in real headless Chromium
against ``qa serve``: copy it with its sources, regenerate it, rate it 👍 / 👎 for evaluation;
plus the example questions drawn from the index, and the chat's settings and footnotes.

The ratings land in the index folder's feedback file, which the tests read back. The rating and
regenerate events are also called the way a hostile client would, with forged event data.
Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from _browser import ANSWER_TIMEOUT_MS, LAPTOP, PHONE, ChatPage, browser, new_page, screenshot_path  # noqa: F401  (browser: a fixture)
from _live import GradioSession, qa_server
from conftest import SEED_FILE, SEEDS, make_settings
import ui
from qa import QAService

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_ANSWER_PHRASE = "four hundred anti-ballistic missiles will encompass Russia"
SEED_TITLE = "Aegis Missile Defense System: The US Missile Shield Deployment in Japan Threatens Russia’s Security"
FOLLOW_UP = "Where have they already been placed?"
FOLLOW_UP_PHRASE = "California and Alaska"
SAVED = "Thanks: saved with the question for evaluation."

# Four articles that are not the seed, for the example questions; indexed before the server starts.
OTHER_ARTICLES = {
    "tarnwick-ferry.txt": ("Tarnwick ferry fares rise for the summer",
                           "The Tarnwick ferry company raised its summer fares by twelve percent on Monday.\n\n"
                           "Commuters on the Tarnwick ferry said the fare rise came without warning."),
    "orlen-library.txt": ("Orlen library reopens after the flood",
                          "The Orlen library reopened on Saturday, eight months after the river flood.\n\n"
                          "Volunteers in Orlen dried and catalogued forty thousand books."),
    "quesby-tram.txt": ("Quesby tram line gets a night service",
                        "The Quesby tram line will run a night service every thirty minutes from May.\n\n"
                        "The Quesby council expects two thousand extra night passengers a week."),
    "vandry-market.txt": ("Vandry market moves to the old station",
                          "The Vandry Saturday market moves to the old station hall in June.\n\n"
                          "Stallholders at the Vandry market welcomed the covered hall."),
}
UPLOADED_FILE = "pellam-bridge.txt"
UPLOADED_TITLE = "Pellam bridge closes for repairs"
UPLOADED_TEXT = (f"{UPLOADED_TITLE}\n\nThe Pellam bridge closes for six weeks of repairs to its deck from Monday.\n\n"
                 "Drivers are sent over the Pellam ring road while the bridge is shut.\n")

# Every state each turn passes through, from now on: tells a regenerated answer from one left alone.
RECORD_TURN_STATES = """() => {
  window.__turnStates = [];
  new MutationObserver(() => {
    document.querySelectorAll('#conversation .turn').forEach((turn) => {
      const entry = turn.dataset.turn + ':' + turn.dataset.state;
      if (window.__turnStates[window.__turnStates.length - 1] !== entry) window.__turnStates.push(entry);
    });
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = make_settings(tmp_path_factory.mktemp("actions"))
    QAService(settings).ingest([SEEDS])
    return settings.index.dir


@pytest.fixture(scope="module")
def base_url(index_dir: Path) -> Iterator[str]:
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(index_dir, env=env, log=screenshot_path("actions-server").with_suffix(".log")) as url:
        yield url


@pytest.fixture
def feedback_file(index_dir: Path) -> Iterator[Path]:
    """The server's feedback file, empty at the start of each test."""
    path = index_dir / "feedback.jsonl"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


class Chat(ChatPage):
    def rate(self, turn: Locator, rating: str) -> None:
        turn.locator(f'.answer-actions button[data-rating="{rating}"]').click()
        expect(turn.locator(f'button[data-rating="{rating}"]')).to_have_attribute("aria-pressed", "true")
        expect(turn.locator(".action-status")).to_have_text(SAVED)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=screenshot_path(name))


@pytest.fixture
def chat(browser: Browser, base_url: str) -> Iterator[Chat]:
    with new_page(browser, LAPTOP, permissions=["clipboard-read", "clipboard-write"]) as page:
        yield Chat(page, base_url)


def test_copy_puts_the_answer_and_each_cited_file_and_paragraph_on_the_clipboard(chat: Chat) -> None:
    turn = chat.ask(SEED_QUESTION)
    answer = turn.locator(".bubble.answer").text_content()
    cards = turn.locator(".source-card .card-meta").all_text_contents()
    assert cards == [f"{SEED_FILE.name} · ¶6"], cards

    turn.get_by_role("button", name="Copy").click()

    expect(turn.locator(".action-status")).to_have_text("Copied the answer and its sources.")
    copied = chat.page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(answer.strip()), copied
    assert SEED_ANSWER_PHRASE in copied and "[1]" in copied
    for meta in cards:
        doc, paragraph = meta.split(" · ¶")
        assert f"[1] “{SEED_TITLE}” — {doc}, paragraph {paragraph}" in copied, copied
    chat.shot("20-answer-copied")


def test_regenerate_asks_the_last_question_again_over_the_same_earlier_turns(
        chat: Chat, feedback_file: Path) -> None:
    first = chat.ask(SEED_QUESTION)
    follow_up = chat.ask(FOLLOW_UP)
    expect(follow_up.locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    # Only the newest answer can be asked again.
    expect(first.locator(".regenerate")).to_have_count(0)
    expect(follow_up.locator(".regenerate")).to_have_count(1)
    chat.rate(follow_up, "up")
    chat.page.evaluate(RECORD_TURN_STATES)

    follow_up.locator(".regenerate").click()

    # The turn is answered afresh (it goes back to pending), in place: still two turns.
    chat.page.wait_for_function("() => window.__turnStates.includes('1:pending')", timeout=ANSWER_TIMEOUT_MS)
    expect(chat.turns.nth(1)).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    expect(chat.turns).to_have_count(2)
    states = chat.page.evaluate("window.__turnStates")
    assert not any(state.startswith("0:pending") for state in states), states  # the first turn stays
    regenerated = chat.turns.nth(1)
    expect(regenerated.locator(".msg.user")).to_have_text(FOLLOW_UP)
    # Read with the same earlier question, so it answers the same follow-up.
    expect(regenerated.locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    expect(regenerated.locator(".bubble.answer")).to_contain_text(FOLLOW_UP_PHRASE)
    # A new answer, so the old one's rating is gone from it; rating it stores another answer.
    expect(regenerated.locator('button[data-rating="up"]')).to_have_attribute("aria-pressed", "false")
    chat.rate(regenerated, "down")
    stored = records(feedback_file)
    assert [r["rating"] for r in stored] == ["up", "down"]
    assert stored[0]["answer_id"] != stored[1]["answer_id"]
    assert stored[1]["earlier_questions"] == [SEED_QUESTION]
    chat.shot("21-regenerated")
    assert chat.errors == []


def test_thumbs_up_stores_the_question_and_the_answer_the_server_gave(chat: Chat, feedback_file: Path) -> None:
    turn = chat.ask(SEED_QUESTION)
    answer = turn.locator(".bubble.answer").text_content()

    chat.rate(turn, "up")

    [record] = records(feedback_file)
    assert record["rating"] == "up"
    assert record["question"] == SEED_QUESTION
    assert record["earlier_questions"] == []
    assert record["answer"] == answer  # the same text the page shows, [1] included
    assert record["mode"] == "extractive" and record["abstained"] is False
    [citation] = record["citations"]
    assert (citation["n"], citation["doc"], citation["paragraph"]) == (1, SEED_FILE.name, 6)
    assert citation["title"] == SEED_TITLE and len(citation["article_id"]) >= 8
    assert SEED_ANSWER_PHRASE in citation["quote"]
    assert record["time"].startswith("20")

    # The same rating again is no new record; the follow-up's 👎 carries its earlier question.
    turn.locator('button[data-rating="up"]').click()
    follow_up = chat.ask(FOLLOW_UP)
    chat.rate(follow_up, "down")
    stored = records(feedback_file)
    assert [r["rating"] for r in stored] == ["up", "down"]
    assert stored[1]["question"] == FOLLOW_UP and stored[1]["earlier_questions"] == [SEED_QUESTION]
    expect(turn.locator('button[data-rating="up"]')).to_have_attribute("aria-pressed", "true")
    chat.shot("22-rated")
    assert chat.errors == []


def test_the_answer_buttons_fit_a_phone_and_a_tap_rates(browser: Browser, base_url: str, feedback_file: Path) -> None:
    with new_page(browser, PHONE, is_mobile=True, has_touch=True) as page:
        chat = Chat(page, base_url)
        turn = chat.ask(SEED_QUESTION)
        actions = turn.locator(".answer-actions")
        for button in actions.locator("button").all():
            box = button.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
            assert box["height"] >= 40, "a touch target smaller than a finger"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"

        turn.locator('button[data-rating="up"]').tap()

        expect(turn.locator(".action-status")).to_have_text(SAVED)
        assert [r["rating"] for r in records(feedback_file)] == ["up"]
        chat.shot("26-phone-answer-actions")


FORGED = [
    {"turn": 1, "rating": "up"},  # no such turn yet
    {"turn": -1, "rating": "up"},
    {"turn": 10**30, "rating": "up"},
    {"turn": "0", "rating": "up"},
    {"turn": 0.5, "rating": "up"},
    {"turn": True, "rating": "up"},
    {"turn": None, "rating": "up"},
    {"turn": 0, "rating": "sideways"},
    {"turn": 0, "rating": ["up"]},
    {"turn": 0, "rating": None},
    {"turn": 0},
    {},
]


def test_forged_rating_and_regenerate_events_store_nothing_and_do_not_crash(
        base_url: str, feedback_file: Path) -> None:
    tab = GradioSession(base_url)
    try:
        tab.open_page()
        ask, like = tab.fn_index("question-box", "submit"), tab.fn_index("conversation", "like")
        retry = tab.fn_index("conversation", "retry")
        # Before any answer, a rating names no turn.
        tab.call(like, [None], {"turn": 0, "rating": "up"})
        conversation = tab.call(ask, [SEED_QUESTION, None, 5, "extractive"])[0]
        assert SEED_ANSWER_PHRASE in conversation

        for forged in FORGED:
            tab.call(like, [None], forged)  # each completes: a failed event raises AssertionError here
        for forged in ([], "turn", 7):  # event data that is not an object at all
            tab.call(like, [None], forged)
        for forged in ({"turn": 3}, {"turn": -1}, {"turn": "0"}, {}):
            tab.call(retry, [None, 5, "extractive"], forged)
        assert not feedback_file.exists(), feedback_file.read_text()

        # A real click's data, with an answer of the client's own added: only which turn and which
        # rating are read; the question and the answer come from what the server answered.
        tab.call(like, [None], {"turn": 0, "rating": "up", "answer": "FORGED ANSWER", "question": "FORGED?",
                                "citations": [{"doc": "forged.txt", "paragraph": 1}]})
        [record] = records(feedback_file)
        assert record["question"] == SEED_QUESTION
        assert SEED_ANSWER_PHRASE in record["answer"] and "FORGED" not in json.dumps(record)
        assert [c["doc"] for c in record["citations"]] == [SEED_FILE.name]
        # The server still answers.
        assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200
        assert SEED_ANSWER_PHRASE in tab.call(ask, [SEED_QUESTION, None, 5, "extractive"])[0]
    finally:
        tab.close()


def test_settings_start_closed_the_single_mode_is_a_line_of_text_and_the_footnote_reads_normally(
        chat: Chat) -> None:
    page = chat.page
    # Closed: the slider is not shown until Settings is opened.
    expect(page.locator("#sources-to-use input[type=range]")).to_be_hidden()
    # Gradio's footer is there (the API link), without a second "Settings" of its own.
    expect(page.locator("footer")).to_contain_text("Use via API")
    expect(page.get_by_text("Settings", exact=True)).to_have_count(1)
    footer = page.locator("footer").inner_text()
    assert not footer.strip().endswith("·"), f"a separator is left after the last footer link: {footer!r}"
    chat.shot("23-settings-closed")

    page.get_by_text("Settings", exact=True).click()
    expect(page.locator("#sources-to-use input[type=range]")).to_be_visible()
    note = page.locator("#answer-mode-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Answer mode: Extractive: quotes the articles. LLM answers are off")
    # No disabled control stands for the one mode there is.
    expect(page.locator("#answer-mode")).to_be_hidden()
    expect(page.locator("input[type=radio]")).to_have_count(0)
    chat.shot("24-settings-open")

    turn = chat.ask(SEED_QUESTION)  # the hidden mode still reaches the event
    mode = turn.locator(".footnotes .mode")
    expect(mode).to_have_text("Extractive answer: sentences quoted from the articles")
    assert mode.evaluate("(node) => getComputedStyle(node).textTransform") == "none"
    expect(page.locator("#clear-button")).to_be_visible()  # clearing is not tucked away in Settings


# -- example questions from what is indexed -------------------------------------------------


@pytest.fixture(scope="module")
def other_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An index of four articles, none of them the seed."""
    root = tmp_path_factory.mktemp("examples")
    articles = root / "articles"
    articles.mkdir()
    for name, (title, body) in OTHER_ARTICLES.items():
        (articles / name).write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    settings = make_settings(root)
    QAService(settings).ingest([articles])
    return settings.index.dir, settings.index.upload_dir


def test_example_questions_come_from_the_newest_titles_and_follow_an_upload(
        browser: Browser, other_index: tuple[Path, Path]) -> None:
    index_dir, upload_dir = other_index
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(index_dir, upload_dir, env=env) as url, new_page(browser, LAPTOP) as page:
        chat = Chat(page, url)
        examples = page.locator("#examples button.example-question")
        expect(examples).to_have_count(3)
        labels = [label.strip() for label in examples.all_text_contents()]
        # Committed in one batch, the four tie as the newest: then by file name, as the library lists them.
        by_file = [OTHER_ARTICLES[name][0] for name in sorted(OTHER_ARTICLES)]
        assert labels == [f"What does “{title}” report?" for title in by_file[:3]], labels
        assert not any("Aegis" in label or "anti-ballistic" in label for label in labels)
        expect(page.locator("#examples-empty")).to_be_hidden()

        examples.first.click()
        turn = chat.turns.first
        expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
        expect(turn.locator(".msg.user")).to_have_text(labels[0])
        expect(turn.locator(".source-card").first).to_contain_text(labels[0].split("“")[1].split("”")[0])

        page.get_by_role("tab", name="Library").click()
        page.locator("#upload-files input[type=file]").set_input_files(
            [{"name": UPLOADED_FILE, "mimeType": "text/plain", "buffer": UPLOADED_TEXT.encode()}])
        expect(page.locator("#library-status li.ok")).to_contain_text(UPLOADED_FILE, timeout=ANSWER_TIMEOUT_MS)
        page.get_by_role("tab", name="Chat").click()
        # The upload is the newest article: its question comes first, without reloading the page.
        expect(examples.first).to_have_text(f"What does “{UPLOADED_TITLE}” report?")
        expect(examples).to_have_count(3)
        chat.shot("25-examples-from-the-index")
        assert chat.errors == []


def test_an_empty_index_offers_no_examples_but_says_where_they_come_from(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    chat = ui.ChatUI(QAService(settings), settings)

    *buttons, note = chat.examples()

    assert [button["visible"] for button in buttons] == [False] * ui.EXAMPLE_COUNT
    assert note["visible"] is True
    assert "once articles are indexed" in ui.EXAMPLES_EMPTY


def test_example_questions_are_the_titles_cut_at_a_word() -> None:
    assert ui.example_question("Ad sales boost Time Warner profit") == "What does “Ad sales boost Time Warner profit” report?"
    long = ui.example_question(SEED_TITLE)
    assert long == "What does “Aegis Missile Defense System: The US Missile Shield Deployment in Japan…” report?"
    assert ui.example_question("   ") == ""


# -- the server's record of each answer, which a rating stores -------------------------------


def rate(chat: ui.ChatUI, entries: list, turn: object, rating: object) -> tuple:
    return chat.rate(entries, SimpleNamespace(_data={"turn": turn, "rating": rating}))


def given(question: str = SEED_QUESTION) -> ui.GivenAnswer:
    return ui.GivenAnswer(question=question, earlier_questions=(), answer="Four hundred. [1]", abstained=False,
                          mode="extractive", citations=())


def test_a_rating_stores_the_answer_the_server_gave_not_what_the_entry_says(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    chat = ui.ChatUI(QAService(settings), settings)
    answer_id = chat.given_answers.add(given())
    # Entries as a client might have made them: a real id with other text, and an id never issued.
    doctored = ui.ChatEntry(question="FORGED?", state="done", answer="FORGED ANSWER", answer_id=answer_id)
    invented = ui.ChatEntry(question="FORGED?", state="done", answer="FORGED ANSWER", answer_id="made-up-id")

    _, after = rate(chat, [invented, doctored], 0, "up")
    assert "too old to rate" in after[0].rating_note and after[0].rating == ""
    assert not chat.feedback.path.exists()

    rate(chat, [invented, doctored], 1, "up")
    [stored] = records(chat.feedback.path)
    assert (stored["question"], stored["answer"]) == (SEED_QUESTION, "Four hundred. [1]")


def test_an_answer_rated_back_and_forth_stores_a_bounded_number_of_ratings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    chat = ui.ChatUI(QAService(settings), settings)
    entries = [ui.ChatEntry(question=SEED_QUESTION, state="done", answer="x", answer_id=chat.given_answers.add(given()))]

    for click in range(ui.MAX_RATINGS_PER_ANSWER + 5):
        _, updated = rate(chat, entries, 0, "up" if click % 2 == 0 else "down")
        entries = updated if isinstance(updated, list) else entries  # the rating it has already: a skip

    assert len(records(chat.feedback.path)) == ui.MAX_RATINGS_PER_ANSWER
    assert "rated too many times" in entries[0].rating_note


def test_the_answers_kept_for_rating_are_bounded_oldest_first() -> None:
    kept = ui.GivenAnswers(size=3)
    ids = [kept.add(given(f"question {n}?")) for n in range(5)]

    assert [kept.get(answer_id) for answer_id in ids[:2]] == [None, None]
    assert [kept.get(answer_id).question for answer_id in ids[2:]] == ["question 2?", "question 3?", "question 4?"]
    assert kept.get(None) is None and kept.get(["x"]) is None
    assert len(set(ids)) == 5 and all(len(answer_id) >= 16 for answer_id in ids)
