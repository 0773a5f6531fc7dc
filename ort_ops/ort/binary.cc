// ai.steport.binary bindings: BinaryGemm (CPU, CUDA) and BinaryConv2d (CPU).
// Every shape, size and attribute is validated here before a kernel touches memory.
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "core/binary/binary_ops.h"
#include "core/common/cpu.h"
#include "core/common/shapes.h"
#include "steport/families.h"
#include "steport/spec.h"
#ifdef STEPORT_WITH_CUDA
#include "cuda/binary/bgemm.cuh"
#include "cuda/common.h"
#endif

namespace steport {
namespace {
namespace spec_gemm = spec::binary::binary_gemm;
namespace spec_conv = spec::binary::binary_conv2d;

binary::ParFor PoolOf(Ort::KernelContext& ctx) {
  return [&ctx](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    ParallelFor(ctx, n, grain, fn);
  };
}

void CheckChannelVector(const InputView& v, int64_t n, const char* name) {
  CheckType(v, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, name);
  Check(v.shape.size() == 1 && v.shape[0] == n, name, " must have shape [", n, "], got ",
        ShapeStr(v.shape));
}

// ---- BinaryGemm -----------------------------------------------------------------------
struct GemmShapes {
  int64_t m = 1, n = 0, kw = 0;
  std::vector<int64_t> out;
};

GemmShapes ValidateGemm(const InputView& a, const InputView& b, const InputView& scale,
                        const InputView& bias, int64_t k) {
  CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "A");
  CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, "B");
  Check(!a.shape.empty() && a.shape.back() == k, "A must have last dimension k = ", k,
        ", got shape ", ShapeStr(a.shape));
  GemmShapes s;
  s.kw = (k + 63) / 64;
  Check(b.shape.size() == 2 && b.shape[1] == s.kw, "B (packed weights) must have shape [N, ",
        s.kw, "] for k = ", k, " (ceil(k/64) uint64 words per row), got ", ShapeStr(b.shape));
  s.n = b.shape[0];
  CheckChannelVector(scale, s.n, "scale");
  CheckChannelVector(bias, s.n, "bias");
  s.out.assign(a.shape.begin(), a.shape.end() - 1);
  for (int64_t d : s.out) s.m *= d;
  s.out.push_back(s.n);
  (void)NumElements(s.out);
  return s;
}

struct GemmCpu {
  int64_t k;
  binary::Kernels kern;
  std::optional<binary::AmxWeights> amx;  // constant B as AMX int8 quads
  explicit GemmCpu(const OrtKernelInfo* info)
      : k(AttrIntIn(info, spec_gemm::kAttrK, spec_gemm::kKMin, spec_gemm::kKMax)) {
    const KernelVariants variants = SelectKernelVariants();
    kern = binary::SelectKernels(variants.isa);
    if (variants.binary_amx) PrepareConstantWeights(info);
  }

  // Weights that are a constant initializer (the exported case) are converted once; a B
  // that is not valid is left to Compute, which reports it.
  void PrepareConstantWeights(const OrtKernelInfo* info) {
    const std::optional<InputView> b = ConstantInput(info, spec_gemm::kInputB.index);
    if (!b || b->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64 || b->shape.size() != 2 ||
        b->shape[1] != (k + 63) / 64 || b->shape[0] < 1)
      return;
    // byte weights are 8x the packed bits: past 256 MiB keep the packed kernels only
    constexpr int64_t kMaxAmxBytes = int64_t{256} << 20;
    const int64_t kp = (k + binary::kAmxK - 1) / binary::kAmxK * binary::kAmxK;
    if (b->shape[0] > kMaxAmxBytes / kp) return;
    amx = binary::PrepareAmxWeights(b->data<uint64_t>(), b->shape[0], k);
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_gemm::kInputA), b = GetInput(ctx, spec_gemm::kInputB);
    InputView scale = GetInput(ctx, spec_gemm::kInputScale);
    InputView bias = GetInput(ctx, spec_gemm::kInputBias);
    GemmShapes s = ValidateGemm(a, b, scale, bias, k);
    auto out = ctx.GetOutput(spec_gemm::kOutputY.index, s.out);
    if (s.m == 0 || s.n == 0) return;
    binary::GemmProblem p{a.data<float>(), s.m, k, s.n, b.data<uint64_t>(), scale.data<float>(),
                          bias.data<float>(), out.GetTensorMutableData<float>()};
    if (amx && amx->n == s.n) p.amx = &*amx;
    binary::RunGemm(p, kern, PoolOf(ctx));
  }
};

#ifdef STEPORT_WITH_CUDA
struct GemmCuda {
  int64_t k;
  explicit GemmCuda(const OrtKernelInfo* info)
      : k(AttrIntIn(info, spec_gemm::kAttrK, spec_gemm::kKMin, spec_gemm::kKMax)) {}
  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_gemm::kInputA), b = GetInput(ctx, spec_gemm::kInputB);
    InputView scale = GetInput(ctx, spec_gemm::kInputScale);
    InputView bias = GetInput(ctx, spec_gemm::kInputBias);
    GemmShapes s = ValidateGemm(a, b, scale, bias, k);
    auto out = ctx.GetOutput(spec_gemm::kOutputY.index, s.out);
    if (s.m == 0 || s.n == 0) return;
    auto stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
    cuda::Check(cuda::BinaryGemmLaunch(stream, a.data<float>(), s.m, k, b.data<uint64_t>(), s.n,
                                       scale.data<float>(), bias.data<float>(),
                                       out.GetTensorMutableData<float>()),
                "BinaryGemm");
  }
};
#endif

