"""steport.registry.shapes, the one Python statement of a conv's output size, against what
torch's conv2d actually produces (an independent reference) on asymmetric pads, strides and
dilations, and its refusal edge (a kernel larger than the padded input gives a size < 1)."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from steport.registry.shapes import conv_output_hw, conv_output_size


def _torch_hw(h, w, kh, kw, strides, pads, dilations):
    x = F.pad(torch.zeros(1, 1, h, w), (pads[1], pads[3], pads[0], pads[2]))
    return tuple(F.conv2d(x, torch.zeros(1, 1, kh, kw), stride=strides,
                          dilation=dilations).shape[2:])


@pytest.mark.parametrize("h, w, kh, kw", [(7, 5, 3, 2), (1, 9, 1, 4), (12, 12, 5, 5)])
def test_conv_output_hw_matches_torch_conv2d(h, w, kh, kw):
    checked = 0
    for sh, sw, dh, dw in itertools.product((1, 2, 3), (1, 2), (1, 2), (1, 3)):
        for pads in ((0, 0, 0, 0), (1, 0, 2, 1), (2, 3, 0, 1)):
            strides, dilations = (sh, sw), (dh, dw)
            oh, ow = conv_output_hw(h, w, kh, kw, strides, pads, dilations)
            if oh < 1 or ow < 1:  # torch refuses these; the ops do too
                with pytest.raises(RuntimeError):
                    _torch_hw(h, w, kh, kw, strides, pads, dilations)
                continue
            assert (oh, ow) == _torch_hw(h, w, kh, kw, strides, pads, dilations), (
                strides, pads, dilations)
            checked += 1
    assert checked > 20  # most combinations fit


def test_conv_output_size_edge():
    # kernel extent d*(k-1)+1 equal to the padded size: one output; one more: none
    assert conv_output_size(5, 3, 1, 0, 0, 2) == 1
    assert conv_output_size(4, 3, 1, 0, 0, 2) == 0
    assert conv_output_size(4, 3, 1, 1, 0, 2) == 1
    assert conv_output_size(10, 1, 3, 0, 0) == 4  # floor((10 - 1) / 3) + 1
