// ai.steport.logic bindings: LogicLayer and LogicNet (CPU; CUDA under STEPORT_WITH_CUDA).
// Everything the kernels index with is validated here first: dtypes, ranks, lengths,
// every index against its layer's input width, every gate id, the GroupSum split.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/common/cpu.h"
#include "core/logic/logic.h"
#include "steport/families.h"
#include "steport/spec.h"
#ifdef STEPORT_WITH_CUDA
#include "cuda/common.h"
#include "cuda/logic/logic.cuh"
#endif

namespace steport {
namespace {
namespace spec_net = spec::logic::logic_net;
namespace spec_layer = spec::logic::logic_layer;
// LogicLayer and LogicNet have the same inputs and output, so one set of readers serves both.
static_assert(spec_layer::kInputX.index == spec_net::kInputX.index &&
                  spec_layer::kInputIdxA.index == spec_net::kInputIdxA.index &&
                  spec_layer::kInputIdxB.index == spec_net::kInputIdxB.index &&
                  spec_layer::kInputGateIds.index == spec_net::kInputGateIds.index &&
                  spec_layer::kOutputY.index == spec_net::kOutputY.index,
              "LogicLayer and LogicNet ports differ in the registry");
using spec::logic::kMaxWidth;
constexpr int kMaxGateId = spec::logic::kNumGates - 1;

// idx_a, idx_b, gate_ids of all layers, validated except layer 0 against the input width.
struct Gates {
  std::vector<int64_t> sizes;
  const int64_t* idx_a = nullptr;
  const int64_t* idx_b = nullptr;
  std::vector<uint8_t> ids;  // normalized from uint8 or int64
  int64_t max_input = -1;    // largest layer-0 index: X must be wider
};

// Validates idx_a, idx_b, gate_ids against `sizes` (empty: one layer whose width is the
// index length, i.e. LogicLayer). n_in < 0: the input width is not known yet (kernel
// creation); layer-0 indices are then only checked to be in [0, kMaxWidth).
Gates ReadGates(const InputView& ia, const InputView& ib, const InputView& g,
                std::vector<int64_t> sizes, int64_t n_in) {
  Gates net;
  CheckType(ia, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "idx_a");
  CheckType(ib, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "idx_b");
  Check(g.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 || g.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
        "input 'gate_ids' must be uint8 or int64, got ", TypeName(g.type));
  for (const InputView* v : {&ia, &ib, &g})
    Check(v->shape.size() == 1, "idx_a, idx_b and gate_ids must be 1-D, got shapes ",
          ShapeStr(ia.shape), ", ", ShapeStr(ib.shape), ", ", ShapeStr(g.shape));
  const int64_t total = ia.size();
  Check(ib.size() == total && g.size() == total, "idx_a, idx_b, gate_ids lengths differ: ",
        total, ", ", ib.size(), ", ", g.size());
  if (sizes.empty()) {
    Check(total >= 1 && total <= kMaxWidth, "LogicLayer needs 1 to ", kMaxWidth,
          " gates, got ", total);
    sizes.push_back(total);
  }
  int64_t sum = 0;
  for (int64_t s : sizes) sum += s;
  Check(sum == total, "sum(layer_sizes) = ", sum, " but idx_a/idx_b/gate_ids have ", total,
        " entries");
  net.sizes = sizes;
  net.idx_a = ia.data<int64_t>();
  net.idx_b = ib.data<int64_t>();
  net.ids.resize(total);
  if (g.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8) {
    const uint8_t* gp = g.data<uint8_t>();
    for (int64_t i = 0; i < total; ++i) {
      Check(gp[i] <= kMaxGateId, "gate id ", int(gp[i]), " at position ", i,
            " is out of range [0, ", kMaxGateId, "]");
      net.ids[i] = gp[i];
    }
  } else {
    const int64_t* gp = g.data<int64_t>();
    for (int64_t i = 0; i < total; ++i) {
      Check(gp[i] >= 0 && gp[i] <= kMaxGateId, "gate id ", gp[i], " at position ", i,
            " is out of range [0, ", kMaxGateId, "]");
      net.ids[i] = static_cast<uint8_t>(gp[i]);
    }
  }
  int64_t off = 0, width = n_in < 0 ? kMaxWidth : n_in;
  for (size_t l = 0; l < sizes.size(); ++l) {
    for (int64_t j = off; j < off + sizes[l]; ++j) {
      Check(net.idx_a[j] >= 0 && net.idx_a[j] < width, "layer ", l, ": idx_a[", j - off, "] = ",
            net.idx_a[j], " is out of range [0, ", width, ")");
      Check(net.idx_b[j] >= 0 && net.idx_b[j] < width, "layer ", l, ": idx_b[", j - off, "] = ",
            net.idx_b[j], " is out of range [0, ", width, ")");
      if (l == 0) net.max_input = std::max({net.max_input, net.idx_a[j], net.idx_b[j]});
    }
    off += sizes[l];
    width = sizes[l];
  }
  return net;
}

struct Batch {
  const float* x = nullptr;
  int64_t n = 0, n_in = 0;
};

Batch ReadX(Ort::KernelContext& ctx) {
  InputView x = GetInput(ctx, spec_net::kInputX);
  CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "X");
  Check(x.shape.size() == 2, "X must be 2-D [N, in], got shape ", ShapeStr(x.shape));
  Check(x.shape[1] >= 1 && x.shape[1] <= kMaxWidth, "X width must be in [1, ", kMaxWidth,
        "], got ", x.shape[1]);
  return {x.data<float>(), x.shape[0], x.shape[1]};
}

Gates ReadGates(Ort::KernelContext& ctx, const std::vector<int64_t>& sizes, int64_t n_in) {
  return ReadGates(GetInput(ctx, spec_net::kInputIdxA), GetInput(ctx, spec_net::kInputIdxB),
                   GetInput(ctx, spec_net::kInputGateIds), sizes, n_in);
}

// The plan of a node whose idx_a, idx_b and gate_ids are constant initializers (the
// exported case) is built once, at kernel creation; other nodes plan on every call.
class PlanCache {
 public:
  PlanCache(const OrtKernelInfo* info, const std::vector<int64_t>& sizes, int64_t num_classes,
            float tau)
      : sizes_(sizes), num_classes_(num_classes), tau_(tau) {
    const spec::Port gate_inputs[3] = {spec_net::kInputIdxA, spec_net::kInputIdxB,
                                       spec_net::kInputGateIds};
    std::optional<InputView> v[3];
    for (size_t i = 0; i < 3; ++i)
      if (!(v[i] = ConstantInput(info, gate_inputs[i].index))) return;
    try {
      Gates gates = ReadGates(*v[0], *v[1], *v[2], sizes_, -1);
      max_input_ = gates.max_input;
      plan_ = Build(gates);
    } catch (const OpError&) {
      // invalid constants: Compute reads them again and reports the error
    }
  }

