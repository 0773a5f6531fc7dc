#include "lut_gemm.h"

#include <cstdlib>
#include <numeric>

namespace steport::approx {
namespace {
// int32 addition modulo 2^32 without signed-overflow UB.
inline int32_t WrapAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
inline int32_t WrapSub(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
}
inline int32_t WrapMul(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}
}  // namespace

void LutGemmPortable(const GemmProblem& p, int64_t m_begin, int64_t m_end) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    for (int64_t n = 0; n < p.N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < p.K; ++k)
        acc = WrapAdd(acc, p.lut_t[int64_t(p.b[k * p.N + n]) * 256 + p.at[k * p.ld_at + m]]);
      if (p.corr) acc = WrapSub(acc, p.corr[n]);
      p.y[m * p.ldy_m + n * p.ldy_n] = acc;
    }
  }
}

void GatherAccPortable(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                       int32_t* acc) {
  for (int64_t i = 0; i < n; ++i) acc[i] = WrapAdd(acc[i], row[idx[i * stride]]);
}

Separable FactorLut(const int32_t* lut) {
  Separable s;
  // Pick the first nonzero row a0: g = row / gcd(row); f[a] = LUT[a][b1] / g[b1] for a b1
  // with g[b1] != 0; then verify every entry. All-zero LUT: f = g = 0.
  int a0 = -1;
  for (int a = 0; a < 256 && a0 < 0; ++a)
    for (int b = 0; b < 256; ++b)
      if (lut[a * 256 + b]) { a0 = a; break; }
  s.f.assign(256, 0);
  s.g.assign(256, 0);
  if (a0 < 0) { s.ok = true; return s; }
  int64_t gd = 0;
  for (int b = 0; b < 256; ++b) gd = std::gcd(gd, std::llabs(int64_t(lut[a0 * 256 + b])));
  int b1 = -1;
  std::vector<int64_t> g(256), f(256);
  for (int b = 0; b < 256; ++b) {
    g[b] = lut[a0 * 256 + b] / gd;
    if (b1 < 0 && g[b]) b1 = b;
  }
  for (int a = 0; a < 256; ++a) {
    const int64_t v = lut[a * 256 + b1];
    if (v % g[b1]) return s;
    f[a] = v / g[b1];
  }
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b)
      if (f[a] * g[b] != int64_t(lut[a * 256 + b])) return s;
  for (int i = 0; i < 256; ++i) {
    if (std::llabs(f[i]) > 32767 || std::llabs(g[i]) > 32767) return s;
    s.f[i] = static_cast<int16_t>(f[i]);
    s.g[i] = static_cast<int16_t>(g[i]);
  }
  s.ok = true;
  return s;
}

void SepGemmPortable(const SepProblem& p, int64_t m_begin, int64_t m_end) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    const int16_t* fa = p.fa + m * p.Kp;
    for (int64_t n = 0; n < p.N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < p.Kp; ++k)
        acc = WrapAdd(acc, WrapMul(fa[k], p.gb[(k >> 1) * p.N * 2 + n * 2 + (k & 1)]));
      if (p.corr) acc = WrapSub(acc, p.corr[n]);
      p.y[m * p.ldy_m + n * p.ldy_n] = acc;
    }
  }
}

}  // namespace steport::approx
