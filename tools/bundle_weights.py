"""Copy a finished training run into the package as a bundled checkpoint, with its test metrics.

    python tools/bundle_weights.py NAME RUN_DIR --data CIFAKE_DIR --command "fakescope train ..."
    python tools/bundle_weights.py adversarial RUN_DIR --data ATTACKS_TEST_DIR --command "fakescope train ..."

The test metrics are measured here (``fakescope.evaluate``) on the data's test split and stored in the
checkpoint's JSON with the exact training command; ``weights/MANIFEST.json`` gets the SHA-256 of both files,
which ``load_checkpoint`` verifies every time a bundled model is loaded.

Adversarial runs: ``--data`` is an attack folder, or a folder of them (``fakescope attack --split test``), or a
folder whose ``test/`` holds them. Test originals also present (byte-identical) in the run's training data are
refused, so the figures never come from images the detector saw.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fakescope.data import load_dataset
from fakescope.data.attacksets import shared_originals
from fakescope.evaluation.evaluate import checkpoint_test_metrics, evaluate
from fakescope.io import sha256_file, write_json
from fakescope.models.checkpoint import bundled_dir


def fitted_on(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(data, split) every number of an adversarial run was fitted on; a guarded run: its residual's training
    data and its calibration folders."""
    guarded = doc.get("guarded_from")
    if guarded:
        res = json.loads(Path(guarded["residual"]).read_text())
        return [*fitted_on(res), (guarded["calibration"], "calib")]
    train_data = doc.get("train_config", {}).get("data")
    return [(train_data, "train")] if train_data else []


def check_disjoint(doc: dict[str, Any], test_data: str) -> None:
    """Adversarial runs: refuse test data whose originals appear in the data the run was fitted on."""
    size = doc["spec"]["image_size"]
    test = load_dataset(test_data, "adversarial", size, "test")
    for data, split in fitted_on(doc) or [(None, "train")]:
        if not data or not Path(data).exists():
            print(f"note: fitting data {data!r} not found; overlap with the test data not checked", file=sys.stderr)
            continue
        shared = shared_originals(load_dataset(data, "adversarial", size, split), test)
        if shared:
            raise SystemExit(f"{test_data}: {shared} test original(s) also appear in {data} ({split}); attack a "
                             "disjoint split (fakescope attack --split test --exclude ...)")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("run")
    ap.add_argument("--data", required=True, help="test data (adversarial: attack folder(s) of TEST images)")
    ap.add_argument("--command", required=True, help="the exact command that trained the run")
    ap.add_argument("--trained-on", dest="trained_on", help="where it trained (default: this machine and its threads)")
    args = ap.parse_args(argv)
    run, dst = Path(args.run), bundled_dir()
    doc = json.loads((run / "model.json").read_text())
    if doc["spec"]["task"] == "adversarial":
        check_disjoint(doc, args.data)
    metrics = evaluate(str(run / "model.json"), args.data, out=str(run / "eval-test"), split="test")
    shutil.copy(run / "model.safetensors", dst / f"{args.name}.safetensors")
    doc["weights_file"] = f"{args.name}.safetensors"
    doc["metrics"] = {**doc.get("metrics", {}), **checkpoint_test_metrics(metrics)}
    doc["train_command"] = args.command
    doc["test_data"] = str(args.data)
    doc["trained_on"] = args.trained_on or (f"{platform.machine()} {torch.get_num_threads()} threads, "
                                            f"torch {torch.__version__}")
    write_json(dst / f"{args.name}.json", doc)
    manifest_path = dst / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"checkpoints": {}}
    manifest["checkpoints"][args.name] = {"json_sha256": sha256_file(dst / f"{args.name}.json"),
                                          "weights_sha256": sha256_file(dst / f"{args.name}.safetensors")}
    write_json(manifest_path, manifest)
    print(f"bundled {args.name}: test accuracy {metrics['accuracy']:.4f} {metrics['accuracy_ci95']}")
    return metrics


if __name__ == "__main__":
    main()
