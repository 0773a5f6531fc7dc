"""Output sizes the ops' specifications define (docs/ops.md), in plain Python ints.

Neutral on purpose (no torch, no numpy): the torch fake kernels (where sizes may be symbolic
ints), the numpy reference kernels and the serving path's memory estimate all call these, so
the formula is written once on the Python side."""
from __future__ import annotations

from typing import Sequence


def conv_output_size(size, kernel, stride, pad_begin, pad_end, dilation=1):
    """One spatial axis of a convolution, as ONNX Conv and torch conv2d define it:
    floor((size + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1.

    Not clamped: a kernel larger than the padded input gives a result < 1, which callers
    report (or clamp) as their op requires."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_hw(h, w, kh, kw, strides: Sequence, pads: Sequence,
                   dilations: Sequence) -> tuple:
    """(OH, OW) of a 2-D convolution; pads in ONNX order [top, left, bottom, right]."""
    return (conv_output_size(h, kh, strides[0], pads[0], pads[2], dilations[0]),
            conv_output_size(w, kw, strides[1], pads[1], pads[3], dilations[1]))
