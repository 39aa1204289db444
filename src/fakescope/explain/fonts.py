"""Titles that render: file names in any script, without boxes for missing glyphs and without mathtext.

Matplotlib's default font (DejaVu Sans) has no CJK glyphs, so a file named ``猫.png`` would be drawn as boxes.
``safe_title`` keeps every character some installed font can draw, naming those fonts as fallbacks for the
text (CJK fonts are looked for where Debian installs them: ``fonts-noto-cjk``, ``fonts-wqy-*``,
``fonts-droid-fallback``...), and writes the rest as escapes (``\\u732b``), as it does control characters.
"""

from __future__ import annotations

import functools
import glob
import unicodedata

# where Linux distributions install fonts with CJK glyphs (Debian: fonts-noto-cjk, fonts-wqy-zenhei, ...)
CJK_FONT_GLOBS = (
    "/usr/share/fonts/**/NotoSansCJK*-Regular.tt[cf]", "/usr/share/fonts/**/NotoSansCJK*.tt[cf]",
    "/usr/share/fonts/**/NotoSans*CJK*.otf", "/usr/share/fonts/**/SourceHanSans*.tt[cf]",
    "/usr/share/fonts/**/wqy-zenhei.ttc", "/usr/share/fonts/**/wqy-microhei.ttc",
    "/usr/share/fonts/**/DroidSansFallback*.ttf", "/usr/share/fonts/**/ipag*.ttf", "/usr/share/fonts/**/unifont*.otf",
)
ESCAPE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format, surrogates, unassigned, breaks


@functools.cache
def _fonts() -> list[tuple[str, frozenset[int]]]:
    """``(family, code points it covers)``: matplotlib's default font first, then any CJK font found."""
    from matplotlib import font_manager, ft2font, rcParams

    found: list[tuple[str, frozenset[int]]] = []
    default = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
    paths = [default]
    for pattern in CJK_FONT_GLOBS:
        paths += sorted(glob.glob(pattern, recursive=True))
    seen: set[str] = set()
    for path in dict.fromkeys(paths):
        try:
            font = ft2font.FT2Font(path)
            if font.family_name in seen:
                continue
            if path != default:
                font_manager.fontManager.addfont(path)  # fonts installed after matplotlib built its cache
            found.append((font.family_name, frozenset(font.get_charmap())))
            seen.add(font.family_name)
        except (OSError, RuntimeError, ValueError):
            continue
        if len(found) >= 3:  # the default and two fallbacks cover every script a CJK font set has
            break
    return found


def safe_title(text: str) -> tuple[str, list[str]]:
    """``(text, font families)`` for a matplotlib title: characters no installed font has become escapes, ``$``
    stays a dollar sign (no mathtext), and the families list the default font and the fallbacks the text needs."""
    fonts = _fonts()
    used: list[str] = [fonts[0][0]] if fonts else []
    out = []
    for ch in text:
        if ch == "$":
            out.append(r"\$")
            continue
        cp = ord(ch)
        family = None if unicodedata.category(ch) in ESCAPE_CATEGORIES else next(
            (name for name, cover in fonts if cp in cover), None)
        if family is None or (ch.isspace() and ch != " "):
            out.append(ch.encode("unicode_escape").decode("ascii"))
            continue
        if family not in used:
            used.append(family)
        out.append(ch)
    return "".join(out), used


__all__ = ["CJK_FONT_GLOBS", "safe_title"]
