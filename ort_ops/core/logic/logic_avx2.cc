// Compiled with -mavx2: the fixed-width word loops of logic_impl.h become 256-bit bit ops
// (one gate = 256 samples); only called after run-time detection.
#include "logic_impl.h"

namespace steport::logic {
void ForwardAvx2(const NetPlan& p, const float* x, int64_t n, int64_t b, int64_t e, float* y) {
  impl::Forward<kWordsAvx2>(p, x, n, b, e, y);
}
}  // namespace steport::logic
