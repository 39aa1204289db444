"""Reading a request's multipart form with this server's limits, refusing it as early as its headers allow.

Starlette's own parser, with one addition: as each file part ends, the pixels its image header promises are
added up, and once the request is over ``max_request_pixels`` it is refused (413) without reading the rest of
the body. A client that keeps sending the forty-7000x7000-PNG request then costs the server a few parts' worth
of parsing each time, not the whole body. The count is a lower bound of the full check that follows the parse
(``pipeline.check_budget``: every file, every input size), so nothing that check admits is refused here.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from .decoding import decoded_pixels
from .limits import Limits
from .pipeline import RequestRefused, over_budget

HEAD_BYTES = 128 * 1024  # enough for any image header (a JPEG's size follows its EXIF, at most 64 KB)


class _OverBudget(Exception):
    def __init__(self, pixels: int) -> None:
        super().__init__(pixels)
        self.pixels = pixels


class BudgetParser(MultiPartParser):
    """``MultiPartParser`` that raises ``_OverBudget`` as soon as the file headers seen pass the budget."""

    def __init__(self, *args: Any, limits: Limits, size: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits, self._size, self._pixels = limits, size, 0

    def on_part_end(self) -> None:
        part = getattr(self, "_current_part", None)
        super().on_part_end()
        upload = getattr(part, "file", None)
        if upload is None:  # a plain field, or a starlette whose internals moved: the full check still applies
            return
        found = decoded_pixels(io.BytesIO(self._head(part, upload.file)), self._size)
        if found and found[2] <= self._limits.max_file_pixels:  # a file over its own limit is skipped, not counted
            self._pixels += found[2]
            if self._pixels > self._limits.max_request_pixels:
                raise _OverBudget(self._pixels)

    def _head(self, part: object, file: Any) -> bytes:
        """The part's first bytes: what is written to its file so far and what waits to be written."""
        pos = file.tell()
        try:
            file.seek(0)
            head = file.read(HEAD_BYTES)
        finally:
            file.seek(pos)
        pending = [data for p, data in getattr(self, "_file_parts_to_write", []) if p is part]
        return (head + b"".join(pending))[:HEAD_BYTES]


def _too_many(limits: Limits) -> RequestRefused:
    return RequestRefused(413, f"too many files: this server takes at most {limits.max_files} per request "
                               "(--max-files)", limit="max_files", allowed=limits.max_files)


async def _parse(request: Request, limits: Limits, size: int) -> FormData:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await request.form(max_files=limits.max_files, max_fields=limits.max_files + 100)
    parser = BudgetParser(request.headers, request.stream(), max_files=limits.max_files,
                          max_fields=limits.max_files + 100, limits=limits, size=size)
    try:
        return await parser.parse()
    except _OverBudget as e:
        raise over_budget(e.pixels, limits, partial=True) from None
    except MultiPartException as e:
        if "Too many files" in e.message:
            raise _too_many(limits) from None
        raise RequestRefused(400, f"bad multipart form: {e.message}") from None


@contextlib.asynccontextmanager
async def read_form(request: Request, limits: Limits, size: int) -> AsyncIterator[FormData]:
    """The form (closed afterwards); ``size``: the smallest input size served (the early count's lower bound)."""
    try:
        form = await _parse(request, limits, size)
    except HTTPException as e:
        if "Too many files" in str(e.detail):
            raise _too_many(limits) from None
        raise RequestRefused(400, f"bad form: {e.detail}") from None
    try:
        yield form
    finally:
        await form.close()


__all__ = ["BudgetParser", "read_form"]
