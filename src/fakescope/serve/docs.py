"""The API's documentation: request and response schemas for the OpenAPI document, and the ``/docs`` page.

The endpoints read their multipart forms themselves (any file field name, this server's own limits and
messages), so their request bodies are declared here. ``/docs`` is Swagger UI served from this server's own
files when the ``fastapi-offline`` package (which ships them) is installed, else a plain page generated from the
schema: never a CDN, the app works offline. The schema itself is at ``/api/openapi.json``.
"""

from __future__ import annotations

import html
import importlib.util
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

OPENAPI_URL = "/api/openapi.json"
ASSETS = "/docs/assets"

_FILE = {"type": "string", "format": "binary"}
_MODEL = {"type": "array", "items": {"type": "string"},
          "description": "model name (repeatable); default: every model this server loaded (GET /api/models)"}
_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 1,
              "description": "decision threshold on P(label 1), in [0, 1]; default: each model's calibrated one"}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}}


SCAN_BODY = _body({"files": {"type": "array", "items": _FILE,
                             "description": "one or more images (any field name is accepted)"},
                   "model": _MODEL, "threshold": _THRESHOLD}, ["files"])
EXPLAIN_BODY = _body({"file": {**_FILE, "description": "one image"},
                      "model": {"type": "string", "description": "one model name; default: the first AI-generated "
                                                                 "image detector loaded (e.g. fast)"},
                      "threshold": _THRESHOLD}, ["file"])


class Error(BaseModel):
    detail: str = Field(description="what went wrong, for people")
    limit: str | None = Field(None, description="the server limit that refused the request, if one did")
    retry_after: int | None = Field(None, description="503 only: seconds to wait (also the Retry-After header)")


class ScanRow(BaseModel):
    """One file and one model: the fields of ``fakescope scan --json``."""

    path: str = Field(description="the upload's file name")
    task: str = Field(description="synthetic (REAL/FAKE), adversarial (clean/attacked) or classify")
    label: str | None = Field(description="the verdict; null when the file could not be read")
    score: float | None = Field(description="calibrated P(label 1) (classify: the top class's probability)")
    threshold: float | None
    model: str
    error: str | None = Field(description="why this file has no verdict")
    warning: str | None = Field(description="why this verdict may say little (size, JPEG...)")


ERRORS = {400: {"model": Error, "description": "bad form: no file, unknown model, bad threshold"},
          413: {"model": Error, "description": "over a limit: body size, file count or pixels to decode"},
          503: {"model": Error, "description": "busy: a queue is full; retry after Retry-After seconds"}}
EXPLAIN_RESPONSES = {200: {"content": {"image/png": {}}, "description": "the image beside its Grad-CAM overlay; "
                           "the verdict also in the X-Fakescope-Label/-Score/-Threshold/-Model/-Warning headers"},
                     422: {"description": "the image cannot be read or is over the per-file pixel limit: "
                           "{path, model, error, detail}"}, **ERRORS}


def _offline_assets() -> Any | None:
    if importlib.util.find_spec("fastapi_offline") is None:
        return None
    folder = resources.files("fastapi_offline") / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _plain_page(app: FastAPI) -> str:
    """The schema as a plain HTML list of endpoints and their form fields (no script, nothing remote)."""
    items = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            schema = (op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {}))
            fields = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v.get('description', ''))}</li>"
                             for k, v in schema.get("properties", {}).items())
            items.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2><p>"
                         f"{html.escape(op.get('summary', ''))}</p><ul>{fields}</ul>")
    name = html.escape(app.title)
    return (f"<!doctype html><meta charset=utf-8><title>{name} API</title><h1>{name} API</h1><p>OpenAPI schema: "
            f"<a href='{OPENAPI_URL}'>{OPENAPI_URL}</a> (Swagger UI here needs "
            "<code>pip install fastapi-offline</code>)</p>" + "".join(items))


def add_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI from local files, or the plain page."""
    assets = _offline_assets()
    if assets is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(_plain_page(app))
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png")


__all__ = ["ERRORS", "EXPLAIN_BODY", "EXPLAIN_RESPONSES", "OPENAPI_URL", "SCAN_BODY", "ScanRow", "add_docs"]
