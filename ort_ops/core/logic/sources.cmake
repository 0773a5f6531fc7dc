steport_family(logic
  CORE   core/logic/logic.cc
  AVX2   core/logic/logic_avx2.cc
  AVX512 core/logic/logic_avx512.cc
  ORT    ort/logic.cc
  CUDA   cuda/logic/logic.cu)
