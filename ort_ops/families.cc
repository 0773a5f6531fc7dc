#include "steport/families.h"

#include <string>

#include "core/common/cpu.h"

namespace steport {

void RegisterAllFamilies(OpSink& sink) {
  RegisterQuantOps(sink);
  RegisterBinaryOps(sink);
  RegisterApproxOps(sink);
  RegisterLogicOps(sink);
}

const char* BuildInfo() {
  static const std::string info = [] {
    std::string s = "{\"best_isa\": \"";
    s += IsaName(BestIsa());
    s += AmxInt8Usable() ? "\", \"amx_int8\": true" : "\", \"amx_int8\": false";
#ifdef STEPORT_WITH_CUDA
    s += ", \"cuda\": true}";
#else
    s += ", \"cuda\": false}";
#endif
    return s;
  }();
  return info.c_str();
}

}  // namespace steport
