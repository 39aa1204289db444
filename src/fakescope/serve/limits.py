"""The server's limits: one dataclass, read by ``create_app`` and turned into ``fakescope serve`` flags.

Every field carries its flag's help text, so the defaults and their meaning live in one place. Nothing here
imports FastAPI: the CLI builds its parser from these fields without the web stack installed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _opt(default: float, help: str) -> Any:  # noqa: A002 - the argparse word
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    """Per-request budgets and the sizes of the queues; see each field's help (the ``fakescope serve`` flags)."""

    max_upload_mb: float = _opt(20, "largest request body accepted, in MB; a larger one gets 413 before it is read")
    max_files: int = _opt(1000, "most files in one request (413 above it)")
    max_file_pixels: int = _opt(50_000_000, "most pixels one file may decode to (a big JPEG counts at the reduced "
                                "size it is decoded at); a larger file is refused from its header, before decoding")
    max_request_pixels: int = _opt(100_000_000, "most pixels one request may decode, all files together (counted "
                                   "from the headers before anything is decoded; 413 above it)")
    heavy_pixels: int = _opt(2_000_000, "a file that decodes to more pixels than this is decoded in the worker "
                             "processes, at low CPU priority, so that it cannot slow small requests down")
    decode_workers: int = _opt(1, "worker processes for those heavy files (0: one thread of the server process)")
    decode_nice: int = _opt(10, "how much lower the CPU priority of the decode workers is (0-19)")
    max_pending: int = _opt(64, "requests accepted at once (being read, decoded or scored); one more gets 503 with "
                            "Retry-After, before its body is read")
    max_heavy_pending: int = _opt(4, "requests with heavy files accepted at once (decoding or waiting for a "
                                  "worker); one more gets 503 with Retry-After while small requests go on")
    retry_after: int = _opt(2, "seconds a 503 asks the client to wait (its Retry-After header)")
    max_batch: int = _opt(256, "most images scored by one model in one forward pass; concurrent requests are "
                          "batched together up to this")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            low = 0 if f.name in ("decode_workers", "decode_nice", "retry_after") else 1e-9
            if value < low:
                raise ValueError(f"{f.name} must be {'>= 0' if low == 0 else '> 0'}, got {value!r}")
            if f.type == "int" and value != int(value):
                raise ValueError(f"{f.name} must be a whole number, got {value!r}")
        if self.decode_nice > 19:
            raise ValueError(f"decode_nice must be in 0-19, got {self.decode_nice}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def flags(cls) -> list[tuple[str, str, type, Any, str]]:
        """``(flag, field name, type, default, help)`` per field, for argparse."""
        return [(f"--{f.name.replace('_', '-')}", f.name, float if f.type == "float" else int, f.default,
                 f"{f.metadata['help']} (default {f.default:,})") for f in dataclasses.fields(cls)]

    def public(self) -> dict[str, Any]:
        """The limits a client may want to know (``/api/health``)."""
        return {**dataclasses.asdict(self), "max_upload_bytes": self.max_upload_bytes}


def make_limits(limits: Limits | None = None, **overrides: Any) -> Limits:
    """``limits`` (default: the defaults) with ``overrides`` (field names) applied; unknown names are refused."""
    base = limits or Limits()
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Limits)}
    if unknown:
        raise TypeError(f"unknown server limit(s): {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(f.name for f in dataclasses.fields(Limits))}")
    return dataclasses.replace(base, **overrides) if overrides else base


__all__ = ["Limits", "make_limits"]
