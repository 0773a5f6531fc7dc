"""steport.train: STE autograd ops, layers, models, data, training loops and recipes.

Importing it registers every ``steport::*`` torch custom op."""
from . import ops  # noqa: F401  (registers the torch.library ops)
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers
from .models import build_model, register_model

__all__ = [*_layers, "build_model", "register_model"]
