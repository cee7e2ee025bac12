"""The fonts a book is set in: Kurinto Sans from the `weblate-fonts` wheel (Latin, Greek,
Cyrillic, Vietnamese, Arabic, Hebrew, symbols; no system font needed), or a TrueType file
named by STORYGEN_PRINT_FONT, plus one Kurinto CJK face only when the text needs it (each
is 6-10 MB to load; the PDF embeds only the glyphs used)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]  # no type information

_KURINTO = "static/weblate_fonts/kurinto/ttf"
# Kurinto's CJK faces by script/language: Japanese kana, Korean hangul, Chinese ideographs.
_CJK = {"JP": "KurintoSansJP", "KR": "KurintoSansKR", "SC": "KurintoSansSC", "TC": "KurintoSansTC"}


class FontError(ValueError):
    """A font is missing or unusable; the message names the setting or package to fix."""


@dataclass(frozen=True)
class Face:
    family: str
    regular: Path
    bold: Path


@dataclass(frozen=True)
class FontSet:
    body: Face
    fallbacks: tuple[Face, ...] = ()

    @property
    def families(self) -> list[str]:
        return [self.body.family, *(f.family for f in self.fallbacks)]


def _kurinto(name: str) -> Face:
    try:
        root = resources.files("weblate_fonts").joinpath(_KURINTO)
    except ModuleNotFoundError as exc:
        raise FontError(
            "the weblate-fonts package (Kurinto fonts) is not installed: pip install "
            "weblate-fonts, or set STORYGEN_PRINT_FONT to a .ttf file"
        ) from exc
    regular, bold = Path(str(root / f"{name}-Rg.ttf")), Path(str(root / f"{name}-Bd.ttf"))
    for path in (regular, bold):
        if not path.is_file():
            raise FontError(f"font file {path} is missing from the weblate-fonts package")
    return Face(name, regular, bold)


def _user_font(path_text: str) -> Face:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FontError(f"STORYGEN_PRINT_FONT: {path} is not a file")
    try:
        TTFont(path, lazy=True).close()
    except Exception as exc:
        raise FontError(
            f"STORYGEN_PRINT_FONT: {path} is not a TrueType/OpenType font: {exc}"
        ) from exc
    return Face("BookFont", path, path)


@cache
def _coverage(path: Path) -> frozenset[int]:
    font = TTFont(path, lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def _cjk_face(text: str, language: str) -> str | None:
    """Which CJK face the text needs (None: no Han, kana or hangul in it)."""
    names = {unicodedata.name(c, "").split(" ", 1)[0] for c in text if ord(c) >= 0x2E80}
    if "HIRAGANA" in names or "KATAKANA" in names or language.startswith("ja"):
        return "JP" if names & {"HIRAGANA", "KATAKANA", "CJK"} else None
    if "HANGUL" in names:
        return "KR"
    if "CJK" in names:
        tag = language.lower()
        return "TC" if tag in ("zh-tw", "zh-hk", "zh-hant") else "SC"
    return None


def fonts_for(text: str, font: str | None = None, language: str = "en") -> FontSet:
    """The body face, and the CJK face when `text` has characters the body lacks that it
    covers. Characters no face has (most emoji) are left out by the renderer."""
    body = _user_font(font) if font else _kurinto("KurintoSans")
    covered = _coverage(body.regular)
    missing = "".join(c for c in set(text) if ord(c) not in covered and not c.isspace())
    cjk = _cjk_face(text, language) if missing else None
    return FontSet(body, (_kurinto(_CJK[cjk]),) if cjk else ())


def dropped_characters(text: str, fonts: FontSet) -> list[str]:
    """The characters of `text` that no face of `fonts` can draw (shown as nothing)."""
    covered: set[int] = set()
    for face in (fonts.body, *fonts.fallbacks):
        covered |= _coverage(face.regular)
    return sorted(
        {c for c in text if ord(c) not in covered and not c.isspace() and c.isprintable()}
    )
