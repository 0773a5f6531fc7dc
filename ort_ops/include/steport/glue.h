// Runtime glue shared by every op binding: error handling, attribute and input checks,
// ORT thread-pool parallel-for. Kernels in core/ never include this (they take raw pointers).
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "steport/spec.h"

namespace steport {

// GetApi version we pin: the header version we build against (1.21). ORT keeps older
// API versions working, so one library loads in every onnxruntime from 1.21 up.
constexpr uint32_t kPinnedOrtApiVersion = 21;

// Thrown by bindings for bad models/inputs; becomes an ORT status with a clear message.
struct OpError : std::runtime_error {
  OrtErrorCode code;
  explicit OpError(const std::string& m, OrtErrorCode c = ORT_INVALID_ARGUMENT)
      : std::runtime_error(m), code(c) {}
};

template <typename... Args>
[[noreturn]] inline void Fail(const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw OpError(os.str());
}

template <typename... Args>
inline void Check(bool ok, const Args&... parts) {
  if (!ok) Fail(parts...);
}

// Runs f() and converts any exception into an OrtStatus (never lets one cross into ORT).
template <typename F>
OrtStatusPtr Guard(const char* where, F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const OpError& e) {
    return Ort::GetApi().CreateStatus(e.code, (std::string(where) + ": " + e.what()).c_str());
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(),
                                      (std::string(where) + ": " + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (std::string(where) + ": out of memory").c_str());
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (std::string(where) + ": " + e.what()).c_str());
  } catch (...) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (std::string(where) + ": unknown error").c_str());
  }
}

// ---- attributes ---------------------------------------------------------------------
// Every reader refuses an attribute present with another type than it reads (an int `tau`
// for a float attribute, a single int for a list): a mismatch is a model error, never a
// silent default (docs/ops.md "Attributes"). A reader with `dflt` returns it when absent.
enum class AttrType { kAbsent, kInt, kFloat, kString, kInts, kFloats, kOther };
// kOther: present but neither a scalar nor a non-empty int/float list (an empty list, a
// tensor, a graph).
AttrType AttrTypeOf(const OrtKernelInfo* info, const char* name);
int64_t AttrInt(const OrtKernelInfo* info, const char* name);
int64_t AttrInt(const OrtKernelInfo* info, const char* name, int64_t dflt);
int64_t AttrIntIn(const OrtKernelInfo* info, const char* name, int64_t lo, int64_t hi);
int64_t AttrIntIn(const OrtKernelInfo* info, const char* name, int64_t lo, int64_t hi,
                  int64_t dflt);
float AttrFloat(const OrtKernelInfo* info, const char* name, float dflt);
std::vector<int64_t> AttrInts(const OrtKernelInfo* info, const char* name,
                              std::vector<int64_t> dflt);
// AttrInts with exactly `count` values, each in [lo, hi] (conv strides, pads, windows).
std::vector<int64_t> AttrIntsIn(const OrtKernelInfo* info, const char* name, size_t count,
                                std::vector<int64_t> dflt, int64_t lo, int64_t hi);
std::string AttrString(const OrtKernelInfo* info, const char* name, std::string dflt);
// A registry `ints` default (spec.h k<Attr>Default[]) as the vector AttrInts takes.
template <size_t N>
std::vector<int64_t> IntsDefault(const int64_t (&dflt)[N]) {
  return std::vector<int64_t>(dflt, dflt + N);
}
std::string NodeName(const OrtKernelInfo* info);

// ---- inputs -------------------------------------------------------------------------
const char* TypeName(ONNXTensorElementDataType t);
// A shape for error messages, "[2, 3]". Formatted only when streamed: Check(ok, ..., ShapeStr(x))
// evaluates its arguments on every call, and an ostringstream per check cost ~0.25 us (the
// per-channel size() checks of one 512-channel node took 120 us per run).
struct ShapeStr {
  const std::vector<int64_t>& s;
  explicit ShapeStr(const std::vector<int64_t>& shape) : s(shape) {}
  std::string str() const;
};
std::ostream& operator<<(std::ostream& os, const ShapeStr& shape);
int64_t NumElements(const std::vector<int64_t>& s);

// Typed view of an input; checks the element type (ORT checks the declared type but our
// ops declare some inputs as "any type" to give better messages).
struct InputView {
  Ort::ConstValue value;
  std::vector<int64_t> shape;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  bool present = false;
  template <typename T>
  const T* data() const { return value.GetTensorData<T>(); }
  int64_t size() const { return NumElements(shape); }
};
InputView GetInput(Ort::KernelContext& ctx, size_t i, const char* name);
// Optional input: absent when the node leaves it empty or the input count is short.
InputView GetOptionalInput(Ort::KernelContext& ctx, size_t i, const char* name);
// The same by registry port (spec.h k<Input>: index and name).
inline InputView GetInput(Ort::KernelContext& ctx, spec::Port p) {
  return GetInput(ctx, static_cast<size_t>(p.index), p.name);
}
inline InputView GetOptionalInput(Ort::KernelContext& ctx, spec::Port p) {
  return GetOptionalInput(ctx, static_cast<size_t>(p.index), p.name);
}
void CheckType(const InputView& v, ONNXTensorElementDataType want, const char* name);
// Input `i` at kernel creation when it is a constant initializer tensor (the exported case),
// else nothing. The view stays valid for the kernel's lifetime; its contents are unchecked.
std::optional<InputView> ConstantInput(const OrtKernelInfo* info, size_t i);

