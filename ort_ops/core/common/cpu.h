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
// AMX-TILE + AMX-INT8 usable: CPU, OS (XCR0 tile state) and, on Linux, the process-wide
// permission for tile data (arch_prctl, requested once). Kernels using it are compiled with
// the AMX target on the function only.
bool AmxInt8Usable();

// Tile configuration (palette 1) for _tile_loadconfig.
struct alignas(64) AmxTileConfig {
  unsigned char palette = 1, start_row = 0;
  unsigned char reserved[14] = {};
  unsigned short colsb[16] = {};
  unsigned char rows[16] = {};
};

}  // namespace steport
