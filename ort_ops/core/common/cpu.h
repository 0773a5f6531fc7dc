// Run-time ISA dispatch. Kernels are compiled per ISA in separate translation units; each
// kernel instance runs the variants SelectKernelVariants() picks: the best the CPU has,
// capped or switched off by the environment so tests can force each path.
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
const char* IsaName(Isa isa);
// Whether a given path was compiled into this library (x86-64 builds have all three).
bool IsaCompiled(Isa isa);
// AMX-TILE + AMX-INT8 usable: CPU, OS (XCR0 tile state) and, on Linux, the process-wide
// permission for tile data (arch_prctl, requested once). Kernels using it are compiled with
// the AMX target on the function only.
bool AmxInt8Usable();

// The kernel variants one kernel instance runs. SelectKernelVariants() is the one place
// that reads the environment for them (docs/ops.md "Kernel selection"):
//   STEPORT_ISA=portable|avx2|avx512  caps the SIMD path (other values throw)
//   STEPORT_BINARY_AMX=0              binary GEMMs stay on XNOR-popcount (no AMX)
//   STEPORT_APPROX_AMX=0              approx u8 x s8 GEMMs stay on VNNI (no AMX)
//   STEPORT_APPROX_GATHER=1           AVX-512 general-LUT GEMMs use the gather kernel
// It reads them when called: the ORT bindings call it once per kernel instance (session
// creation), the training C ABI once per call. A test sets a variable, then creates its
// session; a session keeps what it was created with.
struct KernelVariants {
  Isa isa = Isa::kPortable;
  bool binary_amx = false;     // AVX-512 path and AMX-INT8 usable and not switched off
  bool approx_amx = false;     // AMX-INT8 usable and not switched off (kernels add: VNNI)
  bool approx_gather = false;  // STEPORT_APPROX_GATHER=1
};
KernelVariants SelectKernelVariants();

// Tile configuration (palette 1) for _tile_loadconfig.
struct alignas(64) AmxTileConfig {
  unsigned char palette = 1, start_row = 0;
  unsigned char reserved[14] = {};
  unsigned short colsb[16] = {};
  unsigned char rows[16] = {};
};

}  // namespace steport
