#include "cpu.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define STEPORT_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace steport {

const CpuFeatures& DetectCpu() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#ifdef STEPORT_X86
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    bool osxsave = cx & (1u << 27);
    c.fma = cx & (1u << 12);
    c.popcnt = cx & (1u << 23);
    uint64_t xcr0 = 0;
    if (osxsave) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = (uint64_t(hi) << 32) | lo;
    }
    bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, nullptr) >= 7) {
      __cpuid_count(7, 0, a, b, cx, d);
      c.avx2 = ymm && (b & (1u << 5));
      c.bmi2 = b & (1u << 8);
      c.avx512f = zmm && (b & (1u << 16));
      c.avx512dq = zmm && (b & (1u << 17));
      c.avx512bw = zmm && (b & (1u << 30));
      c.avx512vl = zmm && (b & (1u << 31));
      c.avx512vbmi = zmm && (cx & (1u << 1));
      c.avx512vnni = zmm && (cx & (1u << 11));
      c.avx512vpopcntdq = zmm && (cx & (1u << 14));
    }
#endif
    return c;
  }();
  return f;
}

bool AmxInt8Usable() {
  static const bool ok = [] {
#if defined(STEPORT_X86) && defined(__linux__)
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return false;  // AMX-TILE, AMX-INT8
    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 27))) return false;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;  // XTILECFG + XTILEDATA enabled
    constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
    return false;
#endif
  }();
  return ok;
}

bool IsaCompiled(Isa isa) {
#ifdef STEPORT_X86
  (void)isa;
  return true;
#else
  return isa == Isa::kPortable;
#endif
}

Isa BestIsa() {
  const auto& c = DetectCpu();
  if (c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx2 && c.fma &&
      IsaCompiled(Isa::kAvx512))
    return Isa::kAvx512;
  if (c.avx2 && c.fma && c.popcnt && IsaCompiled(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kPortable;
}

namespace {

// BestIsa capped by STEPORT_ISA; unknown values throw.
Isa IsaFromEnvironment() {
  Isa best = BestIsa();
  const char* env = std::getenv("STEPORT_ISA");
  if (!env || !*env) return best;
  std::string s(env);
  Isa want;
  if (s == "portable" || s == "scalar") want = Isa::kPortable;
  else if (s == "avx2") want = Isa::kAvx2;
  else if (s == "avx512") want = Isa::kAvx512;
  else throw std::invalid_argument("STEPORT_ISA='" + s + "' (use portable, avx2 or avx512)");
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

bool EnvIs(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::string(e) == value;
}

}  // namespace

KernelVariants SelectKernelVariants() {
  KernelVariants v;
  v.isa = IsaFromEnvironment();
  v.binary_amx = v.isa == Isa::kAvx512 && !EnvIs("STEPORT_BINARY_AMX", "0") && AmxInt8Usable();
  v.approx_amx = !EnvIs("STEPORT_APPROX_AMX", "0") && AmxInt8Usable();
  v.approx_gather = EnvIs("STEPORT_APPROX_GATHER", "1");
  return v;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace steport
