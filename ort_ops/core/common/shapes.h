// Convolution output size, the one C++ definition (docs/ops.md "Convolution output size"; the
// Python twin is steport.registry.shapes.conv_output_hw): per spatial axis
// out = (in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride + 1.
#pragma once
#include <cstdint>

namespace steport {

// -1 when the dilated kernel is larger than the padded input (callers refuse that: no empty
// output). Arguments are validated sizes (in >= 1, kernel >= 1, stride >= 1, dilation >= 1,
// pads >= 0).
inline int64_t ConvOutputSize(int64_t in, int64_t pad_begin, int64_t pad_end, int64_t kernel,
                              int64_t stride, int64_t dilation) {
  const int64_t span = in + pad_begin + pad_end - dilation * (kernel - 1) - 1;
  return span < 0 ? -1 : span / stride + 1;
}

}  // namespace steport