using GemmDesc = SpecDesc<spec_gemm::Spec>;
#ifdef STEPORT_WITH_CUDA
using GemmCudaDesc = CudaDesc<GemmDesc>;
#endif

// ---- BinaryConv2d ---------------------------------------------------------------------
struct ConvCpu {
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  int64_t group, pad_value;
  binary::Kernels kern;
  explicit ConvCpu(const OrtKernelInfo* info)
      : strides(AttrIntsIn(info, spec_conv::kAttrStrides, 2,
                       IntsDefault(spec_conv::kStridesDefault), spec_conv::kStridesMin,
                       spec_conv::kStridesMax)),
        pads(AttrIntsIn(info, spec_conv::kAttrPads, 4, IntsDefault(spec_conv::kPadsDefault),
                    spec_conv::kPadsMin, spec_conv::kPadsMax)),
        dilations(AttrIntsIn(info, spec_conv::kAttrDilations, 2,
                         IntsDefault(spec_conv::kDilationsDefault), spec_conv::kDilationsMin,
                         spec_conv::kDilationsMax)),
        group(AttrIntIn(info, spec_conv::kAttrGroup, spec_conv::kGroupMin, spec_conv::kGroupMax,
                        spec_conv::kGroupDefault)),
        pad_value(AttrIntIn(info, spec_conv::kAttrPadValue, spec_conv::kPadValueMin,
                            spec_conv::kPadValueMax, spec_conv::kPadValueDefault)),
        kern(binary::SelectKernels(SelectKernelVariants().isa)) {
    kernel_shape = AttrInts(info, spec_conv::kAttrKernelShape, {});
    if (!kernel_shape.empty())
      kernel_shape = AttrIntsIn(info, spec_conv::kAttrKernelShape, 2, {},
                                spec_conv::kKernelShapeMin, spec_conv::kKernelShapeMax);
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_conv::kInputX), w = GetInput(ctx, spec_conv::kInputW);
    InputView scale = GetInput(ctx, spec_conv::kInputScale);
    InputView bias = GetInput(ctx, spec_conv::kInputBias);
    CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "X");
    CheckType(w, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, "W");
    Check(x.shape.size() == 4, "X must be NCHW (rank 4), got ", ShapeStr(x.shape));
    Check(w.shape.size() == 4, "W (packed) must have shape [C_out, KH, KW, ceil((C_in/group)/64)],"
          " got ", ShapeStr(w.shape));
    const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
    const int64_t co = w.shape[0], kh = w.shape[1], kw = w.shape[2];
    Check(c % group == 0 && c > 0, "group ", group, " must divide C_in ", c);
    Check(co % group == 0, "group ", group, " must divide C_out ", co);
    const int64_t cg = c / group, cw = (cg + 63) / 64;
    Check(kh >= spec_conv::kKernelShapeMin && kh <= spec_conv::kKernelShapeMax &&
          kw >= spec_conv::kKernelShapeMin && kw <= spec_conv::kKernelShapeMax,
          "kernel size ", kh, "x", kw, " out of range");
    Check(w.shape[3] == cw, "W last dimension must be ceil((C_in/group)/64) = ", cw,
          " uint64 words (C_in ", c, ", group ", group, "), got ", ShapeStr(w.shape));
    if (!kernel_shape.empty())
      Check(kernel_shape[0] == kh && kernel_shape[1] == kw, "kernel_shape ",
            ShapeStr(kernel_shape), " does not match W ", ShapeStr(w.shape));
    Check(kh * kw * cg <= spec_gemm::kKMax, "reduction length KH*KW*C_in/group = ",
          kh * kw * cg, " exceeds ", spec_gemm::kKMax);
    CheckChannelVector(scale, co, "scale");
    CheckChannelVector(bias, co, "bias");
    const int64_t oh = ConvOutputSize(h, pads[0], pads[2], kh, strides[0], dilations[0]);
    const int64_t ow = ConvOutputSize(wd, pads[1], pads[3], kw, strides[1], dilations[1]);
    Check(oh >= 1 && ow >= 1, "padded input ", h + pads[0] + pads[2], "x",
          wd + pads[1] + pads[3], " is smaller than the dilated kernel ",
          dilations[0] * (kh - 1) + 1, "x", dilations[1] * (kw - 1) + 1);
    std::vector<int64_t> oshape{n, co, oh, ow};
    (void)NumElements(oshape);
    auto out = ctx.GetOutput(spec_conv::kOutputY.index, oshape);
    if (n == 0 || co == 0) return;
    binary::ConvProblem p{x.data<float>(), n, c, h, wd, w.data<uint64_t>(), co, kh, kw,
                          strides[0], strides[1], pads[0], pads[1], dilations[0], dilations[1],
                          group, static_cast<int>(pad_value), scale.data<float>(),
                          bias.data<float>(), out.GetTensorMutableData<float>(), oh, ow};
    binary::RunConv(p, kern, PoolOf(ctx));
  }
};

using ConvDesc = SpecDesc<spec_conv::Spec>;

}  // namespace

void RegisterBinaryOps(OpSink& sink) {
  static Op<GemmDesc, GemmCpu> gemm_cpu;
  static Op<ConvDesc, ConvCpu> conv_cpu;
  sink.Add(spec::binary::kDomain, &gemm_cpu);
  sink.Add(spec::binary::kDomain, &conv_cpu);
#ifdef STEPORT_WITH_CUDA
  static Op<GemmCudaDesc, GemmCuda> gemm_cuda;
  sink.Add(spec::binary::kDomain, &gemm_cuda);
#endif
}

}  // namespace steport
