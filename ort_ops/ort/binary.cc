// ai.steport.binary bindings (kernels land with the binary family).
#include "steport/families.h"

namespace steport {
void RegisterBinaryOps(OpSink&) {}
}  // namespace steport
