"""ai.steport.quant: activation quantizers."""
from .spec import Attr, OpSpec, Port

OPS = [
    OpSpec(
        family="quant", name="Pact", version=1,
        inputs=(Port("X", ("float",)),
                Port("alpha", ("float",), doc="clipping level, scalar (shape [] or [1]), > 0")),
        outputs=(Port("Y", ("float",)),),
        attrs=(Attr("bits", "int", lo=1, hi=16, doc="output bit width b"),),
        torch_op="steport::pact",
        translation="steport.export.quant:pact_translation",
        fallback="steport.export.quant:pact_function",
        kernels=("cpu", "cuda"),
        doc="y = round(clamp(x, 0, alpha) * s) / s, s = (2^b - 1) / alpha, round half to even; "
            "NaN propagates.",
    ),
]
