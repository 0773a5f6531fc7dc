// ai.steport.logic bindings: LogicLayer and LogicNet (CPU; CUDA under STEPORT_WITH_CUDA).
// Everything the kernels index with is validated here first: dtypes, ranks, lengths,
// every index against its layer's input width, every gate id, the GroupSum split.
#include <cmath>
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
constexpr int64_t kMaxWidth = int64_t{1} << 24;  // registry MAX_WIDTH

struct Network {
  int64_t n = 0, n_in = 0;
  std::vector<int64_t> sizes;
  const float* x = nullptr;
  const int64_t* idx_a = nullptr;
  const int64_t* idx_b = nullptr;
  std::vector<uint8_t> gates;  // normalized from uint8 or int64
  std::vector<int64_t> x_shape;
};

// Reads and validates X, idx_a, idx_b, gate_ids against `sizes` (empty: one layer whose
// width is the index length, i.e. LogicLayer).
Network ReadNetwork(Ort::KernelContext& ctx, std::vector<int64_t> sizes) {
  Network net;
  InputView x = GetInput(ctx, 0, "X");
  CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "X");
  Check(x.shape.size() == 2, "X must be 2-D [N, in], got shape ", ShapeStr(x.shape));
  net.n = x.shape[0];
  net.n_in = x.shape[1];
  net.x_shape = x.shape;
  Check(net.n_in >= 1 && net.n_in <= kMaxWidth, "X width must be in [1, ", kMaxWidth, "], got ",
        net.n_in);
  InputView ia = GetInput(ctx, 1, "idx_a"), ib = GetInput(ctx, 2, "idx_b"),
            g = GetInput(ctx, 3, "gate_ids");
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
  net.x = x.data<float>();
  net.idx_a = ia.data<int64_t>();
  net.idx_b = ib.data<int64_t>();
  net.gates.resize(total);
  if (g.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8) {
    const uint8_t* gp = g.data<uint8_t>();
    for (int64_t i = 0; i < total; ++i) {
      Check(gp[i] <= 15, "gate id ", int(gp[i]), " at position ", i, " is out of range [0, 15]");
      net.gates[i] = gp[i];
    }
  } else {
    const int64_t* gp = g.data<int64_t>();
    for (int64_t i = 0; i < total; ++i) {
      Check(gp[i] >= 0 && gp[i] <= 15, "gate id ", gp[i], " at position ", i,
            " is out of range [0, 15]");
      net.gates[i] = static_cast<uint8_t>(gp[i]);
    }
  }
  int64_t off = 0, width = net.n_in;
  for (size_t l = 0; l < sizes.size(); ++l) {
    for (int64_t j = off; j < off + sizes[l]; ++j) {
      Check(net.idx_a[j] >= 0 && net.idx_a[j] < width, "layer ", l, ": idx_a[", j - off, "] = ",
            net.idx_a[j], " is out of range [0, ", width, ")");
      Check(net.idx_b[j] >= 0 && net.idx_b[j] < width, "layer ", l, ": idx_b[", j - off, "] = ",
            net.idx_b[j], " is out of range [0, ", width, ")");
    }
    off += sizes[l];
    width = sizes[l];
  }
  return net;
}

logic::NetPlan Plan(const Network& net, int64_t num_classes, float tau) {
  return logic::MakePlan(net.n_in, net.sizes, net.idx_a, net.idx_b,
                         [&](int64_t i) { return net.gates[i]; }, num_classes, tau);
}

