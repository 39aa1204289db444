"""The FastAPI app: ``/api/health``, ``/api/models``, ``/api/scan``, ``/api/explain`` and the static page at ``/``.

Uploads are written to a private temporary folder and go through ``scan_iter`` → ``decode_image``, exactly as
``fakescope scan`` files do (same format list, bomb refusal, warnings and rows). Request bodies over the size
limit are refused with 413 from their ``Content-Length`` before anything is read, or, when streamed without
one, as soon as the bytes received pass the limit. Models are loaded once, in ``create_app``; one lock
serialises their use, so Grad-CAM's hooks never meet a concurrent scan on the same network.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from .._version import __version__
from ..data import ImageError, decode_image
from ..inference.contract import Scorer
from ..inference.scorer import Detector
from ..models import list_bundled
from ..scanning.output import Verdict
from ..scanning.scan import scan_iter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers on top of the files themselves
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a streamed body passes the limit."""


def _too_large(limit_mb: float) -> JSONResponse:
    return JSONResponse({"detail": f"upload too large: the limit is {limit_mb:g} MB per request "
                                   "(start the server with a larger --max-upload-mb, or send fewer files at once)"},
                        status_code=413)


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (declared or counted), without buffering them."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int,
                 limit_mb: float) -> None:
        self.app, self.max_bytes, self.limit_mb = app, max_bytes, limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)(scope, receive, send)
                return
            if size > self.max_bytes:
                await _too_large(self.limit_mb)(scope, receive, send)
                return
        seen, started = 0, False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(self.limit_mb)(scope, receive, send)


def _jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars → Python, non-finite floats → None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _load(models: Sequence[str | Detector] | None) -> tuple[list[Detector], dict[str, Detector]]:
    """Detectors in order, and a lookup by their name and by the name or path they were asked for."""
    wanted = list(models) if models else list_bundled()
    if not wanted:
        raise ValueError("no models to serve: no bundled checkpoint found; pass --model PATH")
    dets: list[Detector] = []
    lookup: dict[str, Detector] = {}
    for m in wanted:
        det = m if isinstance(m, Detector) else Detector.load(m)
        if det.name not in lookup:
            dets.append(det)
        lookup.setdefault(det.name, det)
        lookup.setdefault(str(m) if not isinstance(m, Detector) else det.name, det)
    return dets, lookup


class _RequestError(ValueError):
    """A bad request (unknown model, invalid threshold, no file): 400 with this message."""


def _pick(form: FormData, app: FastAPI) -> tuple[list[Detector], float | None]:
    """The requested models (default: all) and threshold override from the form."""
    names = [str(v) for v in form.getlist("model") if isinstance(v, str) and v.strip()]
    lookup: dict[str, Detector] = app.state.lookup
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise _RequestError(f"unknown model {', '.join(map(repr, unknown))}; this server has: "
                            f"{', '.join(d.name for d in app.state.detectors)}")
    dets = list({lookup[n].name: lookup[n] for n in names}.values()) if names else list(app.state.detectors)
    raw = form.get("threshold")
    threshold = None
    if isinstance(raw, str) and raw.strip():
        try:
            threshold = float(raw)
        except ValueError:
            raise _RequestError(f"threshold must be a number in [0, 1], got {raw!r}") from None
        if not 0.0 <= threshold <= 1.0:
            raise _RequestError(f"threshold must be in [0, 1], got {raw!r}")
    return dets, threshold


def _uploads(form: FormData) -> list[UploadFile]:
    """Every file part (any field name); an empty, unnamed part (a form sent with no file chosen) is skipped."""
    return [v for _k, v in form.multi_items() if isinstance(v, UploadFile) and (v.filename or (v.size or 0) > 0)]


def _spool(uploads: Sequence[UploadFile], folder: str) -> list[str]:
    paths = []
    for i, up in enumerate(uploads):
        path = os.path.join(folder, f"upload-{i:05d}")
        up.file.seek(0)
        with open(path, "wb") as fh:
            shutil.copyfileobj(up.file, fh)
        paths.append(path)
    return paths


def _scan_files(paths: list[str], dets: list[Scorer], threshold: float | None) -> dict[tuple[str, str], Verdict]:
    rows: dict[tuple[str, str], Verdict] = {}
    for size in dict.fromkeys(d.image_size for d in dets):  # scan_iter needs one input size per call
        group = [d for d in dets if d.image_size == size]
        for chunk in scan_iter(paths, group, threshold, workers=0):
            rows.update({(r.path, r.model): r for r in chunk})
    return rows


def scan_uploads(ups: Sequence[UploadFile], dets: list[Scorer], threshold: float | None,
                 lock: threading.Lock) -> list[dict[str, Any]]:
    """One row per file per model, in upload order; an unexpected failure becomes that file's ``error``."""
    names = [u.filename or f"upload-{i}" for i, u in enumerate(ups)]
    with lock, tempfile.TemporaryDirectory(prefix="fakescope-serve-") as tmp:
        paths = _spool(ups, tmp)
        try:
            rows = _scan_files(paths, dets, threshold)
        except Exception:  # noqa: BLE001 - retried file by file below so one file cannot fail the batch
            rows = {}
            for p in paths:
                try:
                    rows.update(_scan_files([p], dets, threshold))
                except Exception as e:  # noqa: BLE001 - reported in the file's rows, never a 500
                    rows.update({(p, d.name): Verdict(p, d.task, None, None, None, d.name,
                                                      error=f"internal error: {type(e).__name__}: {e}") for d in dets})
    out = []
    for path, name in zip(paths, names, strict=True):
        for d in dets:
            row = rows[(path, d.name)]
            row.path = name
            out.append(_jsonable(row.to_dict()))
    return out


