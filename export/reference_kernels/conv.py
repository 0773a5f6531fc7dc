"""Convolution helpers shared by the binary and approx reference kernels: strided window
views, grouped im2col columns, attribute checks and the output size."""
from __future__ import annotations

import numpy as np

from steport.registry.shapes import conv_output_hw


def conv_windows(xp: np.ndarray, kh: int, kw: int, strides, dilations) -> np.ndarray:
    """Padded NCHW -> strided view [N, C, OH, OW, kh, kw] (no copy)."""
    dh, dw = dilations
    sh, sw = strides
    v = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                                                 axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def grouped_cols(win: np.ndarray, group: int) -> np.ndarray:
    """[N, C, OH, OW, kh, kw] -> [G, N*OH*OW, (C/G)*kh*kw] (channel-major, then kh, kw)."""
    n, c, oh, ow, kh, kw = win.shape
    cg = c // group
    v = win.reshape(n, group, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    return v.reshape(group, n * oh * ow, cg * kh * kw)


def conv_attrs(op: str, strides, pads, dilations, group: int):
    strides, pads, dilations = list(strides), list(pads), list(dilations)
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise ValueError(f"{op}: strides and dilations need 2 values, pads 4 [t, l, b, r]; got "
                         f"{strides}, {dilations}, {pads}")
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0 or group < 1:
        raise ValueError(f"{op}: bad strides {strides}, dilations {dilations}, pads {pads} or "
                         f"group {group}")
    return strides, pads, dilations


def out_hw(op: str, h: int, w: int, kh: int, kw: int, strides, pads, dilations):
    oh, ow = conv_output_hw(h, w, kh, kw, strides, pads, dilations)
    if (h + pads[0] + pads[2] < dilations[0] * (kh - 1) + 1
            or w + pads[1] + pads[3] < dilations[1] * (kw - 1) + 1):
        raise ValueError(f"{op}: kernel {kh}x{kw} (dilations {dilations}) larger than the padded "
                         f"input {h}x{w} + pads {pads}")
    return oh, ow
