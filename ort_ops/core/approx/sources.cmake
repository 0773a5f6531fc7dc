steport_family(approx
  CORE   core/approx/lut_gemm.cc core/approx/lut_ops.cc core/approx/train_abi.cc
  AVX2   core/approx/lut_gemm_avx2.cc
  AVX512 core/approx/lut_gemm_avx512.cc core/approx/lut_gemm_amx.cc
  ORT    ort/approx.cc
  CUDA   cuda/approx/lut_gemm.cu)
