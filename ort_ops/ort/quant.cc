// ai.steport.quant bindings: Pact.
#include <cmath>

#include "core/common/cpu.h"
#include "core/quant/pact.h"
#include "steport/families.h"
#include "steport/spec.h"
#ifdef STEPORT_WITH_CUDA
#include "cuda/common.h"
#include "cuda/quant/pact.cuh"
#endif

namespace steport {
namespace {
namespace spec_pact = spec::quant::pact;

// alpha is declared a host-memory input (CpuInput), so both CPU and CUDA kernels read
// and validate it on the host.
quant::PactParams ReadParams(Ort::KernelContext& ctx, const InputView& x, int64_t bits) {
  CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "X");
  InputView a = GetInput(ctx, spec_pact::kInputAlpha);
  CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "alpha");
  Check(a.shape.size() <= 1 && a.size() == 1,
        "alpha must be a scalar (shape [] or [1]), got shape ", ShapeStr(a.shape));
  const float alpha = *a.data<float>();
  Check(std::isfinite(alpha) && alpha > 0.0f, "alpha must be positive and finite, got ", alpha);
  return quant::MakePactParams(alpha, bits);
}

struct PactCpu {
  int64_t bits;
  Isa isa;
  explicit PactCpu(const OrtKernelInfo* info)
      : bits(AttrIntIn(info, spec_pact::kAttrBits, spec_pact::kBitsMin, spec_pact::kBitsMax)),
        isa(SelectKernelVariants().isa) {}

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_pact::kInputX);
    const quant::PactParams p = ReadParams(ctx, x, bits);
    auto out = ctx.GetOutput(spec_pact::kOutputY.index, x.shape);
    const float* xp = x.data<float>();
    float* yp = out.GetTensorMutableData<float>();
    auto kernel = isa == Isa::kAvx512 ? quant::PactAvx512
                  : isa == Isa::kAvx2 ? quant::PactAvx2
                                      : quant::PactPortable;
    // Elementwise and memory-bound: split in 64 KiB chunks (cache-line aligned counts).
    ParallelFor(ctx, x.size(), 16384, [&](int64_t b, int64_t e) { kernel(xp + b, yp + b, e - b, p); });
  }
};

#ifdef STEPORT_WITH_CUDA
struct PactCuda {
  int64_t bits;
  explicit PactCuda(const OrtKernelInfo* info)
      : bits(AttrIntIn(info, spec_pact::kAttrBits, spec_pact::kBitsMin, spec_pact::kBitsMax)) {}
  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_pact::kInputX);
    const quant::PactParams p = ReadParams(ctx, x, bits);
    auto out = ctx.GetOutput(spec_pact::kOutputY.index, x.shape);
    auto stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
    cuda::Check(cuda::PactLaunch(stream, x.data<float>(), out.GetTensorMutableData<float>(),
                                 x.size(), p.alpha, p.scale),
                "Pact");
  }
};
#endif

struct PactDesc : SpecDesc<spec_pact::Spec> {
  static bool CpuInput(size_t i) { return i == spec_pact::kInputAlpha.index; }
};
using PactCpuDesc = PactDesc;
#ifdef STEPORT_WITH_CUDA
using PactCudaDesc = CudaDesc<PactDesc>;
#endif

}  // namespace

void RegisterQuantOps(OpSink& sink) {
  static Op<PactCpuDesc, PactCpu> pact_cpu;
  sink.Add(spec::quant::kDomain, &pact_cpu);
#ifdef STEPORT_WITH_CUDA
  static Op<PactCudaDesc, PactCuda> pact_cuda;
  sink.Add(spec::quant::kDomain, &pact_cuda);
#endif
}

}  // namespace steport
