// The one registration point: ORT calls RegisterCustomOps when the library is loaded with
// SessionOptions.register_custom_ops_library. Every family adds its ops through OpSink.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "steport/families.h"
#include "steport/glue.h"

namespace {

struct DomainSink : steport::OpSink {
  std::map<std::string, Ort::CustomOpDomain>* domains;
  void Add(const char* domain, OrtCustomOp* op) override {
    auto it = domains->find(domain);
    if (it == domains->end()) it = domains->emplace(domain, Ort::CustomOpDomain(domain)).first;
    it->second.Add(op);
  }
};

// Domains must outlive every session that uses them: keep them for the process lifetime.
std::map<std::string, Ort::CustomOpDomain>& Domains() {
  static auto* d = new std::map<std::string, Ort::CustomOpDomain>();
  return *d;
}

// An onnxruntime older than the C API we pin (1.21) answers GetApi(kPinnedOrtApiVersion)
// with nullptr. Returning nullptr from RegisterCustomOps would tell ORT "registered" with no
// op in it, and every model would silently run its slow fallback bodies: refuse instead.
// The status is made through API version 1, which every onnxruntime serves, and whose first
// entry (CreateStatus) keeps its place in every later version (the C API only appends).
OrtStatus* OrtTooOld(const OrtApiBase* api_base) {
  const OrtApi* v1 = api_base->GetApi(1);
  if (!v1) return nullptr;  // not an onnxruntime we can talk to at all: nothing to report with
  const char* have = api_base->GetVersionString ? api_base->GetVersionString() : nullptr;
  std::string msg = "steport RegisterCustomOps: libsteport_ops needs onnxruntime >= 1.21 (C API "
                    "version " + std::to_string(steport::kPinnedOrtApiVersion) +
                    "); this onnxruntime is " + (have ? have : "older") +
                    ". Upgrade onnxruntime (steport is tested with the version in pyproject.toml).";
  return v1->CreateStatus(ORT_NOT_IMPLEMENTED, msg.c_str());
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(steport::kPinnedOrtApiVersion);
  if (!api) return OrtTooOld(api_base);
  Ort::InitApi(api);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return steport::Guard("steport RegisterCustomOps", [&] {
    auto& domains = Domains();
    if (domains.empty()) {
      DomainSink sink;
      sink.domains = &domains;
      steport::RegisterAllFamilies(sink);
    }
    Ort::UnownedSessionOptions so(options);
    for (auto& [name, dom] : domains) so.Add(dom);
  });
}

// Used by tests and `steport.ort_ops.info()`: which SIMD path and CUDA support were built.
__attribute__((visibility("default"))) const char* SteportBuildInfo() {
  return steport::BuildInfo();
}

}  // extern "C"
