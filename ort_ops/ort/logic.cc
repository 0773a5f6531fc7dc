// ai.steport.logic bindings (kernels land with the logic family).
#include "steport/families.h"

namespace steport {
void RegisterLogicOps(OpSink&) {}
}  // namespace steport
