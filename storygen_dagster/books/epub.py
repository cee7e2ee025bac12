"""The EPUB 3: a cover, a title page and one page per scene (picture with the scene's moment as
alt text, then the text), in reading order, with a navigation document, language and title.

Written with zipfile rather than ebooklib: the package is a handful of small files, and writing
them ourselves keeps every byte fixed for the same story (ebooklib stamps the current time on
each zip entry and on dcterms:modified), so an unchanged book re-renders identically."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from storygen_dagster.domain.printing import PrintBook, PrintSettings

_CSS = """body { font-family: sans-serif; margin: 0 5%; line-height: 1.5; }
h1 { text-align: center; margin-top: 30%; }
p.by { text-align: center; }
figure { margin: 0; text-align: center; }
figure img { max-width: 100%; max-height: 70vh; }
p.text { font-size: 1.25em; }
section.cover img { width: 100%; }
"""
_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""


def book_identifier(story_id: str) -> str:
    """The same urn:uuid for every edition of a story (its EPUB identifier)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'storygen:story:{story_id}')}"


def _page(title: str, lang: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:epub="http://www.idpf.org/2007/ops" '
        f'lang="{lang}" xml:lang="{lang}">\n<head><meta charset="UTF-8"/>'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" type="text/css" href="style.css"/></head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _pages(book: PrintBook, lang: str) -> list[tuple[str, str, str]]:
    """(file name, nav label, XHTML) in reading order."""
    title = escape(book.title)
    first = book.scenes[0]
    out = [
        (
            "cover.xhtml",
            "Cover",
            _page(
                book.title,
                lang,
                f'<section class="cover" epub:type="cover"><img src="images/scene-'
                f'{first.scene_number}.png" alt={quoteattr(f"Cover: {first.moment}")}/>'
                "</section>",
            ),
        ),
        (
            "title.xhtml",
            "Title page",
            _page(
                book.title,
                lang,
                f'<section epub:type="titlepage"><h1 dir="auto">{title}</h1>'
                f'<p class="by" dir="auto">a story for {escape(book.child_name)}, age '
                f"{book.age}</p></section>",
            ),
        ),
    ]
    for scene in book.scenes:
        n = scene.scene_number
        out.append(
            (
                f"scene-{n}.xhtml",
                f"Scene {n}",
                _page(
                    f"{book.title} - {n}",
                    lang,
                    f'<section epub:type="chapter" aria-label="Scene {n}"><figure>'
                    f'<img src="images/scene-{n}.png" alt={quoteattr(scene.moment)}/>'
                    f'</figure><p class="text" dir="auto">{escape(scene.text)}</p></section>',
                ),
            )
        )
    return out


def _nav(book: PrintBook, lang: str, pages: list[tuple[str, str, str]]) -> str:
    items = "\n".join(f'<li><a href="{name}">{escape(label)}</a></li>' for name, label, _ in pages)
    return _page(
        book.title,
        lang,
        f'<nav epub:type="toc" id="toc"><h2>Contents</h2><ol>\n{items}\n</ol></nav>\n'
        '<nav epub:type="landmarks" hidden=""><ol>'
        '<li><a epub:type="cover" href="cover.xhtml">Cover</a></li>'
        '<li><a epub:type="bodymatter" href="scene-'
        f'{book.scenes[0].scene_number}.xhtml">Start of the story</a></li></ol></nav>',
    )


def _opf(book: PrintBook, lang: str, pages, modified: str) -> str:
    cover = ' properties="cover-image"'
    images = "\n".join(
        f'<item id="img{s.scene_number}" href="images/scene-{s.scene_number}.png" '
        f'media-type="image/png"{cover if i == 0 else ""}/>'
        for i, s in enumerate(book.scenes)
    )
    docs = "\n".join(
        f'<item id="p{i}" href="{name}" media-type="application/xhtml+xml"/>'
        for i, (name, _, _) in enumerate(pages)
    )
    spine = "\n".join(f'<itemref idref="p{i}"/>' for i in range(len(pages)))
    summary = (
        f"A picture book for {book.child_name}. Every picture has a text description; the "
        "text of each page follows its picture."
    )
    about = f"A story for {book.child_name}, age {book.age}, about {book.value_to_teach}."
    package = 'xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="bookid"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<package {package} xml:lang="{lang}">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:identifier id="bookid">{book_identifier(book.story_id)}</dc:identifier>
<dc:title>{escape(book.title)}</dc:title>
<dc:language>{lang}</dc:language>
<dc:creator>storygen</dc:creator>
<dc:description>{escape(about)}</dc:description>
<meta property="dcterms:modified">{modified}</meta>
<meta property="schema:accessMode">textual</meta>
<meta property="schema:accessMode">visual</meta>
<meta property="schema:accessModeSufficient">textual,visual</meta>
<meta property="schema:accessibilityFeature">alternativeText</meta>
<meta property="schema:accessibilityFeature">readingOrder</meta>
<meta property="schema:accessibilityFeature">tableOfContents</meta>
<meta property="schema:accessibilityHazard">none</meta>
<meta property="schema:accessibilitySummary">{escape(summary)}</meta>
</metadata>
<manifest>
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
<item id="css" href="style.css" media-type="text/css"/>
{docs}
{images}
</manifest>
<spine>
{spine}
</spine>
</package>
"""


def render_epub(book: PrintBook, settings: PrintSettings) -> bytes:
    """The EPUB's bytes; the same book gives the same bytes (fixed dates, fixed order)."""
    if not book.scenes:
        raise ValueError(f"story {book.story_id}: a book needs at least one scene")
    lang = settings.language
    created = book.created_at
    created = created.astimezone(UTC) if created.tzinfo else created
    modified = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    # Zip dates start in 1980.
    stamp = max(created.replace(tzinfo=None), datetime(1980, 1, 1)).timetuple()[:6]
    pages = _pages(book, lang)
    files: list[tuple[str, bytes]] = [
        ("META-INF/container.xml", _CONTAINER.encode()),
        ("OEBPS/content.opf", _opf(book, lang, pages, modified).encode()),
        ("OEBPS/nav.xhtml", _nav(book, lang, pages).encode()),
        ("OEBPS/style.css", _CSS.encode()),
        *((f"OEBPS/{name}", xhtml.encode()) for name, _, xhtml in pages),
        *((f"OEBPS/images/scene-{s.scene_number}.png", s.png) for s in book.scenes),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # The mimetype first and uncompressed: readers identify an EPUB by its first bytes.
        archive.writestr(zipfile.ZipInfo("mimetype", stamp), b"application/epub+zip")
        for name, data in files:
            info = zipfile.ZipInfo(name, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()
