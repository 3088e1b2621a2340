"""Text classifier of citizen messages (domain / category / kind of the guide) with calibrated confidence.

Inference needs numpy only; training (``services.dispatch.classifier.train``) needs scikit-learn. ``Model`` and
``Prediction`` are imported on first use, so that loading the command line does not load numpy.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.dispatch.classifier.labels import LabelError, Level, Lineage, Taxonomy

if TYPE_CHECKING:
    from services.dispatch.classifier.model import Model, ModelFileError, Prediction

MODELS_DATA = Path(__file__).resolve().parent.parent / "models_data"

__all__ = [
    "LabelError",
    "Level",
    "Lineage",
    "Model",
    "ModelFileError",
    "Prediction",
    "Taxonomy",
    "default_model_path",
]


def default_model_path() -> Path:
    """The shipped model, trained on the guide's own texts only (``jiesu model train --guide-only``)."""
    return MODELS_DATA / "default_model.npz"


def __getattr__(name: str) -> Any:
    if name in {"Model", "ModelFileError", "Prediction"}:
        return getattr(importlib.import_module("services.dispatch.classifier.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
