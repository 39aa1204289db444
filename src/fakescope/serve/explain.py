"""``POST /api/explain`` underneath: one upload → its scan row and a Grad-CAM overlay PNG titled with the verdict.

The file goes through the same budget, decoding and batched scoring as ``/api/scan`` (so the verdict, score and
warning are the scan's). Grad-CAM hooks a network and runs a backward pass, so it runs on a private copy of the
network, one per model, made on first use: scans never wait for it, and its hooks never meet a scan.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..inference.contract import Scorer
from ..scanning.output import Verdict
from .pipeline import Engine, RequestRefused, Workspace, score_rows


@dataclass
class Explained:
    """The PNG and the row it shows (``label``, ``score``, ``threshold``, ``warning``...)."""

    png: bytes
    row: Verdict


class PrivateNets:
    """A deep copy of each model's network for Grad-CAM, with a lock per copy (explains of one model take turns)."""

    def __init__(self) -> None:
        self._nets: dict[int, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def get(self, model: Scorer) -> tuple[Any, threading.Lock]:
        with self._lock:
            if id(model) not in self._nets:
                net = getattr(model, "net", None)
                if net is None:
                    raise RequestRefused(400, f"model {model.name!r} has no torch network to explain")
                self._nets[id(model)] = (copy.deepcopy(net), threading.Lock())
            return self._nets[id(model)]


def default_model(models: list[Scorer]) -> Scorer:
    """What explain uses when no model is named: the first AI-generated-image detector, else the first model."""
    return next((m for m in models if m.task == "synthetic"), models[0])


def render_png(nets: PrivateNets, model: Scorer, img: np.ndarray, row: Verdict, name: str) -> bytes:
    """Grad-CAM of ``row.label`` on a private copy of the network, drawn beside the image (as ``fakescope explain``)."""
    from ..explain import grad_cam
    from ..explain.render import _render, probs_are_binary, verdict_text

    net, lock = nets.get(model)
    img = np.array(img)  # writable copy
    with lock:
        heat = grad_cam(net, img[None], target=model.classes.index(row.label))[0]
    binary = probs_are_binary(model)
    verdict = verdict_text(model.classes, str(row.label), float(row.score or 0.0), row.threshold if binary else None)
    name = name.replace("\n", "\\n").replace("\r", "\\r")  # the name stays one line of the title
    title = f"{name if len(name) <= 60 else name[:57] + '...'} — {model.name}"
    if row.warning:
        title += "\n" + _wrap(row.warning, 80)
    with tempfile.TemporaryDirectory(prefix="fakescope-explain-") as tmp:
        png = os.path.join(tmp, "explain.png")
        _render(img, {"gradcam": heat}, verdict, binary and row.label == model.classes[1], title, png,  # type: ignore[arg-type]
                max(1, 256 // model.image_size))
        with open(png, "rb") as fh:
            return fh.read()


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


async def explain_upload(engine: Engine, nets: PrivateNets, upload: UploadFile, model: Scorer,
                         threshold: float | None) -> Explained:
    """The upload's row and PNG; 413/422/503 as ``RequestRefused`` (422 also for an unreadable image)."""
    name = upload.filename or "upload"
    ws = Workspace(engine, [upload], [model])
    try:
        await ws.prepare()
        size = model.image_size
        if ws.plans[size].refused:
            raise RequestRefused(422, ws.plans[size].refused[0], limit="max_file_pixels",
                                 allowed=engine.limits.max_file_pixels, path=name, model=model.name,
                                 error=ws.plans[size].refused[0])
        decoded = await ws.decoded(size)
        row = (await score_rows(engine, ws.paths, decoded, [model], threshold, size))[0]
        if row.error is not None or decoded[0][0] is None:
            raise RequestRefused(422, str(row.error), path=name, model=model.name, error=row.error)
        png = await run_in_threadpool(render_png, nets, model, decoded[0][0], row, name)
    finally:
        await ws.close()
    row.path = name
    return Explained(png, row)


def headers_for(row: Verdict) -> dict[str, str]:
    """The verdict in response headers (ASCII: anything else is escaped)."""
    def ascii_(text: str) -> str:
        return text.encode("ascii", "backslashreplace").decode("ascii")

    out = {"X-Fakescope-Label": ascii_(str(row.label)), "X-Fakescope-Score": f"{row.score:.6f}",
           "X-Fakescope-Model": ascii_(row.model), "Cache-Control": "no-store"}
    if row.threshold is not None:
        out["X-Fakescope-Threshold"] = f"{row.threshold:.6f}"
    if row.warning:
        out["X-Fakescope-Warning"] = ascii_(" ".join(row.warning.split()))
    return out


__all__ = ["Explained", "PrivateNets", "default_model", "explain_upload", "headers_for", "render_png"]
