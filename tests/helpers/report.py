"""Report helpers shared by the tests: a page is self-contained (every image embedded, nothing fetched)."""

from __future__ import annotations

import base64
import re

SRC = re.compile(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE)


def assert_self_contained(html: str) -> None:
    """Every image is an embedded PNG; nothing is fetched from the network or the disk."""
    srcs = SRC.findall(html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs[:5]:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    low = html.lower()
    for bad in ('src="http', "file://", "<link", "<script", "@import", "url("):
        assert bad not in low, bad
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