struct NetAttrs {
  std::vector<int64_t> sizes;
  int64_t num_classes;
  float tau;
  explicit NetAttrs(const OrtKernelInfo* info)
      : sizes(AttrInts(info, "layer_sizes", {})),
        num_classes(AttrIntIn(info, "num_classes", spec_net::kNumClassesMin,
                              spec_net::kNumClassesMax)),
        tau(AttrFloat(info, "tau", static_cast<float>(spec_net::kTauDefault))) {
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

struct CpuRunner {
  Isa isa = SelectIsa();
  void Run(Ort::KernelContext& ctx, const Network& net, const logic::NetPlan& plan, float* y) {
    logic::ForwardFn fn = isa == Isa::kAvx512 ? logic::ForwardAvx512
                          : isa == Isa::kAvx2 ? logic::ForwardAvx2
                                              : logic::ForwardPortable;
    const int64_t words = isa == Isa::kAvx512 ? logic::kWordsAvx512
                          : isa == Isa::kAvx2 ? logic::kWordsAvx2
                                              : logic::kWordsPortable;
    const int64_t block = 64 * words;
    const int64_t blocks = (net.n + block - 1) / block;
    const float* x = net.x;
    const int64_t n = net.n;
    ParallelFor(ctx, blocks, 1, [&](int64_t b, int64_t e) { fn(plan, x, n, b, e, y); });
  }
};

struct LogicNetCpu {
  NetAttrs attrs;
  CpuRunner runner;
  explicit LogicNetCpu(const OrtKernelInfo* info) : attrs(info) {}
  void Compute(Ort::KernelContext& ctx) {
    Network net = ReadNetwork(ctx, attrs.sizes);
    auto out = ctx.GetOutput(0, std::vector<int64_t>{net.n, attrs.num_classes});
    if (net.n == 0) return;
    logic::NetPlan plan = Plan(net, attrs.num_classes, attrs.tau);
    runner.Run(ctx, net, plan, out.GetTensorMutableData<float>());
  }
};

struct LogicLayerCpu {
  CpuRunner runner;
  explicit LogicLayerCpu(const OrtKernelInfo*) {}
  void Compute(Ort::KernelContext& ctx) {
    Network net = ReadNetwork(ctx, {});
    auto out = ctx.GetOutput(0, std::vector<int64_t>{net.n, net.sizes[0]});
    if (net.n == 0) return;
    logic::NetPlan plan = Plan(net, 0, 1.0f);
    runner.Run(ctx, net, plan, out.GetTensorMutableData<float>());
  }
};

#ifdef STEPORT_WITH_CUDA
// Index/gate inputs are host-memory inputs (CpuInput) so they are validated on the host;
// the launcher uploads the packed gate table.
void RunCuda(Ort::KernelContext& ctx, const Network& net, int64_t num_classes, float tau,
             float* y) {
  if (net.n == 0) return;
  std::vector<int32_t> table(net.gates.size() * 3);
  for (size_t i = 0; i < net.gates.size(); ++i) {
    table[3 * i] = static_cast<int32_t>(net.idx_a[i]);
    table[3 * i + 1] = static_cast<int32_t>(net.idx_b[i]);
    table[3 * i + 2] = net.gates[i];
  }
  auto stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
  cuda::Check(cuda::LogicForwardLaunch(stream, net.x, net.n, net.n_in, table.data(),
                                       net.sizes.data(), static_cast<int>(net.sizes.size()),
                                       num_classes, tau, y),
              "LogicNet");
}
struct LogicNetCuda {
  NetAttrs attrs;
  explicit LogicNetCuda(const OrtKernelInfo* info) : attrs(info) {}
  void Compute(Ort::KernelContext& ctx) {
    Network net = ReadNetwork(ctx, attrs.sizes);
    auto out = ctx.GetOutput(0, std::vector<int64_t>{net.n, attrs.num_classes});
    RunCuda(ctx, net, attrs.num_classes, attrs.tau, out.GetTensorMutableData<float>());
  }
};
struct LogicLayerCuda {
  explicit LogicLayerCuda(const OrtKernelInfo*) {}
  void Compute(Ort::KernelContext& ctx) {
    Network net = ReadNetwork(ctx, {});
    auto out = ctx.GetOutput(0, std::vector<int64_t>{net.n, net.sizes[0]});
    RunCuda(ctx, net, 0, 1.0f, out.GetTensorMutableData<float>());
  }
};
#endif

// gate_ids may be uint8 or int64 (type 0 in the registry header): checked in ReadNetwork.
using LogicNetDesc = SpecDesc<spec_net::Spec>;
using LogicLayerDesc = SpecDesc<spec::logic::logic_layer::Spec>;
#ifdef STEPORT_WITH_CUDA
struct LogicNetCudaDesc : LogicNetDesc {
  static const char* ExecutionProvider() { return "CUDAExecutionProvider"; }
  static bool CpuInput(size_t i) { return i >= 1; }
};
struct LogicLayerCudaDesc : LogicLayerDesc {
  static const char* ExecutionProvider() { return "CUDAExecutionProvider"; }
  static bool CpuInput(size_t i) { return i >= 1; }
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
