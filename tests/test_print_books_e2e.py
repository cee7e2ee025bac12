"""`storygen demo` as a user runs it: every story gets an HTML book, a print PDF and an EPUB;
the demo output and `storygen status` name all three; every demo story's EPUB passes
epubcheck and its PDF renders with poppler (what a print shop's preview does); the preflight
warns about the demo's 1024x768 pictures and says what would pass."""

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import storygen

needs_tools = pytest.mark.skipif(
    not (shutil.which("java") and shutil.which("epubcheck") and shutil.which("pdftoppm")),
    reason="needs Debian's epubcheck and poppler-utils (.ci/run installs them)",
)


@needs_tools
def test_demo_makes_html_pdf_and_epub_for_every_story(cli_env, tmp_path):
    out = storygen(["demo", "--stories", "2"], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    files = {}
    for sid in ("demo-01", "demo-02"):
        lines = [line for line in out.stderr.splitlines() if line.startswith(sid)]
        assert any("storybook_pdf" in line and ".pdf" in line for line in lines), lines
        assert any("storybook_epub" in line and ".epub" in line for line in lines), lines
        # The preflight's WARN line: the offline painter's pictures are 1024x768.
        assert any("print_preflight" in line and "3504x2632" in line for line in lines), lines
    for suffix in (".html", ".pdf", ".epub"):
        paths = [w for w in out.stdout.split() if "/books/" in w and w.endswith(suffix)]
        assert len(paths) == 2, out.stdout
        files[suffix] = [tmp_path / p for p in paths]
        assert all(p.is_file() for p in files[suffix])
    status = storygen(["status"], cli_env, tmp_path)
    assert status.returncode == 0, status.stderr
    for suffix in (".html", ".pdf", ".epub"):
        shown = [w for w in status.stdout.split() if "/books/" in w and w.endswith(suffix)]
        assert sorted(shown) == sorted(str(p.relative_to(tmp_path)) for p in files[suffix])

    # Every story's EPUB: EPUBCheck 4.2 checks one file per process ("Unrecognized
    # argument" for a second one), so one run each.
    for epub in files[".epub"]:
        check = subprocess.run(
            ["java", "-jar", shutil.which("epubcheck") or "", str(epub)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert check.returncode == 0 and "0 errors / 0 warnings" in check.stdout, (
            epub.name,
            check.stdout,
        )
    pages = _render(files[".pdf"][0], tmp_path / "pages")
    assert len(pages) % 4 == 0 and len(pages) >= 8
    # 8.75 in square at 20 dpi: 175 px.
    assert {Image.open(io.BytesIO(p.read_bytes())).size for p in pages} == {(175, 175)}


def _render(pdf: Path, out: Path) -> list[Path]:
    out.mkdir()
    done = subprocess.run(
        ["pdftoppm", "-r", "20", "-png", str(pdf), str(out / "page")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return sorted(out.glob("page-*.png"))
