"""Copy a finished training run into the package as a bundled checkpoint, with its test metrics.

    python tools/bundle_weights.py NAME RUN_DIR --data CIFAKE_DIR --command "fakescope train ..."

The test metrics are measured here (``fakescope.evaluate``) on the data's test split and stored in the
checkpoint's JSON with the exact training command; ``weights/MANIFEST.json`` gets the SHA-256 of both files,
which ``load_checkpoint`` verifies every time a bundled model is loaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

from fakescope.evaluation import evaluate
from fakescope.io import sha256_file, write_json
from fakescope.models.checkpoint import bundled_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("run")
    ap.add_argument("--data", required=True)
    ap.add_argument("--command", required=True, help="the exact command that trained the run")
    args = ap.parse_args()
    run, dst = Path(args.run), bundled_dir()
    metrics = evaluate(str(run / "model.json"), args.data, out=str(run / "eval-test"), split="test")
    doc = json.loads((run / "model.json").read_text())
    shutil.copy(run / "model.safetensors", dst / f"{args.name}.safetensors")
    doc["weights_file"] = f"{args.name}.safetensors"
    doc["metrics"] = {**doc.get("metrics", {}), "test_accuracy": metrics["accuracy"],
                      "test_accuracy_ci95": metrics["accuracy_ci95"], "test_roc_auc": metrics["roc_auc"],
                      "test_size": metrics["n"]}
    doc["train_command"] = args.command
    doc["trained_on"] = f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}"
    write_json(dst / f"{args.name}.json", doc)
    manifest_path = dst / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"checkpoints": {}}
    manifest["checkpoints"][args.name] = {"json_sha256": sha256_file(dst / f"{args.name}.json"),
                                          "weights_sha256": sha256_file(dst / f"{args.name}.safetensors")}
    write_json(manifest_path, manifest)
    print(f"bundled {args.name}: test accuracy {metrics['accuracy']:.4f} {metrics['accuracy_ci95']}")


if __name__ == "__main__":
    main()
