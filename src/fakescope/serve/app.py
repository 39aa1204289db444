"""The FastAPI app: ``/api/health``, ``/api/models``, ``/api/scan``, ``/api/explain``, ``/docs`` and the page at ``/``.

How a request is handled (the concurrency design; each limit is a ``Limits`` field and a ``fakescope serve`` flag):

1. ``guard.Guard`` admits at most ``max_pending`` work requests at once (503 + ``Retry-After`` otherwise, before
   the body is read) and refuses bodies over ``max_upload_mb`` (413) as they arrive.
2. ``pipeline.Workspace`` spools the files and reads every header: files over ``max_file_pixels`` are refused
   one by one, a request over ``max_request_pixels`` whole (413), before a pixel is decoded. A request with
   heavy files (over ``heavy_pixels``) needs one of ``max_heavy_pending`` slots (503 + ``Retry-After``).
3. ``decoding.Decoder`` decodes light files in the thread pool and heavy ones in low-priority worker processes
   that give their memory back; no lock is held while decoding.
4. ``batching.Batcher`` scores on one inference thread, batching concurrent requests per model; nothing
   serialises one request behind another's whole scan. Grad-CAM runs on private copies of the networks.
5. Rows come from the scan's own row builder: an upload gets the verdict, warning or error ``fakescope scan``
   gives the same file.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import FormData, UploadFile

from .._version import __version__
from ..inference.contract import Scorer
from ..inference.scorer import Detector
from ..models import list_bundled
from .docs import ERRORS, EXPLAIN_BODY, EXPLAIN_RESPONSES, OPENAPI_URL, SCAN_BODY, ScanRow, add_docs
from .explain import PrivateNets, default_model, explain_upload, headers_for
from .forms import read_form
from .guard import MULTIPART_SLACK, Guard, Slots, error
from .limits import Limits, make_limits
from .pipeline import Engine, RequestRefused, jsonable, scan_files

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")


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


def _pick(form: FormData, app: FastAPI) -> tuple[list[Detector], float | None]:
    """The requested models (default: all) and threshold override from the form (400 for bad ones)."""
    names = [str(v) for v in form.getlist("model") if isinstance(v, str) and v.strip()]
    lookup: dict[str, Detector] = app.state.lookup
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise RequestRefused(400, f"unknown model {', '.join(map(repr, unknown))}; this server has: "
                                  f"{', '.join(d.name for d in app.state.detectors)}")
    dets = list({lookup[n].name: lookup[n] for n in names}.values()) if names else list(app.state.detectors)
    raw = form.get("threshold")
    threshold = None
    if isinstance(raw, str) and raw.strip():
        try:
            threshold = float(raw)
        except ValueError:
            raise RequestRefused(400, f"threshold must be a number in [0, 1], got {raw!r}") from None
        if not 0.0 <= threshold <= 1.0:
            raise RequestRefused(400, f"threshold must be in [0, 1], got {raw!r}")
    return dets, threshold


def _uploads(form: FormData) -> list[UploadFile]:
    """Every file part (any field name); an empty, unnamed part (a form sent with no file chosen) is skipped."""
    return [v for _k, v in form.multi_items() if isinstance(v, UploadFile) and (v.filename or (v.size or 0) > 0)]


def _refused(e: RequestRefused) -> JSONResponse:
    return error(e.status, e.detail, headers=e.headers, **e.extra)


def _add_work_routes(app: FastAPI, engine: Engine) -> None:
    """``POST /api/scan`` and ``POST /api/explain``."""
    nets = PrivateNets()
    smallest = min(d.image_size for d in app.state.detectors)

    @app.post("/api/scan", response_model=list[ScanRow], responses=ERRORS, openapi_extra=SCAN_BODY,
              summary="Scan images: one row per file per model")
    async def scan_endpoint(request: Request) -> Response:
        try:
            async with read_form(request, engine.limits, smallest) as form:
                chosen, threshold = _pick(form, app)
                ups = _uploads(form)
                if not ups:
                    raise RequestRefused(400, "no files uploaded: send one or more images as multipart/form-data "
                                              "file fields (e.g. curl -F files=@photo.jpg)")
                rows = await scan_files(engine, ups, chosen, threshold)
        except RequestRefused as e:
            return _refused(e)
        return JSONResponse(rows)

    @app.post("/api/explain", response_class=Response, responses=EXPLAIN_RESPONSES, openapi_extra=EXPLAIN_BODY,
              summary="Grad-CAM of one image's verdict, as a PNG")
    async def explain_endpoint(request: Request) -> Response:
        try:
            async with read_form(request, engine.limits, smallest) as form:
                chosen, threshold = _pick(form, app)
                ups = _uploads(form)
                if len(ups) != 1 or (len(chosen) != 1 and form.getlist("model")):
                    raise RequestRefused(400, "explain takes exactly one file (and at most one model)")
                model: Scorer = chosen[0] if form.getlist("model") else default_model(app.state.detectors)
                done = await explain_upload(engine, nets, ups[0], model, threshold)
        except RequestRefused as e:
            return _refused(e)
        return Response(done.png, media_type="image/png", headers=headers_for(done.row))


def _index_html() -> str:
    return (resources.files("fakescope.serve") / "static" / "index.html").read_text(encoding="utf-8")


def create_app(models: Sequence[str | Detector] | None = None, max_upload_mb: float | None = None,
               limits: Limits | None = None, **options: Any) -> FastAPI:
    """The app; models (bundled names, checkpoint paths or Detectors; default every bundled one) load now.

    ``limits`` (a ``Limits``) and ``options`` (its field names: ``max_pending=8``...) set the budgets and queues;
    ``max_upload_mb`` is one of them, kept as the second argument.
    """
    if max_upload_mb is not None:
        options["max_upload_mb"] = max_upload_mb
    lim = make_limits(limits, **options)
    dets, lookup = _load(models)
    engine = Engine(lim)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine.decoder.warm_up()
        yield
        engine.close()

    app = FastAPI(title="fakescope", version=__version__, docs_url=None, redoc_url=None, openapi_url=OPENAPI_URL,
                  lifespan=lifespan, description="Tell AI-generated from real images, and attacked from clean ones.")
    app.state.detectors, app.state.lookup, app.state.engine, app.state.limits = dets, lookup, engine, lim
    pending = Slots(lim.max_pending)
    app.state.pending = pending
    app.add_middleware(Guard, max_bytes=lim.max_upload_bytes + MULTIPART_SLACK, limit_mb=lim.max_upload_mb,
                       slots=pending, retry_after=lim.retry_after)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(_index_html(), headers={"Content-Security-Policy": CSP})

    @app.get("/api/health", summary="Liveness, loaded models, limits and load")
    async def health() -> dict[str, Any]:  # async: answered on the event loop, never queued for a thread
        return {"ok": True, "version": __version__, "models": [d.name for d in dets],
                "max_upload_bytes": lim.max_upload_bytes, "limits": lim.public(),
                "load": {"pending": pending.used, "heavy_pending": engine.heavy_slots.used,
                         "batches": engine.batcher.batches, "images_scored": engine.batcher.images}}

    @app.get("/api/models", summary="The loaded models: task, classes, threshold, test metrics")
    async def list_models() -> JSONResponse:
        return JSONResponse(jsonable([d.describe() for d in dets]))

    _add_work_routes(app, engine)
    add_docs(app)
    return app


__all__ = ["CSP", "create_app"]
