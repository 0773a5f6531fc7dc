// One declaration per op family; register.cc calls them all. Adding a family: add its
// Register function here, list it in RegisterAllFamilies (families.cc) and in CMake.
#pragma once
#include "steport/glue.h"

namespace steport {
void RegisterQuantOps(OpSink& sink);
void RegisterBinaryOps(OpSink& sink);
void RegisterApproxOps(OpSink& sink);
void RegisterLogicOps(OpSink& sink);
void RegisterAllFamilies(OpSink& sink);
const char* BuildInfo();
}  // namespace steport
