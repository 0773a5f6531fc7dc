"""Every steport torch custom op, one module per family (importing registers them)."""
from . import quant  # noqa: F401
from . import binary, approx, logic  # noqa: F401,E401
