"""Every steport torch custom op, one module per family (importing registers them)."""
from . import quant  # noqa: F401
from . import binary, approx, logic  # noqa: F401,E401


def torch_overload(spec):
    """The torch OpOverload (``torch.ops.ns.name.default``) of a registry OpSpec, None for an
    export-only op. It lives here, not on OpSpec: the registry is the bottom layer and must
    not import train (importing this package has registered every op)."""
    if spec.torch_op is None:
        return None
    import torch

    ns, name = spec.torch_op.split("::")
    return getattr(getattr(torch.ops, ns), name).default
