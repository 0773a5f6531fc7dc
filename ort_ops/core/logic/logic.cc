#include "logic_impl.h"

namespace steport::logic {
void ForwardPortable(const NetPlan& p, const float* x, int64_t n, int64_t b, int64_t e, float* y) {
  impl::Forward<kWordsPortable>(p, x, n, b, e, y);
}
}  // namespace steport::logic
