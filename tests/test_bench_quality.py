"""bench/quality.py end to end on a small slice: every pipeline's row, metrics in range, a PNG."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

if str(REPO) not in sys.path:  # bench/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(REPO))
from bench import quality  # noqa: E402

SQUAD = SHARED_DATA / "squad2-500"
BBC = SHARED_DATA / "bbc"
DEV = REPO / "tests" / "data" / "bbc_dev.jsonl"

pytestmark = pytest.mark.skipif(not (SQUAD.is_dir() and BBC.is_dir()), reason="../shared/data is not here")


def test_quality_bench_on_a_slice(tmp_path: Path, capsys) -> None:
    out, plot = tmp_path / "out", tmp_path / "quality.png"
    result = quality.main(
        ["--index-dir", str(tmp_path / "index"), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
         "--plot", str(plot), "--squad", str(SQUAD), "--bbc", str(BBC), "--dev", str(DEV), "--limit", "4"],
        environ={},
    )

    markdown = (out / "quality.md").read_text(encoding="utf-8")
    assert markdown == result["markdown"]
    assert "## squad2-500" in capsys.readouterr().out
    for name in ("squad2-500", "bbc-dev test", "bbc-dev all"):
        section = markdown.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}
        for _, label in quality.PIPELINES:
            assert label in rows, f"{label!r} missing from the {name} table"
            n, *values = re.findall(r"\d+(?:\.\d+)?", rows[label].split(" | ", 1)[1])
            assert int(n) > 0
            assert len(values) == len(quality.KS) + 1
            assert all(0.0 <= float(v) <= 1.0 for v in values)
        assert rows[quality.LABELS["ours"]]

    # Hits need the gold paragraph among the corpus: on this easy slice every pipeline finds some.
    squad = result["metrics"]["squad2-500"]
    assert squad["bm25"]["hit@10"] > 0 and squad["ours"]["hit@10"] > 0
    # The dev set has follow-ups: the "+ last user turn" rows are there.
    assert "bm25+turn" in result["metrics"]["bbc-dev all"]
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert (out / "quality-questions.jsonl").stat().st_size > 0
    assert "## Time" in markdown
