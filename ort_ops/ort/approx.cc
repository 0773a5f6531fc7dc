// ai.steport.approx bindings (kernels land with the approx family).
#include "steport/families.h"

namespace steport {
void RegisterApproxOps(OpSink&) {}
}  // namespace steport
