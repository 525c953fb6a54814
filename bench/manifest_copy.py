"""What reading the manifest copy costs a starting worker, against the layout before it (issue 16).

    .venv/bin/python -m bench.manifest_copy --index-dir /tmp/qa-scale/n1000000

A worker reads the records of every indexed article from the manifest copy as it starts (the
chat's header counts them). This reads the index's current copy the way the product does
(``qa._cache.read_cached``: records whose paragraphs are packed, frozen out of the cycle
collector) and, as the baseline, the same records in the layout before: a frozen dataclass per
record and per paragraph, unpickled with the collector paused and then left to it. Each in a
fresh process, three times, alternating: seconds to load, RSS after, and the first full
collection after the load (the pause a question would meet). The baseline file is written to a
temporary folder from the current copy.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import make_dataclass
from pathlib import Path

from bench.scale import rss_now_mb
from qa._cache import read_cached, write_cached
from qa._models import ArticleRecord, Paragraph
from qa._store import _MANIFEST_COPY_VERSION


# The layout before this release: a frozen dataclass per record and per paragraph, with the same
# fields (module-level names, so that pickle finds them).
BaselineParagraph = make_dataclass("BaselineParagraph", Paragraph._fields, frozen=True,
                                   namespace={"__module__": __name__})
BaselineRecord = make_dataclass("BaselineRecord", ArticleRecord._fields, frozen=True,
                                namespace={"__module__": __name__})


def _current_copy(index_dir: Path) -> Path:
    copies = sorted((index_dir / "manifest").glob("records-*.pkl"), key=lambda p: p.stat().st_mtime)
    if not copies:
        sys.exit(f"no manifest copy in {index_dir}: ask one question of the index first")
    return copies[-1]


def _write_baseline(copy: Path, target: Path) -> None:
    records = read_cached(copy, _MANIFEST_COPY_VERSION)
    if records is None:
        sys.exit(f"{copy} is not a copy of this release's format")
    baseline = {article_id: BaselineRecord(*record[:8], tuple(BaselineParagraph(*p) for p in record.paragraphs),
                                           record.ingested_at)
                for article_id, record in records.items()}
    write_cached(target, _MANIFEST_COPY_VERSION, baseline)


def measure(layout: str, path: Path) -> dict:
    """One load in this (fresh) process."""
    before = rss_now_mb()
    began = time.perf_counter()
    # The baseline is read as before this release: the collector paused, then left to it.
    records = read_cached(path, _MANIFEST_COPY_VERSION, long_lived=layout == "packed")
    load_s = time.perf_counter() - began
    began = time.perf_counter()
    gc.collect()
    return {"articles": len(records), "load_s": load_s, "rss_mb": rss_now_mb() - before,
            "collect_s": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--_measure", nargs=2, metavar=("LAYOUT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure[0], Path(args._measure[1]))))
        return
    if args.index_dir is None:
        parser.error("--index-dir is required")
    copy = _current_copy(args.index_dir)
    results: dict[str, list[dict]] = {"packed": [], "dataclasses": []}
    with tempfile.TemporaryDirectory(prefix="qa-manifest-copy-") as scratch:
        baseline = Path(scratch) / "records-baseline.pkl"
        _write_baseline(copy, baseline)
        for _ in range(args.runs):
            for layout, path in (("packed", copy), ("dataclasses", baseline)):
                done = subprocess.run([sys.executable, "-m", "bench.manifest_copy", "--_measure", layout, str(path)],
                                      check=True, capture_output=True, text=True)
                results[layout].append(json.loads(done.stdout.strip().splitlines()[-1]))
    articles = results["packed"][0]["articles"]
    print(f"manifest copy of {args.index_dir} ({articles:,} articles), median of {args.runs} fresh processes each")
    print("| layout | load (s) | RSS of the records (MB) | first full collection after (s) |")
    print("|---|---|---|---|")
    medians = {layout: {key: statistics.median(run[key] for run in runs) for key in ("load_s", "rss_mb", "collect_s")}
               for layout, runs in results.items()}
    for layout, figures in medians.items():
        print(f"| {layout} | {figures['load_s']:.2f} | {figures['rss_mb']:,.0f} | {figures['collect_s']:.3f} |")
    packed, old = medians["packed"], medians["dataclasses"]
    print(f"| ratio packed / dataclasses | {packed['load_s'] / old['load_s']:.2f} | "
          f"{packed['rss_mb'] / old['rss_mb']:.2f} | {packed['collect_s'] / old['collect_s']:.3f} |")


if __name__ == "__main__":
    main()
