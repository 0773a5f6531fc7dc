#include <array>

#include "logic_impl.h"

namespace steport::logic {

NetPlan MakePlan(const std::vector<int64_t>& sizes, const int64_t* idx_a, const int64_t* idx_b,
                 const uint8_t* gates, int64_t num_classes, float tau) {
  NetPlan p;
  p.num_classes = num_classes;
  p.tau = tau;
  std::vector<int32_t> prev_slot, slot;  // prev_slot empty: the inputs keep their order
  int64_t off = 0;
  for (size_t li = 0; li < sizes.size(); ++li) {
    const int64_t size = sizes[li];
    const bool grouped = li + 1 == sizes.size() && num_classes > 0;
    const int64_t group = grouped ? size / num_classes : size;  // units that stay together
    LayerPlan l;
    l.out_width = size;
    l.a.resize(size);
    l.b.resize(size);
    slot.assign(size, 0);
    auto in_slot = [&](int64_t i) {
      return prev_slot.empty() ? static_cast<int32_t>(i) : prev_slot[i];
    };
    // counting sort by gate id within each group; runs in gate-id order
    for (int64_t g0 = 0; g0 < size; g0 += group) {
      std::array<int64_t, 17> start{};
      for (int64_t j = g0; j < g0 + group; ++j) ++start[gates[off + j] + 1];
      for (int g = 0; g < 16; ++g) start[g + 1] += start[g];
      for (int g = 0; g < 16; ++g)
        if (start[g + 1] > start[g])
          l.runs.push_back({static_cast<int32_t>(g0 + start[g]),
                             static_cast<int32_t>(g0 + start[g + 1]), g});
      for (int64_t j = g0; j < g0 + group; ++j) {
        const int64_t q = g0 + start[gates[off + j]]++;
        slot[j] = static_cast<int32_t>(q);
        l.a[q] = in_slot(idx_a[off + j]);
        l.b[q] = in_slot(idx_b[off + j]);
      }
    }
    off += size;
    if (size > p.max_width) p.max_width = size;
    p.layers.push_back(std::move(l));
    prev_slot.swap(slot);
  }
  if (num_classes == 0) p.out_slot = std::move(prev_slot);
  return p;
}

template <int W>
void ForwardPortable(const NetPlan& p, const float* x, int64_t n, int64_t n_in, int64_t b,
                     int64_t e, float* y) {
  impl::Forward<W>(p, x, n, n_in, b, e, y);
}
template void ForwardPortable<1>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                                 int64_t, float*);
template void ForwardPortable<2>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                                 int64_t, float*);

Kernel SelectKernel(Isa isa, int64_t widest, int64_t n) {
  const int cap = isa == Isa::kAvx512 ? (widest <= 4096 ? 8 : 4) : isa == Isa::kAvx2 ? 4 : 2;
  int w = 1;
  while (w < cap && 64 * w < n) w *= 2;
  switch (isa) {
    case Isa::kAvx512:
      return w == 1 ? Kernel{ForwardAvx512<1>, 1} : w == 2 ? Kernel{ForwardAvx512<2>, 2}
             : w == 4 ? Kernel{ForwardAvx512<4>, 4} : Kernel{ForwardAvx512<8>, 8};
    case Isa::kAvx2:
      return w == 1 ? Kernel{ForwardAvx2<1>, 1} : w == 2 ? Kernel{ForwardAvx2<2>, 2}
                                                      : Kernel{ForwardAvx2<4>, 4};
    default:
      return w == 1 ? Kernel{ForwardPortable<1>, 1} : Kernel{ForwardPortable<2>, 2};
  }
}

}  // namespace steport::logic
