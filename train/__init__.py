"""steport.train: STE autograd ops, layers, models, data, training loops and recipes.
``steport.train.functional`` holds the Functions ported from torchapprox/bitorch/
bitorch-engine/torchlogix under their original names.

Importing it registers every ``steport::*`` torch custom op."""
from . import functional, ops  # noqa: F401  (ops registers the torch.library ops)
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers
from .models import build_model, register_model

__all__ = [*_layers, "build_model", "register_model"]
