#include "steport/glue.h"

#include <algorithm>
#include <exception>
#include <mutex>

namespace steport {


std::string NodeName(const OrtKernelInfo* info) {
  size_t size = 0;
  OrtStatus* st = Ort::GetApi().KernelInfo_GetNodeName(info, nullptr, &size);
  if (st) { Ort::GetApi().ReleaseStatus(st); return "?"; }
  std::string s(size, '\0');
  st = Ort::GetApi().KernelInfo_GetNodeName(info, s.data(), &size);
  if (st) { Ort::GetApi().ReleaseStatus(st); return "?"; }
  if (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

namespace {
// True when `st` is a success; releases a failure status.
bool Ok(OrtStatus* st) {
  if (!st) return true;
  Ort::GetApi().ReleaseStatus(st);
  return false;
}

const char* AttrTypeName(AttrType t) {
  switch (t) {
    case AttrType::kAbsent: return "absent";
    case AttrType::kInt: return "an int";
    case AttrType::kFloat: return "a float";
    case AttrType::kString: return "a string";
    case AttrType::kInts: return "a list of ints";
    case AttrType::kFloats: return "a list of floats";
    default: return "an empty list, a tensor or a graph";
  }
}

// Refuses an attribute present with another type than the registry's (docs/ops.md
// "Attributes"): reading it anyway would silently give a default (ORT's getters fail on a
// type mismatch, and its list getters read any attribute type as an empty list).
void CheckAttrType(const OrtKernelInfo* info, const char* name, AttrType want,
                   AttrType also_ok = AttrType::kAbsent) {
  const AttrType got = AttrTypeOf(info, name);
  if (got == want || got == AttrType::kAbsent || (got == also_ok && also_ok != AttrType::kAbsent))
    return;
  Fail("attribute '", name, "' must be ", AttrTypeName(want), ", got ", AttrTypeName(got));
}
}  // namespace

AttrType AttrTypeOf(const OrtKernelInfo* info, const char* name) {
  const OrtApi& api = Ort::GetApi();
  // The scalar getters check the attribute's type; the list getters succeed for every
  // present attribute (reading the other kinds as empty), so they tell absent from present.
  int64_t i;
  if (Ok(api.KernelInfoGetAttribute_int64(info, name, &i))) return AttrType::kInt;
  float f;
  if (Ok(api.KernelInfoGetAttribute_float(info, name, &f))) return AttrType::kFloat;
  size_t n = 0;
  if (Ok(api.KernelInfoGetAttribute_string(info, name, nullptr, &n))) return AttrType::kString;
  n = 0;
  if (!Ok(api.KernelInfoGetAttributeArray_int64(info, name, nullptr, &n))) return AttrType::kAbsent;
  if (n > 0) return AttrType::kInts;
  n = 0;
  if (Ok(api.KernelInfoGetAttributeArray_float(info, name, nullptr, &n)) && n > 0)
    return AttrType::kFloats;
  return AttrType::kOther;
}

int64_t AttrInt(const OrtKernelInfo* info, const char* name) {
  const AttrType t = AttrTypeOf(info, name);
  Check(t != AttrType::kAbsent, "required int attribute '", name, "' is missing");
  return AttrInt(info, name, 0);
}

int64_t AttrInt(const OrtKernelInfo* info, const char* name, int64_t dflt) {
  CheckAttrType(info, name, AttrType::kInt);
  int64_t v = 0;
  return Ok(Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &v)) ? v : dflt;
}

int64_t AttrIntIn(const OrtKernelInfo* info, const char* name, int64_t lo, int64_t hi) {
  int64_t v = AttrInt(info, name);
  Check(v >= lo && v <= hi, "attribute '", name, "' = ", v, " is out of range [", lo, ", ", hi, "]");
  return v;
}

int64_t AttrIntIn(const OrtKernelInfo* info, const char* name, int64_t lo, int64_t hi,
                  int64_t dflt) {
  int64_t v = AttrInt(info, name, dflt);
  Check(v >= lo && v <= hi, "attribute '", name, "' = ", v, " is out of range [", lo, ", ", hi, "]");
  return v;
}

float AttrFloat(const OrtKernelInfo* info, const char* name, float dflt) {
  CheckAttrType(info, name, AttrType::kFloat);
  float v = 0;
  return Ok(Ort::GetApi().KernelInfoGetAttribute_float(info, name, &v)) ? v : dflt;
}

std::vector<int64_t> AttrInts(const OrtKernelInfo* info, const char* name,
                              std::vector<int64_t> dflt) {
  // an empty INTS list cannot be told from other empty attributes: read as an empty list,
  // which every caller's length check then refuses or treats as "not given"
  CheckAttrType(info, name, AttrType::kInts, AttrType::kOther);
  size_t n = 0;
  if (!Ok(Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, nullptr, &n))) return dflt;
  std::vector<int64_t> v(n);
  if (n) Ort::ThrowOnError(Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, v.data(), &n));
  return v;
}

