"""fakescope: tell AI-generated from real images, and adversarially attacked from clean ones.

Public API (every CLI command is one of these functions)::

    from fakescope import load_detector, scan, train, evaluate, reproduce_cifake
    det = load_detector("fast")           # bundled model, or a path to NAME.json / NAME.safetensors
    rows = scan(["photos/"], "fast")      # one Verdict per file: label, calibrated score, error, warning
"""

__version__ = "0.1.0"

from .config import TrainConfig, resolve_config  # noqa: E402
from .detector import Detector, load_detector  # noqa: E402
from .scanning import Verdict, scan  # noqa: E402
from .training import fit  # noqa: E402


def train(config: TrainConfig | None = None, **kwargs: object) -> dict:
    """Train from a ``TrainConfig`` or keyword arguments (the same names as ``fakescope train`` flags)."""
    return fit(config or resolve_config(**kwargs))


def evaluate(model: str, data: str, **kwargs: object) -> dict:
    """Metrics of ``model`` on a labelled dataset (see ``fakescope.evaluate.evaluate``)."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(model, data, **kwargs)


def reproduce_cifake(data: str, **kwargs: object) -> dict:
    """The seed notebook's CIFAKE experiment, then ours (see ``fakescope.reproduce``)."""
    from .reproduce import reproduce_cifake as _reproduce

    return _reproduce(data, **kwargs)


__all__ = ["Detector", "TrainConfig", "Verdict", "__version__", "evaluate", "fit", "load_detector",
           "reproduce_cifake", "resolve_config", "scan", "train"]
