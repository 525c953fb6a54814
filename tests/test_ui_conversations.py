"""Conversations kept in the browser (issue 15): restored after a reload and after a server
restart, a list of earlier ones to switch to and delete, and the stored copy treated as the
client-controlled data it is. Also the phone's source sheet and its touch targets.

The Python side is tested over real services; the page in real headless Chromium against
``qa serve`` at laptop and phone sizes; the restore event also the way a browser calls it
(``queue/join`` + ``queue/data``, ``GradioSession``). Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

import ui
from _browser import ANSWER_TIMEOUT_MS, LAPTOP, PHONE, ChatPage, browser, screenshot_path  # noqa: F401  (browser: a fixture)
from _live import REPO, GradioSession, free_port, port_in, qa_server, wait_until_up
from conftest import SEED_FILE, SEEDS, index_seed_with, make_settings
from qa import QAService
from qa.cli import SHUTDOWN_GRACE_S

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_ANSWER_PHRASE = "four hundred anti-ballistic missiles will encompass Russia"
SEED_TITLE = "Aegis Missile Defense System"
FOLLOW_UP = "Where have they already been placed?"
FOLLOW_UP_PHRASE = "California and Alaska"
OTHER_QUESTION = "Who condemned the deployment of THAAD by South Korea?"
ORCHARD_FILE = "brelford-orchard.txt"
ORCHARD_ARTICLE = ("Brelford Orchard Harvest\n\nThe Brelford orchard harvest grew by eighteen percent this autumn, "
                   "the cooperative said.\n\nPickers in Brelford worked late into October to bring the apples in.\n")
ORCHARD_QUESTION = "How much did the Brelford orchard harvest grow?"
ORCHARD_PHRASE = "grew by eighteen percent"

PAYLOAD_SCRIPT = "<script>window.__xss='script'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"window.__xss='img'\">"
PAYLOAD_LINK = "[click](javascript:window.__xss='link')"
HOSTILE = f"{PAYLOAD_SCRIPT} {PAYLOAD_IMG} {PAYLOAD_LINK} \" onmouseover=\"window.__xss='attr'"
UNKNOWN_ARTICLE = "ffffffffffffffff"
CONVERSATION_ID = "0123456789abcdef"
OTHER_ID = "fedcba9876543210"


# -- stored values, as a browser (or a hostile client) could send them ---------------------------


def store(*conversations: dict, current: str = CONVERSATION_ID) -> dict:
    return {"version": 1, "current": current, "conversations": list(conversations)}


def conversation(ident: str, *turns: dict) -> dict:
    return {"id": ident, "turns": list(turns)}


def turn(question: str, answer: str, citations: list | None = None, **extra) -> dict:
    return {"question": question, "answer": answer, "abstained": False, "mode": "extractive",
            "searched_for": question, "notice": "", "citations": citations or [], "related": [],
            "unsupported": [], "answer_id": "", "rating": "", **extra}


def seed_citation(service: QAService, n: int = 1, paragraph: int = 6) -> dict:
    record = next(r for r in service.snapshot().records.values() if r.doc == SEED_FILE.name)
    return {"n": n, "article": record.article_id, "paragraph": paragraph, "digest": "", "quotes": []}


def seed_article_id(index_dir: Path) -> str:
    settings = make_settings(index_dir.parent)
    return next(r.article_id for r in QAService(settings).snapshot().records.values() if r.doc == SEED_FILE.name)


def hostile_store(seed_id: str) -> dict:
    """A store no page of ours wrote: markup in every text field, a title of its own, and
    citations to a path, to an unknown article and to a paragraph the seed does not have."""
    answer = f"{HOSTILE} The seed says {SEED_ANSWER_PHRASE}. [1] A path. [2] Unknown. [3] Too far. [4]"
    citations = [
        {"n": 1, "article": seed_id, "paragraph": 6, "digest": "", "quotes": [[0, 10**6]]},
        {"n": 2, "article": "../../etc/passwd", "paragraph": 1, "digest": "", "quotes": []},
        {"n": 3, "article": UNKNOWN_ARTICLE, "paragraph": 1, "digest": "", "quotes": []},
        {"n": 4, "article": seed_id, "paragraph": 999, "digest": "", "quotes": []},
    ]
    first = turn(f"{HOSTILE} {SEED_QUESTION}", answer, citations, notice=HOSTILE, searched_for=HOSTILE,
                 title=f"<b>forged title</b>{PAYLOAD_IMG}", html=f"<div>{PAYLOAD_SCRIPT}</div>")
    return store(conversation(CONVERSATION_ID, first),
                 conversation(OTHER_ID, turn(f"{PAYLOAD_IMG} earlier question", "An earlier answer.")))


# -- the Python side, over real services -----------------------------------------------------------


def test_a_conversation_round_trips_through_the_browser_store_with_its_sources_read_again(
        seeded_service: QAService) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    *_, (_, first, _) = chat.respond(SEED_QUESTION, [], 5, "extractive")
    *_, (_, entries, _) = chat.respond(FOLLOW_UP, first, 5, "extractive")

    value, listing = memory.remember(entries, None)
    # What the browser keeps is JSON: plain data, no markup, no paragraph text.
    kept = json.loads(json.dumps(value))
    html, restored, restored_listing, _ = memory.restore(kept)[:4]

    assert [(e.question, e.answer, e.state) for e in restored] == [(e.question, e.answer, e.state) for e in entries]
    assert [e.citations for e in restored] == [e.citations for e in entries]  # paragraph, context and marks
    assert ui.history_of(restored) == ui.history_of(entries)
    assert html == ui.render_conversation(entries)
    assert listing == restored_listing and "2 questions" in listing and SEED_QUESTION in listing
    stored_text = json.dumps(kept)
    assert "<" not in stored_text and FOLLOW_UP_PHRASE not in stored_text.split('"answer"')[0]
    paragraph_six = entries[0].citations[0].context[-1][1]
    assert paragraph_six not in stored_text  # only the answer quotes it; the paragraph is re-read

    # The next follow-up reads the restored turns: "they" is resolved against the first question.
    *_, (_, after, _) = chat.respond("And which system does Japan acquire?", restored, 5, "extractive")
    assert "following:" in after[-1].standalone_question


class UnreadableIndex:
    """A service whose index fails in a way no QAError names."""

    def snapshot(self) -> None:
        raise OSError("disk gone")


def test_the_question_box_opens_only_with_the_restore_even_if_it_fails(seeded_service: QAService) -> None:
    """The box and Ask start closed (an answer given before the restore landed would be wiped
    from the screen by it) and the restore opens them, also when it cannot read the index."""
    blocks = ui.build_ui(seeded_service, seeded_service.settings)
    config = blocks.get_config_file()
    closed = [c["props"].get("interactive") for c in config["components"]
              if c["props"].get("elem_id") in ("question-box", "ask-button")]
    assert closed == [False, False]
    kept = store(conversation(CONVERSATION_ID, turn(SEED_QUESTION, "Four hundred [1].", [seed_citation(seeded_service)])))
    for service in (seeded_service, UnreadableIndex()):
        *restored, box, ask = ui.ConversationMemory(service, seeded_service.settings).restore(kept)
        assert box == ask == {"__type__": "update", "interactive": True}
    assert restored[1] == []  # the failed restore shows an empty chat, and says so in the log only


def test_forged_markup_in_a_stored_conversation_stays_text(seeded_service: QAService) -> None:
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    seed_id = seed_citation(seeded_service)["article"]

    html, entries, listing, cleaned = memory.restore(hostile_store(seed_id))[:4]

    for page in (html, listing):
        for raw in ("<script", "<img", "<b>", 'href="javascript', '" onmouseover="'):
            assert raw not in page, raw
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html
    assert "forged title" not in listing and "forged title" not in json.dumps(cleaned)  # titled by the question
    assert "&lt;img src=x onerror=" in listing
    assert set(cleaned["conversations"][0]["turns"][0]) == set(ui.StoredTurn("q", "a").value())


def test_forged_citations_read_nothing_from_disk_and_show_as_no_longer_indexed(
        seeded_service: QAService, tmp_path: Path) -> None:
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    seed_id = seed_citation(seeded_service)["article"]
    seeded_service.snapshot()  # loaded before the restore: what the restore itself opens is what counts

    with files_opened() as opened:
        html, entries, _, cleaned = memory.restore(hostile_store(seed_id))[:4]

    assert not [path for path in opened if "passwd" in path or not path.startswith(str(tmp_path))], opened
    views = {view.label: view for view in entries[0].citations}
    assert sorted(views) == ["[1]", "[3]", "[4]"]  # "../../etc/passwd" is no article id: dropped
    assert views["[1]"].doc == SEED_FILE.name and views["[1]"].paragraph == 6 and not views["[1]"].missing
    # Stored offsets without the paragraph's digest are not used; the forged sentence is not in it.
    assert views["[1]"].quotes == ()
    assert views["[3]"].missing and views["[4]"].missing
    assert html.count(ui.NO_LONGER_INDEXED) >= 4  # a card and a panel detail for each
    assert "root:" not in html
    assert [c["article"] for c in cleaned["conversations"][0]["turns"][0]["citations"]] == [
        seed_id, UNKNOWN_ARTICLE, seed_id]


def test_an_article_deleted_since_the_answer_shows_as_no_longer_indexed(tmp_path: Path) -> None:
    index_seed_with(tmp_path, ORCHARD_FILE, ORCHARD_ARTICLE)
    service = QAService(make_settings(tmp_path))
    chat = ui.ChatUI(service, service.settings)
    memory = ui.ConversationMemory(service, service.settings)
    *_, (_, first, _) = chat.respond(ORCHARD_QUESTION, [], 5, "extractive")
    *_, (_, entries, _) = chat.respond(SEED_QUESTION, first, 5, "extractive")
    value, _ = memory.remember(entries, None)
    orchard = next(r for r in service.snapshot().records.values() if r.doc == ORCHARD_FILE)

    service.delete_document(orchard.article_id)
    html, restored, _, _ = memory.restore(json.loads(json.dumps(value)))[:4]

    gone, kept = restored[0].citations[0], restored[1].citations[0]
    assert gone.missing and gone.title == ui.NO_LONGER_INDEXED
    assert ORCHARD_PHRASE in restored[0].answer  # the answer itself is still there to read
    assert not kept.missing and kept.doc == SEED_FILE.name
    assert 'class="source-card is-missing"' in html and "has been deleted from the index" in html
    assert ui.history_of(restored)[0].content == ORCHARD_QUESTION


MALFORMED = [
    None, "", "null", 42, 3.5, True, [], ["version", 1], {}, {"version": 2, "conversations": []},
    {"version": "1", "current": CONVERSATION_ID, "conversations": []},
    {"version": 1, "current": 7, "conversations": "not a list"},
    {"version": 1, "current": "../../x", "conversations": [None, 1, "x", [], {"id": CONVERSATION_ID}]},
    store({"id": "not-an-id", "turns": [turn("q?", "a")]}),
    store({"id": CONVERSATION_ID, "turns": "x"}),
    store(conversation(CONVERSATION_ID, {"question": 5, "answer": "a"}, {"question": "q?", "answer": None},
                       {"question": "q?", "answer": "a", "abstained": "yes"},
                       {"question": "   ", "answer": "a"},
                       {"question": "q?", "answer": "a", "citations": "[1]"},
                       {"question": "q?", "answer": "a", "citations": [{"n": 1}] * 25},
                       {"question": "x" * 5_000, "answer": "a"},
                       {"question": "q?", "answer": "a" * 20_000})),
]


@pytest.mark.parametrize("value", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_store_is_ignored_not_a_failure(seeded_service: QAService, value: object) -> None:
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)

    html, entries, listing, cleaned = memory.restore(value)[:4]

    assert entries == [] and "empty-hint" in html and "conversations-empty" in listing
    assert cleaned["conversations"] == [] and ui._CONVERSATION_ID.fullmatch(cleaned["current"])
    stored, _ = memory.remember([], value)
    assert stored is not None  # no exception, whatever it was


def test_bad_fields_drop_only_what_is_bad(seeded_service: QAService) -> None:
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    good = turn(SEED_QUESTION, f"The answer. [1]", [seed_citation(seeded_service)])
    odd = turn(FOLLOW_UP, "Odd fields. [1] [2]", [
        {"n": True, "article": UNKNOWN_ARTICLE, "paragraph": 1},  # a bool is not a number
        {"n": 2, "article": UNKNOWN_ARTICLE, "paragraph": 1.5},
        {"n": 3, "article": ["x"], "paragraph": 1},
    ], mode="<b>mode</b>", rating="sideways", answer_id="../x", unsupported=[[0, 5], [3, 10**9], "x", [1]])
    broken = {"question": "Broken?", "answer": 12}

    _, entries, _, _ = memory.restore(store(conversation(CONVERSATION_ID, good, broken, odd)))[:4]

    assert [e.question for e in entries] == [SEED_QUESTION, FOLLOW_UP]
    assert entries[0].citations[0].paragraph == 6 and not entries[0].citations[0].missing
    assert entries[1].citations == () and entries[1].mode == "" and entries[1].rating == ""
    assert entries[1].answer_id == "" and entries[1].unsupported == ((0, 5),)


def test_stored_sizes_are_bounded(seeded_service: QAService) -> None:
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    many = [conversation(f"{i:016x}", *(turn(f"Question {i}.{j}?", "An answer. " * 40) for j in range(60)))
            for i in range(25)]

    _, entries, listing, cleaned = memory.restore(store(*many, current=f"{0:016x}"))[:4]

    assert len(cleaned["conversations"]) <= ui.MAX_CONVERSATIONS
    assert all(len(c["turns"]) <= ui.MAX_STORED_TURNS for c in cleaned["conversations"])
    assert len(json.dumps(cleaned, ensure_ascii=False)) <= ui.MAX_STORED_CHARS + 200
    assert len(entries) == ui.MAX_STORED_TURNS and entries[-1].question == "Question 0.59?"  # the newest kept
    assert listing.count('class="conversation-item') == len(cleaned["conversations"])

    long_answer = turn(SEED_QUESTION, "x" * (ui.MAX_STORED_ANSWER_CHARS + 1))
    _, none_kept, _, _ = memory.restore(store(conversation(CONVERSATION_ID, long_answer)))[:4]
    assert none_kept == []


def test_new_switch_and_delete_keep_the_other_conversations(seeded_service: QAService) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)
    memory = ui.ConversationMemory(seeded_service, seeded_service.settings)
    *_, (_, first, _) = chat.respond(SEED_QUESTION, [], 5, "extractive")
    value, _ = memory.remember(first, None)
    value, _ = memory.start_new(value)  # Clear conversation
    *_, (_, second, _) = chat.respond(OTHER_QUESTION, [], 5, "extractive")
    value, listing = memory.remember(second, value)
    assert [c["turns"][0]["question"] for c in value["conversations"]] == [OTHER_QUESTION, SEED_QUESTION]
    older = value["conversations"][1]["id"]

    html, entries, value, listing = memory.choose(value, event({"open": older}))
    assert [e.question for e in entries] == [SEED_QUESTION] and value["current"] == older
    # Opened again, not changed: nothing to store, and it keeps its place in the list.
    assert memory.remember(entries, value) == (ui.gr.skip(), ui.gr.skip())
    assert value["conversations"][1]["id"] == older

    _, _, value, listing = memory.choose(value, event({"delete": value["conversations"][0]["id"]}))
    assert [c["turns"][0]["question"] for c in value["conversations"]] == [SEED_QUESTION]
    html, entries, value, listing = memory.choose(value, event({"delete": older}))
    assert entries == [] and value["conversations"] == [] and value["current"] != older
    for forged in ({"open": "../../etc/passwd"}, {"delete": 5}, {"open": UNKNOWN_ARTICLE}, {}, {"x": 1}):
        assert all(part == ui.gr.skip() for part in memory.choose(value, event(forged)))


def event(data: dict) -> object:
    return type("Event", (), {"_data": data})()


class files_opened:
    """Every file the process opens meanwhile (an audit hook: also what C code opens)."""

    hooked = False
    recording: list[str] | None = None

    def __enter__(self) -> list[str]:
        if not files_opened.hooked:
            sys.addaudithook(_record_open)
            files_opened.hooked = True
        files_opened.recording = []
        return files_opened.recording

    def __exit__(self, *_: object) -> None:
        files_opened.recording = None


def _record_open(name: str, args: tuple) -> None:
    if name == "open" and files_opened.recording is not None and isinstance(args[0], (str, bytes, Path)):
        files_opened.recording.append(str(Path(str(args[0])).resolve()))


# -- a real server and a real Chromium ------------------------------------------------------------


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conversations")
    settings = make_settings(root)
    QAService(settings).ingest([SEEDS])
    return settings.index.dir


SERVER_ENV = {"QA_API_KEY": "", "QA_UI_PASSWORD": ""}


@pytest.fixture(scope="module")
def base_url(index_dir: Path) -> Iterator[str]:
    with qa_server(index_dir, env=SERVER_ENV, log=screenshot_path("conversations-server").with_suffix(".log")) as url:
        yield url


class ConversationPage(ChatPage):
    """The chat with its list of conversations, and what the browser stored of them."""

    @property
    def listed(self) -> Locator:
        return self.page.locator("#conversation-list .conversation-item")

    def stored(self) -> str | None:
        """The browser's stored conversations (encrypted by Gradio: only compared, never read)."""
        return self.page.evaluate(
            "() => { const key = Object.keys(localStorage).find((k) => k.startsWith('news-qa-conversations-'));"
            " return key ? localStorage.getItem(key) : null; }")

    def ask_and_store(self, question: str, questions_listed: int) -> Locator:
        """Ask, and wait until the browser has stored the answer (the list shows it)."""
        before = self.stored()
        answered = self.ask(question)
        current = self.page.locator("#conversation-list .conversation-item.is-current .conversation-meta")
        expect(current).to_contain_text(f"{questions_listed} question", timeout=ANSWER_TIMEOUT_MS)
        self.page.wait_for_function(
            "(before) => { const key = Object.keys(localStorage).find((k) => k.startsWith('news-qa-conversations-'));"
            " return key && localStorage.getItem(key) !== before; }", arg=before, timeout=ANSWER_TIMEOUT_MS)
        return answered

    def reload(self, turns: int) -> None:
        self.page.reload()
        expect(self.question_box).to_be_editable(timeout=30_000)
        expect(self.turns).to_have_count(turns, timeout=ANSWER_TIMEOUT_MS)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=screenshot_path(name))


