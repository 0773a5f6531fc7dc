steport_family(binary
  CORE   core/binary/bgemm.cc core/binary/binary_ops.cc
  AVX2   core/binary/bgemm_avx2.cc
  AVX512 core/binary/bgemm_avx512.cc core/binary/bgemm_amx.cc
  ORT    ort/binary.cc
  CUDA   cuda/binary/bgemm.cu)
