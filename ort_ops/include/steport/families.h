// One Register function per op family; register.cc calls them all through
// RegisterAllFamilies. The family list is the registry's (STEPORT_FAMILIES in the generated
// steport/spec.h): a new family adds its registry module and its ort/<family>.cc defining
// Register<Family>Ops, and nothing here.
#pragma once
#include "steport/glue.h"
#include "steport/spec.h"

namespace steport {
#define STEPORT_DECLARE_REGISTER(Family) void Register##Family##Ops(OpSink& sink);
STEPORT_FAMILIES(STEPORT_DECLARE_REGISTER)
#undef STEPORT_DECLARE_REGISTER
void RegisterAllFamilies(OpSink& sink);
// JSON: best ISA, AMX, whether CUDA was built and the ops registered for CUDA.
const char* BuildInfo();
}  // namespace steport
