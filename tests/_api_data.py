"""What the API tests share: a corpus with one known answer per question, and checks of the
error shape and of Server-Sent Events."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from conftest import SEEDS, make_settings
from qa import QAService

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_PARAGRAPH = 6
SEED_PHRASE = "four hundred anti-ballistic missiles"

# Twenty articles alike in all but the town and what it builds, so an answer that came
# from another request's question would cite the wrong town.
TOWNS = (
    ("Arlow", "footbridge"), ("Brenmoor", "public library"), ("Caddisford", "skate park"),
    ("Dunmere", "bus depot"), ("Eskridge", "swimming pool"), ("Fallowby", "clock tower"),
    ("Glenharrow", "fish market"), ("Hollinsby", "observatory"), ("Ivelton", "tram line"),
    ("Jarrowgate", "cricket pavilion"), ("Kestwick", "bandstand"), ("Lindenholt", "ferry terminal"),
    ("Marrowby", "greenhouse"), ("Northcrest", "fire station"), ("Oakhollow", "puppet theatre"),
    ("Pellbury", "cycle lane"), ("Quarndon", "museum annex"), ("Rushwick", "seed bank"),
    ("Stavenport", "sports hall"), ("Thistlebrook", "harbour wall"),
)
TOWN_PARAGRAPH = 2


def town_file(town: str) -> str:
    return f"{town.lower()}.txt"


def town_question(town: str) -> str:
    return f"What did councillors in {town} vote to build beside the river?"


def write_town_articles(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, (town, item) in enumerate(TOWNS, 1):
        (folder / town_file(town)).write_text(
            f"{town} Council Notes\n\n"
            f"The council of {town} met on Tuesday evening in the old town hall to review the annual budget.\n\n"
            f"Councillors in {town} voted to build a new {item} beside the river, at a cost of {number} million pounds.\n\n"
            f"Residents of {town} will be asked for their views at a public meeting next month.\n",
            encoding="utf-8",
        )
    return folder


def build_index(folder: Path, with_towns: bool = True) -> Path:
    """Index the seeds (and the towns) under ``folder``; returns the index folder."""
    settings = make_settings(folder)
    sources = [SEEDS] + ([write_town_articles(folder / "towns")] if with_towns else [])
    report = QAService(settings).ingest(sources)
    assert not report.skipped, report.skipped
    return Path(settings.index.dir)


def assert_error(response: httpx.Response, status: int, error_type: str | None = None) -> dict:
    """``response`` is an error of ``status`` in the API's one shape; returns its ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["message"].strip()
    assert "Traceback" not in response.text
    if error_type is not None:
        assert body["error"]["type"] == error_type, body
    return body["error"]


def server_sent_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each event in an ``text/event-stream`` body."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def ask_events(response: httpx.Response) -> tuple[list[str], dict, dict]:
    """The deltas, the citations event and the done event of a ``/v1/ask/stream`` answer,
    checking they come in that order."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = server_sent_events(response.text)
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"delta"}, names
    deltas = [json.loads(data)["text"] for _, data in events[:-2]]
    return deltas, json.loads(events[-2][1]), json.loads(events[-1][1])
