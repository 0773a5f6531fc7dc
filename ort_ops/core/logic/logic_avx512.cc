// Compiled with -mavx512f...: the word loops of logic_impl.h become 512-bit bit ops (one
// gate = 512 samples per instruction); only called after run-time detection.
#include "logic_impl.h"

namespace steport::logic {
void ForwardAvx512(const NetPlan& p, const float* x, int64_t n, int64_t b, int64_t e, float* y) {
  impl::Forward<kWordsAvx512>(p, x, n, b, e, y);
}
}  // namespace steport::logic