// ---- threading ----------------------------------------------------------------------
// Splits [0, n) into chunks of at least `grain` items and runs fn(begin, end) on ORT's
// intra-op thread pool. Exceptions inside fn are rethrown on the calling thread.
void ParallelFor(Ort::KernelContext& ctx, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn);

// ---- op adapter ---------------------------------------------------------------------
// Binds a kernel class K to ORT's custom-op ABI with status-returning entry points:
//   K(const OrtKernelInfo*)   reads and validates attributes (errors fail session creation)
//   void Compute(Ort::KernelContext&)
// and a static description Desc with Name(), Domain-independent type lists, EP.
template <typename K>
struct KernelBox {
  K kernel;
  std::string where;
  KernelBox(const OrtKernelInfo* info, std::string w) : kernel(info), where(std::move(w)) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return Guard(where.c_str(), [&] {
      Ort::KernelContext ctx(raw);
      kernel.Compute(ctx);
    });
  }
};

// Desc derives from DescBase and provides kName, kVersion, InputTypes(), OutputTypes();
// it may override the defaults below.
struct DescBase {
  static const char* ExecutionProvider() { return nullptr; }  // nullptr = CPU
  static std::vector<bool> OptionalInputs() { return {}; }     // may be shorter than inputs
  static bool CpuInput(size_t) { return false; }  // true: ORT hands this input in host memory
};
// A Desc whose name, version, port types and optional inputs come from the registry
// (generated steport/spec.h: spec::<family>::<op>::Spec), so C++ cannot disagree with it.
template <typename S>
struct SpecDesc : DescBase {
  static constexpr const char* kName = S::kName;
  static constexpr int kVersion = S::kVersion;
  static constexpr bool kCudaKernel = S::kCudaKernel;
  static std::vector<ONNXTensorElementDataType> InputTypes() {
    return Types(S::kInputTypes, S::kNumInputs);
  }
  static std::vector<ONNXTensorElementDataType> OutputTypes() {
    return Types(S::kOutputTypes, S::kNumOutputs);
  }
  static std::vector<bool> OptionalInputs() {
    // parentheses: braces would make a 2-element initializer_list of pointer->bool
    return std::vector<bool>(S::kOptionalInputs, S::kOptionalInputs + S::kNumInputs);
  }

 private:
  static std::vector<ONNXTensorElementDataType> Types(const int* t, int n) {
    std::vector<ONNXTensorElementDataType> v;
    for (int i = 0; i < n; ++i) v.push_back(static_cast<ONNXTensorElementDataType>(t[i]));
    return v;
  }
};

// The CUDA registration of an op described by Desc (a SpecDesc): only an op whose registry
// entry lists a "cuda" kernel may have one, so the registry cannot miss a CUDA kernel; the
// other direction (a listed kernel that is not registered) is checked by
// tests/ort_ops/test_library.py against BuildInfo's "cuda_ops".
template <typename Desc>
struct CudaDesc : Desc {
  static_assert(Desc::kCudaKernel,
                "a CUDA kernel for an op whose registry kernels field lacks \"cuda\"");
  static const char* ExecutionProvider() { return "CUDAExecutionProvider"; }
};

template <typename Desc, typename K>
struct Op : Ort::CustomOpBase<Op<Desc, K>, KernelBox<K>, /*WithStatus=*/true> {
  Op() {
    this->start_ver_ = Desc::kVersion;
    this->end_ver_ = Desc::kVersion;
  }
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** out) const {
    std::string where = std::string(Desc::kName) + " '" + NodeName(info) + "'";
    return Guard(where.c_str(), [&] { *out = new KernelBox<K>(info, where); });
  }
  const char* GetName() const { return Desc::kName; }
  const char* GetExecutionProviderType() const { return Desc::ExecutionProvider(); }
  size_t GetInputTypeCount() const { return Desc::InputTypes().size(); }
  ONNXTensorElementDataType GetInputType(size_t i) const { return Desc::InputTypes()[i]; }
  size_t GetOutputTypeCount() const { return Desc::OutputTypes().size(); }
  ONNXTensorElementDataType GetOutputType(size_t i) const { return Desc::OutputTypes()[i]; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    auto opt = Desc::OptionalInputs();
    return i < opt.size() && opt[i] ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  OrtMemType GetInputMemoryType(size_t i) const {
    return Desc::CpuInput(i) ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }
};

// ---- registration -------------------------------------------------------------------
// Each family's ort/<family>.cc defines `void Register<Family>Ops(OpSink&)`, adding its ops
// to the domain it names. register.cc owns the domains and calls every family.
struct OpSink {
  virtual void Add(const char* domain, OrtCustomOp* op) = 0;
  virtual ~OpSink() = default;
};

}  // namespace steport
