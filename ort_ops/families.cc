#include "steport/families.h"

#include <string>

#include "core/common/cpu.h"

namespace steport {
namespace {

// Collects "domain::name" of every op registered for the CUDA execution provider, so tests
// can compare the bindings with the registry's kernels field (tests/ort_ops/test_library.py).
struct CudaOpList : OpSink {
  std::string json;
  void Add(const char* domain, OrtCustomOp* op) override {
    const char* ep = op->GetExecutionProviderType(op);
    if (!ep || std::string(ep) != "CUDAExecutionProvider") return;
    if (!json.empty()) json += ", ";
    json += std::string("\"") + domain + "::" + op->GetName(op) + "\"";
  }
};

}  // namespace

void RegisterAllFamilies(OpSink& sink) {
#define STEPORT_CALL_REGISTER(Family) Register##Family##Ops(sink);
  STEPORT_FAMILIES(STEPORT_CALL_REGISTER)
#undef STEPORT_CALL_REGISTER
}

const char* BuildInfo() {
  static const std::string info = [] {
    std::string s = "{\"best_isa\": \"";
    s += IsaName(BestIsa());
    s += AmxInt8Usable() ? "\", \"amx_int8\": true" : "\", \"amx_int8\": false";
#ifdef STEPORT_WITH_CUDA
    s += ", \"cuda\": true";
#else
    s += ", \"cuda\": false";
#endif
    CudaOpList cuda_ops;
    RegisterAllFamilies(cuda_ops);
    s += ", \"cuda_ops\": [" + cuda_ops.json + "]}";
    return s;
  }();
  return info.c_str();
}

}  // namespace steport
