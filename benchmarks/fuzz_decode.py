"""Long-run mutation fuzzing of ``decode_image``: every input must decode or raise ``ImageError``, nothing else.

Seeds are small valid images (modes L/RGB/RGBA/P/I;16/CMYK in PNG/JPEG/BMP/GIF/TIFF/WEBP) plus the hostile
corpus of ``tests/helpers/corpus.py`` when it is importable. Each iteration mutates a seed (bit flips, interesting
bytes, truncation, insertions, deletions, repeats, splices; half of them aimed at the first 64 header bytes), writes it
under a random image extension and decodes it in this process. Outcomes: ``ok``, ``image_error``, ``crash`` (any
other exception) and ``hang`` (over ``--hang`` seconds, interrupted by a timer signal); each crash or hang saves
a reproducer under ``--crash-dir``. Prints one summary line, writes ``--out`` and exits 1 on any crash or hang.
Single process, numpy RNG, no atheris or hypothesis needed.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_decode.py --minutes 10 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import io
import os
import platform
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

from fakescope.data.images import ImageError, decode_image
from fakescope.io import write_json

MODES = {"L": 1, "RGB": 3, "RGBA": 4, "P": 1, "I;16": 2, "CMYK": 4}  # mode → bytes per pixel
FORMATS = ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]
EXTS = [".jpg", ".png", ".gif", ".bmp", ".webp", ".tif", ".ppm", ".heic", ""]
INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXTREMES = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x00\x00\xff\xff", b"\xff\xff\x00\x00"]
MAX_SEED_BYTES = 256 * 1024
POOL_MAX = 600
REPRO_PER_SIGNATURE = 3


class Hang(BaseException):
    """Raised by the timer signal; a BaseException so decode_image's ``except Exception`` cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise Hang