def explain_png(path: str, name: str, det: Detector, threshold: float | None) -> tuple[bytes, dict[str, Any]]:
    """Grad-CAM overlay PNG beside the input, titled with the verdict (as ``fakescope explain`` draws it)."""
    from ..explain import grad_cam
    from ..explain.render import _render, verdict

    img, info = decode_image(path, det.image_size, det.net.spec.resample)
    img = np.array(img)  # writable copy
    label, idx, score, confidence, detected = verdict(det, img, threshold)
    heat = grad_cam(det.net, img[None], target=idx)[0]
    title = (name if len(name) <= 60 else name[:57] + "...").replace("$", r"\$")  # no mathtext from file names
    with tempfile.TemporaryDirectory(prefix="fakescope-explain-") as tmp:
        png = os.path.join(tmp, "explain.png")
        _render(img, {"gradcam": heat}, f"{label} {confidence:.2f}", detected,
                f"{title} — {det.name}", png, max(1, 256 // det.image_size))
        with open(png, "rb") as fh:
            data = fh.read()
    return data, {"label": label, "score": round(score, 6), "warning": info.warning}


def _index_html() -> str:
    return (resources.files("fakescope.serve") / "static" / "index.html").read_text(encoding="utf-8")


def _add_explain_route(app: FastAPI) -> None:
    """``POST /api/explain``: one image, its Grad-CAM overlay as a PNG (or a 422 JSON for an unreadable image)."""

    @app.post("/api/explain", response_model=None)
    async def explain_endpoint(request: Request) -> Response:
        async with request.form() as form:
            try:
                chosen, threshold = _pick(form, app)
                ups = _uploads(form)
                if len(ups) != 1 or (len(chosen) != 1 and form.getlist("model")):
                    raise _RequestError("explain takes exactly one file (and at most one model)")
            except _RequestError as e:
                return JSONResponse({"detail": str(e)}, status_code=400)
            up, det = ups[0], chosen[0]
            name = up.filename or "upload"

            def work() -> tuple[bytes, dict[str, Any]]:
                with app.state.lock, tempfile.TemporaryDirectory(prefix="fakescope-serve-") as tmp:
                    return explain_png(_spool([up], tmp)[0], name, det, threshold)

            try:
                png, verdict = await run_in_threadpool(work)
            except ImageError as e:
                return JSONResponse({"path": name, "model": det.name, "error": str(e)}, status_code=422)
            except Exception as e:  # noqa: BLE001 - a hostile or odd image gets an error JSON, never a 500
                return JSONResponse({"path": name, "model": det.name, "error": f"{type(e).__name__}: {e}"},
                                    status_code=422)
        label = str(verdict["label"]).encode("ascii", "backslashreplace").decode("ascii")
        headers = {"X-Fakescope-Label": label, "X-Fakescope-Score": f"{verdict['score']:.6f}",
                   "Cache-Control": "no-store"}
        return Response(png, media_type="image/png", headers=headers)


def create_app(models: Sequence[str | Detector] | None = None, max_upload_mb: float = 20) -> FastAPI:
    """The app; models (bundled names, checkpoint paths or Detectors; default every bundled one) load now."""
    if not max_upload_mb > 0:
        raise ValueError(f"max_upload_mb must be > 0, got {max_upload_mb}")
    dets, lookup = _load(models)
    app = FastAPI(title="fakescope", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.detectors, app.state.lookup, app.state.lock = dets, lookup, threading.Lock()
    max_bytes = int(max_upload_mb * 1024 * 1024)
    app.add_middleware(BodyLimit, max_bytes=max_bytes + MULTIPART_SLACK, limit_mb=max_upload_mb)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(_index_html(), headers={"Content-Security-Policy": CSP})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "models": [d.name for d in dets],
                "max_upload_bytes": max_bytes}

    @app.get("/api/models")
    def list_models() -> JSONResponse:
        return JSONResponse(_jsonable([d.describe() for d in dets]))

    @app.post("/api/scan")
    async def scan_endpoint(request: Request) -> JSONResponse:
        async with request.form() as form:
            try:
                chosen, threshold = _pick(form, app)
                ups = _uploads(form)
                if not ups:
                    raise _RequestError("no files uploaded: send one or more images as multipart/form-data "
                                        "file fields (e.g. curl -F files=@photo.jpg)")
            except _RequestError as e:
                return JSONResponse({"detail": str(e)}, status_code=400)
            rows = await run_in_threadpool(scan_uploads, ups, chosen, threshold, app.state.lock)
        return JSONResponse(rows)

    _add_explain_route(app)
    return app


__all__ = ["BodyLimit", "create_app", "explain_png", "scan_uploads"]