  // The plan for this call; validates the gate inputs unless they are constant.
  const logic::NetPlan& Get(Ort::KernelContext& ctx, const Batch& x, logic::NetPlan& scratch) {
    if (plan_ && x.n_in > max_input_) return *plan_;
    Gates gates = ReadGates(ctx, sizes_, x.n_in);
    scratch = Build(gates);
    return scratch;
  }

 private:
  logic::NetPlan Build(const Gates& g) const {
    return logic::MakePlan(g.sizes, g.idx_a, g.idx_b, g.ids.data(), num_classes_, tau_);
  }
  std::vector<int64_t> sizes_;
  int64_t num_classes_;
  float tau_;
  std::optional<logic::NetPlan> plan_;
  int64_t max_input_ = -1;
};

struct NetAttrs {
  std::vector<int64_t> sizes;
  int64_t num_classes;
  float tau;
  explicit NetAttrs(const OrtKernelInfo* info)
      : sizes(AttrInts(info, spec_net::kAttrLayerSizes, {})),
        num_classes(AttrIntIn(info, spec_net::kAttrNumClasses, spec_net::kNumClassesMin,
                              spec_net::kNumClassesMax)),
        tau(AttrFloat(info, spec_net::kAttrTau, static_cast<float>(spec_net::kTauDefault))) {
    Check(!sizes.empty(), "attribute 'layer_sizes' is required and must be non-empty");
    for (int64_t s : sizes)
      Check(s >= 1 && s <= kMaxWidth, "attribute 'layer_sizes' entries must be in [1, ",
            kMaxWidth, "], got ", s);
    Check(sizes.back() % num_classes == 0, "last layer width ", sizes.back(),
          " is not a multiple of num_classes ", num_classes);
    Check(std::isfinite(tau) && tau > 0.0f, "attribute 'tau' must be positive and finite, got ",
          tau);
  }
};

void RunCpu(Ort::KernelContext& ctx, Isa isa, const Batch& x, const logic::NetPlan& plan,
            float* y) {
  const logic::Kernel k = logic::SelectKernel(isa, std::max(plan.max_width, x.n_in), x.n);
  const int64_t block = 64 * k.words;
  const int64_t blocks = (x.n + block - 1) / block;
  ParallelFor(ctx, blocks, 1,
              [&](int64_t b, int64_t e) { k.forward(plan, x.x, x.n, x.n_in, b, e, y); });
}

struct LogicNetCpu {
  NetAttrs attrs;
  PlanCache plans;
  Isa isa = SelectKernelVariants().isa;
  explicit LogicNetCpu(const OrtKernelInfo* info)
      : attrs(info), plans(info, attrs.sizes, attrs.num_classes, attrs.tau) {}
  void Compute(Ort::KernelContext& ctx) {
    Batch x = ReadX(ctx);
    logic::NetPlan scratch;
    const logic::NetPlan& plan = plans.Get(ctx, x, scratch);
    auto out =
        ctx.GetOutput(spec_net::kOutputY.index, std::vector<int64_t>{x.n, attrs.num_classes});
    if (x.n > 0) RunCpu(ctx, isa, x, plan, out.GetTensorMutableData<float>());
  }
};

struct LogicLayerCpu {
  PlanCache plans;
  Isa isa = SelectKernelVariants().isa;
  explicit LogicLayerCpu(const OrtKernelInfo* info) : plans(info, {}, 0, 1.0f) {}
  void Compute(Ort::KernelContext& ctx) {
    Batch x = ReadX(ctx);
    logic::NetPlan scratch;
    const logic::NetPlan& plan = plans.Get(ctx, x, scratch);
    auto out = ctx.GetOutput(spec_net::kOutputY.index,
                             std::vector<int64_t>{x.n, plan.layers[0].out_width});
    if (x.n > 0) RunCpu(ctx, isa, x, plan, out.GetTensorMutableData<float>());
  }
};

#ifdef STEPORT_WITH_CUDA
// Index/gate inputs are host-memory inputs (CpuInput) so they are validated on the host;
// the launcher uploads the packed gate table.
void RunCuda(Ort::KernelContext& ctx, const Batch& x, const Gates& net, int64_t num_classes,
             float tau, float* y) {
  if (x.n == 0) return;
  std::vector<int32_t> table(net.ids.size() * 3);
  for (size_t i = 0; i < net.ids.size(); ++i) {
    table[3 * i] = static_cast<int32_t>(net.idx_a[i]);
    table[3 * i + 1] = static_cast<int32_t>(net.idx_b[i]);
    table[3 * i + 2] = net.ids[i];
  }
  auto stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
  cuda::Check(cuda::LogicForwardLaunch(stream, x.x, x.n, x.n_in, table.data(),
                                       net.sizes.data(), static_cast<int>(net.sizes.size()),
                                       num_classes, tau, y),
              "LogicNet");
}
struct LogicNetCuda {
  NetAttrs attrs;
  explicit LogicNetCuda(const OrtKernelInfo* info) : attrs(info) {}
  void Compute(Ort::KernelContext& ctx) {
    Batch x = ReadX(ctx);
    Gates net = ReadGates(ctx, attrs.sizes, x.n_in);
    auto out =
        ctx.GetOutput(spec_net::kOutputY.index, std::vector<int64_t>{x.n, attrs.num_classes});
    RunCuda(ctx, x, net, attrs.num_classes, attrs.tau, out.GetTensorMutableData<float>());
  }
};
struct LogicLayerCuda {
  explicit LogicLayerCuda(const OrtKernelInfo*) {}
  void Compute(Ort::KernelContext& ctx) {
    Batch x = ReadX(ctx);
    Gates net = ReadGates(ctx, {}, x.n_in);
    auto out =
        ctx.GetOutput(spec_net::kOutputY.index, std::vector<int64_t>{x.n, net.sizes[0]});
    RunCuda(ctx, x, net, 0, 1.0f, out.GetTensorMutableData<float>());
  }
};
#endif

// gate_ids may be uint8 or int64 (type 0 in the registry header): checked in ReadGates.
using LogicNetDesc = SpecDesc<spec_net::Spec>;
using LogicLayerDesc = SpecDesc<spec::logic::logic_layer::Spec>;
#ifdef STEPORT_WITH_CUDA
// Everything but X: idx_a, idx_b, gate_ids.
bool GateInputOnHost(size_t i) { return i != static_cast<size_t>(spec_net::kInputX.index); }
struct LogicNetCudaDesc : CudaDesc<LogicNetDesc> {
  static bool CpuInput(size_t i) { return GateInputOnHost(i); }
};
struct LogicLayerCudaDesc : CudaDesc<LogicLayerDesc> {
  static bool CpuInput(size_t i) { return GateInputOnHost(i); }
};
#endif

}  // namespace

void RegisterLogicOps(OpSink& sink) {
  static Op<LogicLayerDesc, LogicLayerCpu> layer_cpu;
  static Op<LogicNetDesc, LogicNetCpu> net_cpu;
  sink.Add(spec::logic::kDomain, &layer_cpu);
  sink.Add(spec::logic::kDomain, &net_cpu);
#ifdef STEPORT_WITH_CUDA
  static Op<LogicLayerCudaDesc, LogicLayerCuda> layer_cuda;
  static Op<LogicNetCudaDesc, LogicNetCuda> net_cuda;
  sink.Add(spec::logic::kDomain, &layer_cuda);
  sink.Add(spec::logic::kDomain, &net_cuda);
#endif
}

}  // namespace steport
