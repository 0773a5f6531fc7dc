"""logic models (registered with @register_model)."""
from __future__ import annotations

from . import register_model  # noqa: F401
