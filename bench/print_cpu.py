"""CPU seconds per story of the print files: the PDF (fpdf2, fontTools), its preflight (pypdf)
and the EPUB, rendered from the same books by this checkout and by a baseline checkout, each in
a fresh process (one demo's renders: the first story pays for parsing the fonts), the two back
to back, `--rounds` times. The books are the demo's: the offline stories of
`storygen demo --stories N` with the offline painter's pictures at the default image size.

    python -m bench.print_cpu --stories 6 --rounds 5              # baseline: `git archive main`
    python -m bench.print_cpu --baseline /tmp/print-base          # an unpacked checkout

One JSON line per round and tree, then a summary: medians over the rounds of the CPU per story
and of this tree's ratio to the baseline in the same round, and whether both trees wrote the
same bytes (PDF and EPUB)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("pdf", "epub", "preflight")


def demo_books(count: int, width: int, height: int) -> list[tuple]:
    """The demo's books as plain tuples (each tree builds its own PrintBook from them)."""
    from storygen_dagster.domain.examples import demo_requests
    from storygen_dagster.providers.offline import story_for
    from storygen_dagster.providers.offline_painter import paint_scene

    created = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    books = []
    for i, request in enumerate(demo_requests(count), start=1):
        story = story_for(request)
        scenes = [
            (
                s.scene_number,
                s.text,
                f"scene {s.scene_number} of {story.story_meta.story_title}",
                paint_scene(s.text, width, height, s.scene_number),
            )
            for s in story.scenes
        ]
        meta, child = story.story_meta, story.child_profile
        head = (f"demo-{i:02d}", meta.story_title, child.name, child.age, meta.value_to_teach)
        books.append((*head, created, scenes))
    return books


def _child(books_file: str) -> None:
    """In the tree under test (first on sys.path): render every book once, in order."""
    import storygen_dagster
    from storygen_dagster.books.epub import render_epub
    from storygen_dagster.books.pdf import render_pdf
    from storygen_dagster.books.preflight import preflight
    from storygen_dagster.domain.printing import BookScene, PrintBook, PrintSettings

    settings = PrintSettings()
    rows = []
    for story_id, title, child, age, value, created, scenes in pickle.loads(
        Path(books_file).read_bytes()
    ):
        book = PrintBook(
            story_id, title, child, age, value, created, [BookScene(*s) for s in scenes]
        )
        started = time.process_time()
        pdf = render_pdf(book, settings)
        rendered = time.process_time()
        preflight(pdf, settings, [s.scene_number for s in book.scenes])
        checked = time.process_time()
        epub = render_epub(book, settings)
        done = time.process_time()
        rows.append(
            {
                "pdf": rendered - started,
                "preflight": checked - rendered,
                "epub": done - checked,
                "sha256": [hashlib.sha256(pdf).hexdigest(), hashlib.sha256(epub).hexdigest()],
            }
        )
    sys.stdout.write(json.dumps({"package": storygen_dagster.__file__, "books": rows}) + "\n")


def _run(tree: Path, books_file: str, python: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", books_file],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"render in {tree} failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(out["package"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: imported storygen_dagster from {out['package']}")
    return out


def _per_story(out: dict) -> dict:
    books = out["books"]
    row = {f"{f}_cpu_s": round(statistics.mean(b[f] for b in books), 4) for f in FILES}
    row["first_pdf_cpu_s"] = round(books[0]["pdf"], 4)
    row["later_pdf_cpu_s"] = round(statistics.mean(b["pdf"] for b in books[1:] or books), 4)
    return row


def _baseline_tree(ref: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="print-base-"))
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.print_cpu")
    parser.add_argument("--stories", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="1024x768", help="picture size (the default setting)")
    parser.add_argument("--baseline", type=Path, help="an unpacked checkout to compare with")
    parser.add_argument("--baseline-ref", default="main", help="else `git archive` this ref")
    parser.add_argument("--baseline-python", default=sys.executable)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    width, height = (int(v) for v in args.size.split("x"))
    baseline = args.baseline or _baseline_tree(args.baseline_ref)
    trees = {"baseline": (baseline, args.baseline_python), "this": (ROOT, sys.executable)}
    with tempfile.NamedTemporaryFile(suffix=".pickle") as books_file:
        books_file.write(pickle.dumps(demo_books(args.stories, width, height)))
        books_file.flush()
        rows: dict[str, list[dict]] = {name: [] for name in trees}
        hashes: dict[str, list] = {}
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for name in order:  # back to back, alternating: the machine's load drifts
                root, python = trees[name]
                out = _run(root, books_file.name, python)
                hashes[name] = [b["sha256"] for b in out["books"]]
                rows[name].append(_per_story(out))
                line = {"figure": "print_cpu", "round": round_, "tree": name, **rows[name][-1]}
                sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()
    summary: dict[str, object] = {"figure": "print_cpu_summary", "stories": args.stories}
    for key in rows["this"][0]:
        this = [r[key] for r in rows["this"]]
        base = [r[key] for r in rows["baseline"]]
        summary[key] = {
            "this": round(statistics.median(this), 4),
            "baseline": round(statistics.median(base), 4),
            "ratio": round(statistics.median(t / b for t, b in zip(this, base, strict=True)), 3),
        }
    summary["same_bytes"] = hashes["this"] == hashes["baseline"]
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
