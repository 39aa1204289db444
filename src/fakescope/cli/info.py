"""``fakescope models``: architectures and bundled checkpoints."""

from __future__ import annotations


def list_all() -> str:
    from ..models import MODELS, list_bundled, read_metadata

    lines = ["architectures:"]
    lines += [f"  {n:10s} {MODELS.describe(n)}" for n in MODELS.names()]
    lines.append("bundled checkpoints:")
    for name in list_bundled():
        meta = read_metadata(name)
        acc = meta.get("metrics", {}).get("test_accuracy")
        note = f"test accuracy {acc:.2%}" if isinstance(acc, float) else ""
        lines.append(f"  {name:10s} {meta['spec']['arch']:10s} task={meta['spec']['task']:12s} {note}")
    return "\n".join(lines)