SIZES = {"laptop": {"viewport": LAPTOP}, "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True}}


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def chat(browser: Browser, base_url: str, size: str) -> Iterator[ConversationPage]:
    context = browser.new_context(**SIZES[size])
    try:
        yield ConversationPage(context.new_page(), base_url)
    finally:
        context.close()


def click(locator: Locator, size: str) -> None:
    locator.tap() if size == "phone" else locator.click()


def open_citation(chat: ConversationPage, answer: Locator, size: str, n: int = 1) -> None:
    click(answer.locator(f'button.cite[data-citation="{n}"]'), size)


def close_sources(chat: ConversationPage, size: str) -> None:
    click(chat.page.locator("#sources-panel .sources-close"), size)
    expect(chat.page.locator("#sources-panel .sources-close")).to_be_hidden()


def expect_the_seed_citation_open(chat: ConversationPage, answer: Locator, size: str, shot: str) -> None:
    """The answer's [1] opens the seed's ¶6 with the quoted sentence marked; the panel closes."""
    open_citation(chat, answer, size)
    cited = chat.sources.locator(".para.is-cited")
    expect(cited).to_have_attribute("data-paragraph", "6")
    expect(cited.locator("mark")).to_contain_text(SEED_ANSWER_PHRASE)
    expect(chat.sources.locator(".detail-title")).to_contain_text(SEED_TITLE)
    expect(cited).to_be_in_viewport()
    chat.shot(shot)
    close_sources(chat, size)


def expect_a_follow_up_read_with_the_seed_question(chat: ConversationPage, listed: int, shot: str) -> Locator:
    follow_up = chat.ask_and_store(FOLLOW_UP, listed)
    expect(follow_up.locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    expect(follow_up.locator(".bubble.answer")).to_contain_text(FOLLOW_UP_PHRASE)
    chat.shot(shot)
    return follow_up


def test_a_conversation_is_restored_after_a_reload_and_the_follow_up_uses_it(
        chat: ConversationPage, size: str) -> None:
    first = chat.ask_and_store(SEED_QUESTION, 1)
    expect(first.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)
    expect(chat.listed).to_have_count(1)
    expect(chat.listed.first).to_contain_text(SEED_QUESTION)
    chat.shot(f"conv-{size}-01-before-reload")

    chat.reload(turns=1)

    restored = chat.turns.first
    expect(restored.locator(".msg.user")).to_have_text(SEED_QUESTION)
    expect(restored.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)
    expect(chat.listed).to_have_count(1)
    expect_the_seed_citation_open(chat, restored, size, f"conv-{size}-02-restored-citation-open")

    expect_a_follow_up_read_with_the_seed_question(chat, 2, f"conv-{size}-03-follow-up-after-reload")
    chat.reload(turns=2)
    expect(chat.turns.nth(1).locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    assert chat.errors == []


def test_switching_between_two_conversations_from_the_list(chat: ConversationPage, size: str) -> None:
    chat.ask_and_store(SEED_QUESTION, 1)
    click(chat.page.locator("#clear-button"), size)
    expect(chat.turns).to_have_count(0)
    expect(chat.listed).to_have_count(1)  # cleared from the screen, still listed
    chat.ask_and_store(OTHER_QUESTION, 1)
    expect(chat.listed).to_have_count(2)
    expect(chat.listed.nth(0)).to_contain_text(OTHER_QUESTION)  # the latest first
    expect(chat.listed.nth(0)).to_have_class("conversation-item is-current")
    expect(chat.listed.nth(1)).to_contain_text(SEED_QUESTION)
    chat.shot(f"conv-{size}-04-two-conversations")

    click(chat.listed.nth(1).locator(".conversation-open"), size)

    expect(chat.turns).to_have_count(1)
    expect(chat.turns.first.locator(".msg.user")).to_have_text(SEED_QUESTION)
    expect(chat.listed.nth(1)).to_have_class("conversation-item is-current")
    expect(chat.listed.nth(1).locator(".conversation-open")).to_have_attribute("aria-current", "true")
    chat.shot(f"conv-{size}-05-switched-to-the-first")
    # Its follow-up is read with its own first question, not with the other conversation's.
    follow_up = chat.ask_and_store(FOLLOW_UP, 2)
    expect(follow_up.locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    expect(chat.listed.nth(0)).to_contain_text(SEED_QUESTION)  # changed: now the latest

    click(chat.listed.nth(1).locator(".conversation-open"), size)
    expect(chat.turns).to_have_count(1)
    expect(chat.turns.first.locator(".msg.user")).to_have_text(OTHER_QUESTION)

    # Deleting the other one leaves the one on screen alone; deleting that one empties the chat.
    click(chat.listed.nth(0).locator(".conversation-delete"), size)
    expect(chat.listed).to_have_count(1)
    expect(chat.turns.first.locator(".msg.user")).to_have_text(OTHER_QUESTION)
    chat.shot(f"conv-{size}-06-one-deleted")
    chat.reload(turns=1)
    expect(chat.listed).to_have_count(1)
    click(chat.listed.nth(0).locator(".conversation-delete"), size)
    expect(chat.turns).to_have_count(0)
    expect(chat.page.locator("#conversation-list .conversations-empty")).to_be_visible()
    chat.page.reload()
    expect(chat.question_box).to_be_editable(timeout=30_000)
    expect(chat.page.locator("#conversation-list .conversations-empty")).to_be_visible()
    expect(chat.turns).to_have_count(0)
    assert chat.errors == [] and chat.dialogs == []


# At the laptop size only: a restart is the server's side, and the phone's restore is the reload test's (about
# 30 s of the suite's 15 minutes saved).
@pytest.mark.parametrize("size", ["laptop"])
def test_a_conversation_survives_a_server_restart_even_with_an_article_deleted(
        browser: Browser, tmp_path: Path, size: str) -> None:
    index_seed_with(tmp_path, ORCHARD_FILE, ORCHARD_ARTICLE)
    settings = make_settings(tmp_path)
    # localStorage belongs to an origin: the second server must listen where the first did.
    port = port_in(7900, 7949)
    context = browser.new_context(**SIZES[size])
    try:
        with qa_server(settings.index.dir, settings.index.upload_dir, env=SERVER_ENV, port=port,
                       log=screenshot_path(f"conversations-restart-{size}-1").with_suffix(".log")) as url:
            chat = ConversationPage(context.new_page(), url)
            chat.ask_and_store(ORCHARD_QUESTION, 1)
            chat.ask_and_store(SEED_QUESTION, 2)
            chat.shot(f"conv-{size}-07-before-restart")
        # While the server is down, the orchard article leaves the index.
        service = QAService(settings)
        orchard = next(r for r in service.snapshot().records.values() if r.doc == ORCHARD_FILE)
        service.delete_document(orchard.article_id)

        with qa_server(settings.index.dir, settings.index.upload_dir, env=SERVER_ENV, port=port,
                       log=screenshot_path(f"conversations-restart-{size}-2").with_suffix(".log")) as again:
            assert again == url
            chat.reload(turns=2)

            gone, kept = chat.turns.nth(0), chat.turns.nth(1)
            expect(gone.locator(".bubble.answer")).to_contain_text(ORCHARD_PHRASE)
            expect(gone.locator(".source-card")).to_contain_text(ui.NO_LONGER_INDEXED)
            expect(kept.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)
            open_citation(chat, gone, size)
            expect(chat.sources.locator(".detail-title")).to_contain_text(ui.NO_LONGER_INDEXED)
            expect(chat.sources.locator(".detail-missing")).to_be_visible()
            chat.shot(f"conv-{size}-08-after-restart-deleted-source")
            close_sources(chat, size)
            expect_the_seed_citation_open(chat, kept, size, f"conv-{size}-09-after-restart-citation-open")

            expect_a_follow_up_read_with_the_seed_question(chat, 3, f"conv-{size}-10-follow-up-after-restart")
            assert chat.errors == []
    finally:
        context.close()


def test_a_stored_value_with_markup_and_forged_citations_is_shown_as_text(
        browser: Browser, base_url: str, index_dir: Path) -> None:
    """The store as the page reads it is replaced on its way to the server, as a client with its
    own localStorage (or its own page) could: what comes back is rendered by the server."""
    session = GradioSession(base_url)
    restore_event = session.load_index("browserstate")
    session.close()
    forged = hostile_store(seed_article_id(index_dir))

    def forge(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        if body.get("fn_index") == restore_event:
            body["data"] = [forged]
        route.continue_(post_data=json.dumps(body))

    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.route("**/gradio_api/queue/join*", forge)  # the page adds a "?"
        chat = ConversationPage(page, base_url)
        expect(chat.turns).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)

        expect(chat.turns.first.locator(".msg.user")).to_have_text(f"{HOSTILE} {SEED_QUESTION}")
        expect(chat.turns.first.locator(".notice")).to_have_text(HOSTILE)
        expect(chat.listed).to_have_count(2)
        expect(chat.listed.nth(1).locator(".conversation-title")).to_have_text(f"{PAYLOAD_IMG} earlier question")
        expect(chat.turns.first.locator(".source-card.is-missing")).to_have_count(2)
        chat.turns.first.locator('button.cite[data-citation="1"]').click()
        expect(chat.sources.locator(".para.is-cited")).to_have_attribute("data-paragraph", "6")
        expect(chat.turns.first.locator('button.cite[data-citation="2"]')).to_have_count(0)  # the path: dropped
        chat.turns.first.locator('button.cite[data-citation="3"]').click()
        expect(chat.sources.locator(".detail-missing")).to_be_visible()
        chat.shot("conv-11-forged-store-shown-as-text")

        assert page.evaluate("window.__xss") is None
        assert chat.dialogs == [] and chat.errors == []
        expect(page.locator("img[src='x']")).to_have_count(0)
        expect(page.locator("a[href^='javascript']")).to_have_count(0)
        expect(page.locator("#conversation script, #conversation-list script, #conversation-list b")).to_have_count(0)
        expect(page.locator("#conversation")).not_to_contain_text("root:")
    finally:
        context.close()


def test_a_store_that_is_not_json_is_ignored_by_the_page(browser: Browser, base_url: str) -> None:
    context = browser.new_context(viewport=LAPTOP)
    try:
        chat = ConversationPage(context.new_page(), base_url)
        chat.ask_and_store(SEED_QUESTION, 1)
        key = chat.page.evaluate("Object.keys(localStorage).find((k) => k.startsWith('news-qa-conversations-'))")
        for garbage in ("not json", "aGVsbG8=:d29ybGQ=", "{\"version\": 1}", ""):
            chat.page.evaluate("([key, value]) => localStorage.setItem(key, value)", [key, garbage])
            chat.reload(turns=0)
            expect(chat.page.locator("#conversation .empty-hint")).to_be_visible()
        # The next answer is stored over the garbage.
        chat.ask_and_store(SEED_QUESTION, 1)
        chat.reload(turns=1)
        assert chat.errors == []
    finally:
        context.close()


def test_the_restore_event_called_as_the_browser_calls_it(base_url: str, index_dir: Path) -> None:
    session = GradioSession(base_url)
    try:
        restore = session.load_index("browserstate")
        remember = session.event_index("state", "change")
        ask = session.fn_index("question-box", "submit")
        seed_id = seed_article_id(index_dir)
        answer = f"The ministry said {SEED_ANSWER_PHRASE}, creating an anti-missile shield. [1]"
        kept = store(conversation(CONVERSATION_ID, turn(SEED_QUESTION, answer, [
            {"n": 1, "article": seed_id, "paragraph": 6, "digest": "", "quotes": []}])))

        html, _, listing, cleaned, *_opened = session.call(restore, [kept])

        assert SEED_ANSWER_PHRASE in html and 'data-citation="1"' in html and "Paragraph 6 of 6" in html
        assert SEED_QUESTION in listing and cleaned["current"] == CONVERSATION_ID
        # The follow-up in the same session is read with the restored turn.
        followed, *_ = session.call(ask, [FOLLOW_UP, None, 5, "extractive"])
        assert f"following: {SEED_QUESTION}" in followed and FOLLOW_UP_PHRASE in followed
        # What the page then stores: both turns, in the same conversation.
        stored, listing = session.call(remember, [None, cleaned])
        assert [t["question"] for t in stored["conversations"][0]["turns"]] == [SEED_QUESTION, FOLLOW_UP]
        assert stored["conversations"][0]["id"] == CONVERSATION_ID and "2 questions" in listing

        for garbage in (None, "x", 7, [1, 2], {"version": 1, "conversations": [{"id": 1}]}, hostile_store("zz")):
            html, _, listing, cleaned, *_opened = session.call(restore, [garbage])
            assert "<script" not in html and "<img" not in html and "<img" not in listing
    finally:
        session.close()


# -- the phone: a source opens in a sheet over the chat, and Back returns to the answer ---------

WINDOW_PLACE = """() => {
  const answers = document.querySelector('#conversation');
  let box = answers.parentElement;
  while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
  return {y: window.scrollY, chat: box ? box.scrollTop : 0};
}"""

# Whether every point of the element's box (inset by a pixel) hits the element itself: its hit area.
HIT_AREA = """(node) => {
  const box = node.getBoundingClientRect();
  const points = [[box.left + box.width / 2, box.top + 1], [box.left + box.width / 2, box.bottom - 1],
                  [box.left + 1, box.top + box.height / 2], [box.right - 1, box.top + box.height / 2]];
  return points.every(([x, y]) => { const hit = document.elementFromPoint(x, y); return hit && hit.closest('.cite') === node; });
}"""


def test_phone_citation_opens_a_sheet_and_back_returns_to_the_answer(browser: Browser, base_url: str) -> None:
    context = browser.new_context(**SIZES["phone"])
    try:
        chat = ConversationPage(context.new_page(), base_url)
        first = chat.ask_and_store(SEED_QUESTION, 1)
        chat.ask_and_store(FOLLOW_UP, 2)
        citation = first.locator('button.cite[data-citation="1"]')
        citation.scroll_into_view_if_needed()
        expect(citation).to_be_in_viewport()
        before = chat.page.evaluate(WINDOW_PLACE)
        chat.shot("conv-phone-12-answer-before-the-sheet")

        box = citation.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, box
        assert citation.evaluate(HIT_AREA), "the whole 44 px box should take the tap"
        card = first.locator(".source-card").first.bounding_box()
        assert card["height"] >= 44, card
        for control in ("#conversation-list .conversation-open", "#conversation-list .conversation-delete"):
            assert chat.page.locator(control).first.bounding_box()["height"] >= 44, control

        citation.tap()

        sheet = chat.page.locator("#sources-panel .sources")
        expect(sheet).to_have_class("sources is-sheet")
        expect(sheet).to_have_attribute("role", "dialog")
        assert sheet.bounding_box() == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
        expect(chat.sources.locator(".detail-title")).to_contain_text(SEED_TITLE)
        expect(chat.sources.locator(".detail-title")).to_be_in_viewport()
        mark = chat.sources.locator(".para.is-cited mark")
        expect(mark).to_contain_text(SEED_ANSWER_PHRASE)
        expect(mark).to_be_in_viewport()
        back = chat.page.locator("#sources-panel .sources-close")
        expect(back).to_have_accessible_name("‹ Back to the answer")  # "Close ✕" is not shown on the sheet
        expect(back.locator(".close-narrow")).to_be_visible()
        expect(back).to_be_focused()
        assert back.bounding_box()["height"] >= 44
        # The answer is under the sheet: a tap there lands on the sheet.
        covered = citation.evaluate("(node) => { const b = node.getBoundingClientRect();"
                                    " return !!document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2)"
                                    ".closest('#sources-panel'); }")
        assert covered
        chat.shot("conv-phone-13-sheet-open")

        back.tap()

        expect(sheet).to_have_class("sources")
        expect(back).to_be_hidden()
        expect(chat.sources.locator(".para")).to_have_count(0)
        expect(first.locator(".bubble.answer")).to_be_in_viewport()
        expect(citation).to_be_in_viewport()
        assert chat.page.evaluate(WINDOW_PLACE) == before
        expect(citation).to_be_focused()
        chat.shot("conv-phone-14-back-at-the-answer")

        # Escape closes it too (a keyboard on a tablet); the page still scrolls normally after.
        citation.tap()
        expect(sheet).to_have_class("sources is-sheet")
        chat.page.keyboard.press("Escape")
        expect(sheet).to_have_class("sources")
        assert chat.page.evaluate(WINDOW_PLACE) == before
        assert chat.errors == []
    finally:
        context.close()


def test_laptop_citations_stay_compact_and_the_panel_beside_the_chat(browser: Browser, base_url: str) -> None:
    context = browser.new_context(viewport=LAPTOP)
    try:
        chat = ConversationPage(context.new_page(), base_url)
        answer = chat.ask_and_store(SEED_QUESTION, 1)
        citation = answer.locator('button.cite[data-citation="1"]')
        assert citation.bounding_box()["height"] < 30  # inline with the text, not a phone's target

        citation.click()

        panel = chat.page.locator("#sources-panel .sources")
        expect(chat.sources.locator(".para.is-cited")).to_have_attribute("data-paragraph", "6")
        expect(panel).to_have_class("sources")
        beside = panel.bounding_box()
        assert beside["x"] > chat.page.locator("#conversation").bounding_box()["x"] + 300
        expect(chat.page.locator("#sources-panel .sources-close")).to_have_accessible_name("Close ✕")
        expect(answer.locator(".bubble.answer")).to_be_in_viewport()
    finally:
        context.close()


def test_a_server_with_a_chat_tab_open_stops_when_told(browser: Browser, index_dir: Path) -> None:
    """A restart begins with a stop: an open tab holds connections that never end by themselves,
    and uvicorn would wait for them forever (seen: every stop with a tab open ran into a kill)."""
    port = free_port()
    environment = {**os.environ, "QA_INDEX_DIR": str(index_dir), "GRADIO_ANALYTICS_ENABLED": "False", **SERVER_ENV}
    process = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = browser.new_context(viewport=LAPTOP)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", process)
        chat = ConversationPage(context.new_page(), base)
        chat.ask_and_store(SEED_QUESTION, 1)

        process.send_signal(signal.SIGTERM)

        # uvicorn re-raises the signal it handled once it has shut down
        assert process.wait(timeout=SHUTDOWN_GRACE_S + 15) in (0, -signal.SIGTERM)
    finally:
        context.close()
        if process.poll() is None:
            process.kill()
            process.wait()
