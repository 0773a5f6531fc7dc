"""ai.steport.binary: XNOR-popcount GEMM and conv on sign-binarized inputs (docs/binary.md).

Conventions (docs/binary.md "Conventions"): sign(0) = +1; bit 1 = +1; bits packed LSB first along the
reduction axis into uint64 words; dot = K - 2 * popcount(a XOR b); tail bits of a packed
weight word are ignored. Scale and bias are applied after the integer dot, in that order:
y = float(dot) * scale + bias (two roundings, never fused)."""
from .spec import Attr, OpSpec, Port

# |dot| <= K must be exactly representable in float32.
MAX_K = 1 << 24

OPS = [
    OpSpec(
        family="binary", name="BinaryGemm", version=1,
        inputs=(Port("A", ("float",), doc="activations [..., K]; binarized inside the op"),
                Port("B", ("uint64",), doc="packed sign(W): [N, ceil(K/64)], bit k%64 of word "
                                          "k//64 is weight k (1 = +1)"),
                Port("scale", ("float",), doc="per-output scale [N] (ones for none)"),
                Port("bias", ("float",), doc="per-output bias [N] (zeros for none)")),
        outputs=(Port("Y", ("float",), doc="[..., N]"),),
        attrs=(Attr("k", "int", lo=1, hi=MAX_K, doc="true reduction length K = A.shape[-1]"),),
        torch_op="steport::binary_gemm",
        translation="steport.export.binary:binary_gemm_translation",
        fallback="steport.export.binary:binary_gemm_function",
        kernels=("cpu", "cuda"),
        doc="Y = (K - 2*popcount(pack(sign(A)) XOR B)) * scale + bias",
    ),
    OpSpec(
        family="binary", name="BinaryConv2d", version=1,
        inputs=(Port("X", ("float",), doc="NCHW activations; binarized inside the op"),
                Port("W", ("uint64",), doc="packed sign(weights), channels-last per tap: "
                                          "[C_out, KH, KW, ceil((C_in/group)/64)]"),
                Port("scale", ("float",), doc="per-output-channel scale [C_out]"),
                Port("bias", ("float",), doc="per-output-channel bias [C_out]")),
        outputs=(Port("Y", ("float",), doc="NCHW [N, C_out, OH, OW]"),),
        attrs=(Attr("kernel_shape", "ints", default=None, lo=1, hi=64,
                    doc="[KH, KW]; must match W (optional)"),
               Attr("strides", "ints", default=(1, 1), lo=1, hi=1 << 16),
               Attr("pads", "ints", default=(0, 0, 0, 0), lo=0, hi=1 << 16,
                    doc="[top, left, bottom, right]"),
               Attr("dilations", "ints", default=(1, 1), lo=1, hi=1 << 16),
               Attr("group", "int", default=1, lo=1, hi=1 << 20),
               Attr("pad_value", "int", default=0, lo=-1, hi=1,
                    doc="value of padded taps after binarization: 0 (= PyTorch conv2d zero "
                        "padding of sign(x)), -1 or +1")),
        torch_op="steport::binary_conv2d",
        translation="steport.export.binary:binary_conv2d_translation",
        fallback="steport.export.binary:binary_conv2d_function",
        kernels=("cpu",),
        doc="Y = conv2d(pad(sign(X), pad_value), sign(W)) * scale + bias, integer dot by "
            "XNOR-popcount",
    ),
]
