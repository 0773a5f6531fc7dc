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

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(steport::kPinnedOrtApiVersion);
  if (!api) return nullptr;  // cannot even report: onnxruntime older than our headers
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
