"""Model zoo: architectures by name, so a checkpoint can rebuild its model from
``{"arch": name, "kwargs": {...}}``. One module per family registers its models; every
model takes ``in_channels`` and ``num_classes``."""
from __future__ import annotations

from .zoo import build_model, count_parameters, model_names, register_model

# Family modules register their architectures on import.
from . import backbones  # noqa: F401  (reference shapes; family modules build on them)
from . import approx, binary, logic, quant, reference  # noqa: F401

__all__ = ["build_model", "count_parameters", "model_names", "register_model"]
