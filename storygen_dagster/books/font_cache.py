"""Fonts parsed once per process. fpdf2's `add_font` re-reads the TTF with fontTools for each
document (Kurinto Sans: 28,000 glyphs, ~0.22 s of CPU a face), and its `output()` then subsets
that parse in place. Here each (file, mtime, size, family, style) is parsed once, by fpdf2's
own `add_font` on a scratch document, into a prototype that is never drawn with. A document
gets a copy (`DocumentFonts.add`) whose per-document state is its own (the glyphs it uses,
the widths it looked up, the font descriptor output() numbers, the HarfBuzz font it resizes),
and before output() a fontTools font of its own to subset (`DocumentFonts.for_output`): loaded
from the cached file bytes, with the glyph order and the hmtx, cmap and post tables copied
from the parse (fontTools' subsetter rebinds their contents, never changes them in place),
the rest decompiled anew. tests/test_print_font_cache.py checks the bytes against uncached
renders."""

from __future__ import annotations

import copy
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]  # no type information
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

# The OpenType layout tables fpdf2 leaves out of every embedded subset (books/pdf.py drops them
# before output; HarfBuzz reads them from the file): the parse never loads them.
DROPPED_LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF")
# Kurinto Sans regular and bold and one CJK face's pair use 4; each entry holds a font's bytes
# (5-10 MB) and its parse.
MAX_ENTRIES = 6
# TTFFont's slots (fpdf2 2.8.9): the parse, shared by every copy and never written after
# fpdf2's __init__, and the state of one document, fresh in each copy. A slot in neither (a
# new fpdf2) fails tests/test_print_font_cache.py.
SHARED_SLOTS = frozenset(
    "type name sp ss up ut ttffile fontkey emphasis scale cmap glyph_ids unicode_range "
    "palette_index is_compressed is_cff is_cid_keyed is_symbol cff_ros "
    "collection_font_number".split()
)
DOCUMENT_SLOTS = frozenset(
    "i desc _hbfont cw ttfont missing_glyphs biggest_size_pt subset color_font".split()
)
_COPIED_TABLES = ("hmtx", "post")  # and cmap, with its subtables


@dataclass(frozen=True)
class _Entry:
    data: bytes  # the file as parsed: each output's fontTools font is loaded from it
    prototype: TTFFont  # its ttfont is fully loaded, then only read


_lock = threading.Lock()
_entries: OrderedDict[tuple, _Entry] = OrderedDict()


def drop_layout_tables(ttfont: TTFont) -> None:
    for tag in DROPPED_LAYOUT_TABLES:
        if tag in ttfont:
            del ttfont[tag]


class DocumentFonts:
    """The fonts of one document: `add` them, then `for_output()` just before `pdf.output()`."""

    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf
        self._cached: list[tuple[TTFFont, _Entry]] = []

    def add(self, family: str, style: str, path: Path) -> None:
        """pdf.add_font(family, style, path), from the process's parse of the file if it can."""
        pdf = self.pdf
        entry = _entry(family, style, path)
        if entry is None:
            pdf.add_font(family, style, str(path))
            return
        proto = entry.prototype
        if proto.fontkey in pdf.fonts:
            return
        font = copy.copy(proto)
        font.i = len(pdf.fonts) + 1
        font.desc = copy.copy(proto.desc)  # output() numbers it and adds the font file to it
        font.cw = copy.copy(proto.cw)  # a defaultdict: measuring a missing character adds it
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = SubsetMap(font)
        pdf.fonts[proto.fontkey] = font
        self._cached.append((font, entry))

    def for_output(self) -> None:
        """Give each cached font a fontTools font of its own, for output() to subset."""
        for font, entry in self._cached:
            if font.ttfont is entry.prototype.ttfont:
                font.ttfont = _working_copy(entry)


def _working_copy(entry: _Entry) -> TTFont:
    master = entry.prototype.ttfont
    work = TTFont(io.BytesIO(entry.data), lazy=True, recalcTimestamp=False)
    work.setGlyphOrder(list(master.getGlyphOrder()))
    for tag in _COPIED_TABLES:
        work[tag] = copy.copy(master[tag])
    cmap = copy.copy(master["cmap"])
    cmap.tables = [copy.copy(table) for table in master["cmap"].tables]
    work["cmap"] = cmap
    return work


def _cacheable(font: TTFFont) -> bool:
    # TrueType outlines, no colour glyphs, not a variable font: what the copy above covers.
    ttfont = font.ttfont
    return (
        "glyf" in ttfont
        and not font.is_cff
        and font.color_font is None
        and "fvar" not in ttfont
        and not font.is_compressed
        and all(tag in ttfont for tag in (*_COPIED_TABLES, "cmap"))
    )


def _entry(family: str, style: str, path: Path) -> _Entry | None:
    if MAX_ENTRIES <= 0:
        return None
    path = path.resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, family, style)
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]
        entry = _parse(family, style, path, stat)
        if entry is None:
            return None
        _entries[key] = entry
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
        return entry


def _parse(family: str, style: str, path: Path, stat: os.stat_result) -> _Entry | None:
    data = path.read_bytes()
    scratch = FPDF()
    scratch.add_font(family, style, str(path))
    proto = scratch.fonts[f"{family.lower()}{style}"]
    after = path.stat()
    changed = (after.st_mtime_ns, after.st_size) != (stat.st_mtime_ns, stat.st_size)
    if changed or not isinstance(proto, TTFFont) or not _cacheable(proto):
        return None
    master = proto.ttfont
    drop_layout_tables(master)
    # Everything loaded now, under the lock: later readers in other threads only read (fontTools
    # loads a table, or builds the reverse glyph map, on first use).
    for tag in master.keys():
        master[tag]
    master.getReverseGlyphMap()
    for table in master["cmap"].tables:
        table.ensureDecompiled()
    master.close()
    return _Entry(data, proto)


def size() -> int:
    """How many parsed faces the process holds."""
    with _lock:
        return len(_entries)


def clear() -> None:
    with _lock:
        _entries.clear()
