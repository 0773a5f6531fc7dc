steport_family(approx
  CORE   core/approx/lut_gemm.cc core/approx/lut_ops.cc core/approx/train_abi.cc
         core/approx/requant.cc
  AVX2   core/approx/lut_gemm_avx2.cc
  AVX512 core/approx/lut_gemm_avx512.cc core/approx/lut_gemm_amx.cc
         core/approx/requant_avx512.cc
  ORT    ort/approx.cc
  CUDA   cuda/approx/lut_gemm.cu)
