// Run-time ISA dispatch. Kernels are compiled per ISA in separate translation units; the
// binding picks one per kernel instance: the best the CPU has, capped by STEPORT_ISA
// (portable | avx2 | avx512) so tests can force each path.
#pragma once
#include <string>

namespace steport {

enum class Isa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, popcnt = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vpopcntdq = false, avx512vbmi = false, avx512vnni = false;
};

const CpuFeatures& DetectCpu();
Isa BestIsa();                 // what this CPU supports (AVX-512 needs F+BW+VL+DQ)
Isa SelectIsa();               // BestIsa capped by STEPORT_ISA; unknown values throw
const char* IsaName(Isa isa);
// Whether a given path was compiled into this library (x86-64 builds have all three).
bool IsaCompiled(Isa isa);

}  // namespace steport
