"""The one task table. Label 1 is always the thing we detect; a score is the calibrated probability of label 1.

``synthetic`` (REAL 0 / FAKE 1) and ``adversarial`` (clean 0 / attacked 1) are detection tasks with fixed class
names; ``classify`` (e.g. the CIFAR-10 victim) takes its classes from the data and is not a detector.
"""

from __future__ import annotations

TASKS: dict[str, list[str] | None] = {
    "synthetic": ["REAL", "FAKE"],
    "adversarial": ["clean", "attacked"],
    "classify": None,  # classes come from the data (class folders, CIFAR-10 batches, .npz labels)
}
DETECTION_TASKS = ("synthetic", "adversarial")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def check_task(task: str) -> str:
    """``task`` itself, or a ``ValueError`` naming the known tasks."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return task


def task_classes(task: str, data_classes: list[str] | None = None) -> list[str]:
    """The class names of ``task``: fixed for detection tasks, the data's own for ``classify``."""
    fixed = TASKS[check_task(task)]
    if fixed is not None:
        return list(fixed)
    if not data_classes:
        raise ValueError("task 'classify' takes its classes from the data; none were given")
    return list(data_classes)
