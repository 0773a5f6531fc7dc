"""nn.Module layers built on steport's ops, one module per family (each lists __all__)."""
from .approx import *  # noqa: F401,F403
from .binary import *  # noqa: F401,F403
from .logic import *  # noqa: F401,F403
from .logic_conv import *  # noqa: F401,F403
from .quant import *  # noqa: F401,F403
from . import approx, binary, logic, logic_conv, quant

__all__ = [*quant.__all__, *binary.__all__, *approx.__all__, *logic.__all__,
           *logic_conv.__all__]