def encode(rng: np.random.Generator, mode: str, fmt: str) -> bytes | None:
    """A random small image in ``mode`` saved as ``fmt``, or None when Pillow cannot save that combination."""
    w, h = (int(x) for x in rng.integers(1, 65 if rng.random() < 0.9 else 300, 2))
    im = Image.frombytes(mode, (w, h), rng.integers(0, 256, w * h * MODES[mode], np.uint8).tobytes())
    if mode == "P":
        im.putpalette(rng.integers(0, 256, 768, np.uint8).tobytes())
    kw: dict[str, Any] = {}
    if fmt == "JPEG" and rng.random() < 0.3:
        kw["progressive"] = True
    if fmt in ("GIF", "PNG", "WEBP") and rng.random() < 0.2:  # animations
        kw.update(save_all=True, append_images=[im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    b = io.BytesIO()
    try:
        im.save(b, fmt, **kw)
    except (OSError, ValueError, KeyError):
        return None
    return b.getvalue()


def corpus_seeds() -> list[bytes]:
    """Regular files of the hostile test corpus (tests/helpers/corpus.py), if it can be imported."""
    path = Path(__file__).resolve().parent.parent / "tests" / "helpers" / "corpus.py"
    spec = importlib.util.spec_from_file_location("fakescope_test_corpus", path)
    if spec is None or spec.loader is None or not path.exists():  # optional: only with the tests folder
        return []
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    make_corpus = corpus.make_corpus
    out: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in make_corpus(Path(tmp)):
            p = Path(tmp) / name
            if p.is_file() and not p.is_symlink() and os.access(p, os.R_OK) and 0 < p.stat().st_size <= MAX_SEED_BYTES:
                out.append(p.read_bytes())
        for p in Path(tmp).rglob("*"):  # make the chmod-000 file deletable for non-root users
            if p.is_file() and not p.is_symlink():
                p.chmod(0o600)
    return out


def mutate(rng: np.random.Generator, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(min(8, int(rng.geometric(0.5)))):
        if not b:
            break
        n = len(b)
        i = int(rng.integers(0, min(n, 64))) if rng.random() < 0.5 else int(rng.integers(0, n))
        op = int(rng.integers(0, 8))
        if op == 0:
            b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            b[i] = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
        elif op == 2:  # a 16/32-bit field set to an extreme (sizes, lengths, offsets)
            b[i:i + 4] = EXTREMES[int(rng.integers(0, len(EXTREMES)))]
        elif op == 3:
            del b[max(1, i):]
        elif op == 4:
            b[i:i] = rng.integers(0, 256, int(rng.integers(1, 33)), np.uint8).tobytes()
        elif op == 5:
            del b[i:i + int(rng.integers(1, 33))]
        elif op == 6:
            b[i:i] = b[i:i + int(rng.integers(1, 257))]
        else:  # splice: our head, another seed's tail
            other = pool[int(rng.integers(0, len(pool)))]
            b = b[:i] + other[int(rng.integers(0, len(other) + 1)):]
    if b.startswith(PNG_SIGNATURE) and rng.random() < 0.5:
        fix_png_crcs(b)  # otherwise nearly every PNG mutant stops at Pillow's checksum test
    return bytes(b)


def fix_png_crcs(b: bytearray) -> None:
    """Rewrite the CRC of every complete PNG chunk in place."""
    i = len(PNG_SIGNATURE)
    while i + 12 <= len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        if i + 12 + n > len(b):
            break
        b[i + 8 + n:i + 12 + n] = struct.pack(">I", zlib.crc32(b[i + 4:i + 8 + n]) & 0xFFFFFFFF)
        i += 12 + n


def add(rng: np.random.Generator, pool: list[bytes], data: bytes) -> None:
    """Grow the seed pool up to ``POOL_MAX``, then replace a random seed."""
    if len(pool) < POOL_MAX:
        pool.append(data)
    else:
        pool[int(rng.integers(0, len(pool)))] = data


def save(folder: Path, prefix: str, data: bytes, ext: str) -> str:
    """Write a reproducer named by its content hash; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"{prefix}-{hashlib.sha1(data).hexdigest()[:12]}{ext}"
    f.write_bytes(data)
    return str(f)


def signature(e: BaseException) -> str:
    tb = [f for f in traceback.extract_tb(e.__traceback__) if f.name != "_on_alarm"]  # a hang: where it was
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
    return f"{type(e).__name__}@{where}"


def error_key(msg: str) -> str:
    """An ImageError message with numbers and file-specific detail removed, for the top-errors table."""
    return re.sub(r"\d+", "N", msg)[:70]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/fuzz_decode.json")
    ap.add_argument("--crash-dir", default=None, help="reproducers (default: <out folder>/fuzz_crashes)")
    ap.add_argument("--hang", type=float, default=10.0, help="seconds after which one decode counts as a hang")
    ap.add_argument("--slow", type=float, default=1.0, help="seconds after which one decode is listed as slow")
    ap.add_argument("--no-corpus", action="store_true", help="do not seed from tests/helpers/corpus.py")
    args = ap.parse_args()
    out = Path(args.out)
    crash_dir = Path(args.crash_dir) if args.crash_dir else out.parent / "fuzz_crashes"
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore")  # Pillow warns on corrupt EXIF, bombs below the hard limit, ...

    pool = [d for m in MODES for f in FORMATS for _ in range(3) if (d := encode(rng, m, f)) is not None]
    n_generated = len(pool)
    n_corpus = 0 if args.no_corpus else len(pool := pool + corpus_seeds()) - n_generated
    counts: collections.Counter[str] = collections.Counter()
    formats: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    failures: dict[str, dict[str, Any]] = {}
    slow: list[dict[str, Any]] = []
    signal.signal(signal.SIGALRM, _on_alarm)
    t0 = time.perf_counter()
    deadline = t0 + args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        while time.perf_counter() < deadline:
            if rng.random() < 0.1:
                fresh = encode(rng, str(rng.choice(list(MODES))), str(rng.choice(FORMATS)))
                if fresh is not None:
                    add(rng, pool, fresh)
            data = mutate(rng, pool[int(rng.integers(0, len(pool)))], pool)
            ext = str(rng.choice(EXTS))
            path = Path(tmp) / f"input{ext}"
            path.write_bytes(data)
            kind, detail, err = "ok", "", None
            t = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, args.hang)
            try:
                _, info = decode_image(path)
                formats[info.format] += 1
            except ImageError as e:
                kind, detail = "image_error", str(e)
                errors[error_key(detail)] += 1
            except Hang as e:
                kind, err = "hang", e
            except Exception as e:  # noqa: BLE001 - the whole point: anything but ImageError is a finding
                kind, err = "crash", e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            dt = time.perf_counter() - t
            counts[kind] += 1
            if kind == "ok" and rng.random() < 0.05:
                add(rng, pool, data)  # mutants that still decode are good seeds for deeper mutations
            if err is not None:
                rec = failures.setdefault(signature(err), {
                    "kind": kind, "count": 0, "files": [], "message": str(err)[:500] or f"over {args.hang}s",
                    "traceback": "".join(traceback.format_exception(err))[-3000:]})
                rec["count"] += 1
                if len(rec["files"]) < REPRO_PER_SIGNATURE:
                    rec["files"].append(save(crash_dir, kind, data, ext))
            if dt > args.slow:
                slow.append({"seconds": round(dt, 3), "outcome": kind, "bytes": len(data), "detail": detail[:200],
                             "file": save(crash_dir, "slow", data, ext) if len(slow) < 20 else None})
    elapsed = time.perf_counter() - t0
    n = sum(counts.values())
    result = {
        "seed": args.seed, "minutes": args.minutes, "seconds": round(elapsed, 1), "iterations": n,
        "per_second": round(n / elapsed, 1), "ok": counts["ok"], "image_error": counts["image_error"],
        "crash": counts["crash"], "hang": counts["hang"], "slow": sorted(slow, key=lambda s: -s["seconds"])[:20],
        "failures": failures, "ok_formats": dict(formats.most_common()), "top_errors": dict(errors.most_common(15)),
        "seeds": {"generated": n_generated, "corpus": n_corpus, "pool_at_end": len(pool)}, "pillow": PIL.__version__,
        "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"fuzz_decode: {n} iterations in {elapsed:.0f}s ({n / elapsed:.0f}/s), seed {args.seed}: "
          f"ok {counts['ok']}, ImageError {counts['image_error']}, crash {counts['crash']}, hang {counts['hang']}, "
          f"slow {len(slow)} ({len(failures)} distinct failure(s)) → {out}")
    for sig, rec in failures.items():
        print(f"  {rec['kind']} {sig} x{rec['count']}: {rec['message'][:160]} e.g. {rec['files'][:1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