std::vector<int64_t> AttrIntsIn(const OrtKernelInfo* info, const char* name, size_t count,
                                std::vector<int64_t> dflt, int64_t lo, int64_t hi) {
  std::vector<int64_t> v = AttrInts(info, name, std::move(dflt));
  Check(v.size() == count, name, " must have ", count, " values, got ", v.size());
  for (int64_t x : v) Check(x >= lo && x <= hi, name, " values must be in [", lo, ", ", hi, "], got ", x);
  return v;
}

std::string AttrString(const OrtKernelInfo* info, const char* name, std::string dflt) {
  CheckAttrType(info, name, AttrType::kString);
  size_t n = 0;
  if (!Ok(Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &n))) return dflt;
  std::string s(n, '\0');
  Ort::ThrowOnError(Ort::GetApi().KernelInfoGetAttribute_string(info, name, s.data(), &n));
  if (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

const char* TypeName(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return "uint32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return "uint64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    default: return "other";
  }
}

std::ostream& operator<<(std::ostream& os, const ShapeStr& shape) {
  os << "[";
  for (size_t i = 0; i < shape.s.size(); ++i) os << (i ? ", " : "") << shape.s[i];
  return os << "]";
}

std::string ShapeStr::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

int64_t NumElements(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    Check(d >= 0, "negative dimension in shape ", ShapeStr(s));
    if (d != 0 && n > INT64_MAX / d) Fail("tensor with shape ", ShapeStr(s), " is too large");
    n *= d;
  }
  return n;
}

InputView GetInput(Ort::KernelContext& ctx, size_t i, const char* name) {
  InputView v = GetOptionalInput(ctx, i, name);
  Check(v.present, "input ", i, " ('", name, "') is required");
  return v;
}

InputView GetOptionalInput(Ort::KernelContext& ctx, size_t i, const char* name) {
  InputView v;
  if (i >= ctx.GetInputCount()) return v;
  v.value = ctx.GetInput(i);
  if (!v.value) return v;
  Check(v.value.IsTensor(), "input ", i, " ('", name, "') must be a tensor");
  auto info = v.value.GetTensorTypeAndShapeInfo();
  v.shape = info.GetShape();
  v.type = info.GetElementType();
  v.present = true;
  (void)NumElements(v.shape);
  return v;
}

std::optional<InputView> ConstantInput(const OrtKernelInfo* info, size_t i) {
  int is_const = 0;
  const OrtValue* value = nullptr;
  OrtStatus* st = Ort::GetApi().KernelInfoGetConstantInput_tensor(info, i, &is_const, &value);
  if (st) {
    Ort::GetApi().ReleaseStatus(st);
    return std::nullopt;
  }
  if (!is_const || !value) return std::nullopt;
  InputView v;
  v.value = Ort::ConstValue(value);
  if (!v.value.IsTensor()) return std::nullopt;
  auto ti = v.value.GetTensorTypeAndShapeInfo();
  v.shape = ti.GetShape();
  v.type = ti.GetElementType();
  v.present = true;
  return v;
}

void CheckType(const InputView& v, ONNXTensorElementDataType want, const char* name) {
  Check(v.type == want, "input '", name, "' must be ", TypeName(want), ", got ", TypeName(v.type));
}

namespace {
struct ForState {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, chunk;
  std::once_flag once;
  std::exception_ptr error;
};
void RunChunk(void* p, size_t c) {
  auto* s = static_cast<ForState*>(p);
  int64_t b = static_cast<int64_t>(c) * s->chunk;
  int64_t e = std::min(s->n, b + s->chunk);
  try {
    if (b < e) (*s->fn)(b, e);
  } catch (...) {
    std::call_once(s->once, [&] { s->error = std::current_exception(); });
  }
}
}  // namespace

void ParallelFor(Ort::KernelContext& ctx, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain) { fn(0, n); return; }
  // Many more chunks than threads keeps the pool balanced; ORT batches them.
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, 256);
  ForState s{&fn, n, (n + chunks - 1) / chunks, {}, nullptr};
  chunks = (n + s.chunk - 1) / s.chunk;
  ctx.ParallelFor(RunChunk, static_cast<size_t>(chunks), 0, &s);
  if (s.error) std::rethrow_exception(s.error);
}

}  // namespace steport
