"""Write ``tests/golden/bundled_scores.json``: every bundled model's calibrated scores on the bundled samples.

Run once before a change that must not move any score (``python tools/make_golden.py``); the golden test
(``tests/test_golden.py``) then pins the scores of both inference engines to these figures.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from fakescope import load_detector, scan
from fakescope.data import decode_image
from fakescope.models import list_bundled

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden" / "bundled_scores.json"


def sample_files() -> list[Path]:
    root = Path(str(resources.files("fakescope") / "samples"))
    return sorted(root.glob("*/*.jpg"))


def main() -> None:
    files = sample_files()
    images = np.stack([decode_image(f, 32)[0] for f in files])
    doc = {"files": [f"{f.parent.name}/{f.name}" for f in files], "scores": {}}
    for name in list_bundled():
        doc["scores"][name] = np.round(load_detector(name).scores(images).astype(np.float64), 9).tolist()
    root = files[0].parent.parent
    doc["onnx_scan_scores"] = {}
    for name in ("fast", "fast-robust", "best"):  # the architectures the ONNX engine builds
        by_path = {str(Path(r.path).relative_to(root)): r.score for r in scan([str(root)], name, engine="onnx")}
        doc["onnx_scan_scores"][name] = [by_path[f] for f in doc["files"]]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
