"""ai.steport.approx: integer matmul/conv whose products come from an approximate multiplier.

A multiplier is a 256x256 int32 table LUT[a][b], a = activation code (uint8), b = weight
code as its uint8 bit pattern (two's complement of the int8), in this order for every op
(docs/approx.md "The multiplier"). Results are int32; sums wrap modulo
2^32 like int32 arithmetic (never reached by 8-bit multipliers at realistic K)."""
from .spec import Attr, OpSpec, Port

_LUT = Port("lut", ("int32",), doc="int32 [256, 256] (or [65536]) table LUT[a][b], a = activation "
                                   "code, b = weight code as uint8 bit pattern")

# The LUT-sum inputs, the same for the int32 ops and their requantizing forms.
_A = Port("A", ("uint8",), doc="activation codes [..., M, K]")
_B = Port("B", ("int8",), doc="weight codes [K, N]")
_A_ZP = Port("a_zero_point", ("uint8",), optional=True,
             doc="activation zero point, scalar ([] or [1]); default 0")
_X = Port("X", ("uint8",), doc="activation codes NCHW")
_W = Port("W", ("int8",), doc="weight codes [C_out, C_in / group, kH, kW]")
_X_ZP = Port("x_zero_point", ("uint8",), optional=True,
             doc="activation zero point, scalar ([] or [1]); default 0; padding stands for this "
                 "code (real 0)")

_CONV_ATTRS = (
    Attr("strides", "ints", default=[1, 1], lo=1, hi=64, doc="[sH, sW]"),
    Attr("pads", "ints", default=[0, 0, 0, 0], lo=0, hi=1024, doc="[top, left, bottom, right]"),
    Attr("dilations", "ints", default=[1, 1], lo=1, hi=64, doc="[dH, dW]"),
    Attr("group", "int", default=1, lo=1, hi=1 << 20, doc="groups; C_in and C_out divisible by it"),
)
# The requantization of ApproxQLinearConv / ApproxQLinearMatMul (docs/ops.md "Integer models").
_BIAS = Port("bias", ("int32",), doc="int32 [C_out], added to the LUT sums (wrapping)")
_MULT = Port("multiplier", ("float",),
             doc="fp32 [C_out] or [1]: x_scale * w_scale[c] / y_scale; finite, any sign")
_Y_ZP = Port("y_zero_point", ("uint8",), optional=True,
             doc="output zero point, scalar ([] or [1]); default 0")
_REQUANT_DOC = ("code = sat_u8(round_half_even(fp32(acc + bias[c]) * multiplier[c]) + y_zp), "
                "acc the int32 LUT sum (wrapping)")

OPS = [
    OpSpec(
        family="approx", name="ApproxMatMulInteger", version=1,
        inputs=(_A, _B, _LUT, _A_ZP),
        outputs=(Port("Y", ("int32",), doc="[..., M, N]"),),
        torch_op="steport::approx_matmul_integer",
        translation="steport.export.approx:matmul_translation",
        fallback="steport.export.approx:matmul_function",
        kernels=("cpu", "cuda"),
        doc="Y[..., m, n] = sum_k LUT[A[..., m, k], uint8(B[k, n])] - a_zp * sum_k B[k, n] "
            "(int32).",
    ),
    OpSpec(
        family="approx", name="ApproxConvInteger", version=1,
        inputs=(_X, _W, _LUT, _X_ZP),
        outputs=(Port("Y", ("int32",), doc="[N, C_out, H_out, W_out]"),),
        attrs=_CONV_ATTRS,
        torch_op="steport::approx_conv_integer",
        translation="steport.export.approx:conv_translation",
        fallback="steport.export.approx:conv_function",
        kernels=("cpu",),
        doc="2-D convolution over codes: each tap adds LUT[x, uint8(w)] - x_zp * w; padded "
            "taps use x = x_zp (int32).",
    ),
    # Fused deployment ops: a LUT layer with its requantization (and a following max-pool)
    # in one node, uint8 codes in and out like QLinearConv / QGemm. Only the integer export
    # builds them (no torch op); the integer reference is export/integer.py.
    OpSpec(
        family="approx", name="ApproxQLinearMatMul", version=1,
        inputs=(_A, _B, _LUT, _BIAS, _MULT, _A_ZP, _Y_ZP),
        outputs=(Port("Y", ("uint8",), doc="[..., M, N] codes"),),
        torch_op=None,
        translation=None,
        fallback="steport.export.approx:qlinear_matmul_function",
        kernels=("cpu",),
        doc="ApproxMatMulInteger, then per column n " + _REQUANT_DOC + ".",
    ),
    OpSpec(
        family="approx", name="ApproxQLinearConv", version=1,
        inputs=(_X, _W, _LUT, _BIAS, _MULT, _X_ZP, _Y_ZP),
        outputs=(Port("Y", ("uint8",), doc="[N, C_out, H_pool, W_pool] codes"),),
        attrs=_CONV_ATTRS + (
            Attr("pool_kernel", "ints", default=[1, 1], lo=1, hi=64,
                 doc="max-pool window [kH, kW] over the output codes; [1, 1] with unit "
                     "strides and no pads: no pool"),
            Attr("pool_strides", "ints", default=[1, 1], lo=1, hi=64, doc="[sH, sW]"),
            Attr("pool_pads", "ints", default=[0, 0, 0, 0], lo=0, hi=63,
                 doc="[top, left, bottom, right], each < the window on its axis "
                     "(padding never wins the max)")),
        torch_op=None,
        translation=None,
        fallback="steport.export.approx:qlinear_conv_function",
        kernels=("cpu",),
        doc="ApproxConvInteger, then per channel c " + _REQUANT_DOC + ", then MaxPool "
            "(floor mode) over the codes.",
    ),
]
