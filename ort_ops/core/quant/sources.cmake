steport_family(quant
  CORE   core/quant/pact.cc
  AVX2   core/quant/pact_avx2.cc
  AVX512 core/quant/pact_avx512.cc
  ORT    ort/quant.cc
  CUDA   cuda/quant/pact.cu)
