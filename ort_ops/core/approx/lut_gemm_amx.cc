// AMX-INT8 variant of the narrow separable GEMM (Sep8Problem: u8 x s8, exact int32 sums
// wrapping mod 2^32 like the VNNI kernel). Built in the AVX-512 unit list; the AMX target is
// enabled for the kernel function only, which runs only after AmxInt8Usable() (CPUID + XCR0 +
// the Linux arch_prctl permission for tile data).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/common/cpu.h"
#include "lut_gemm.h"

namespace steport::approx {

// Blocks of 32 rows x 32 columns: C tiles 0-3, A tiles 4-5 (16 rows x 64 k), B tiles 6-7
// (16 k-quads x 16 columns). Caller guarantees: m_begin % 32 == 0, fa rows readable up to
// round_up(m_end, 32), Kp % 64 == 0, ldg % 32 == 0 with quads readable up to ldg.
__attribute__((target("amx-tile,amx-int8"))) void Sep8GemmAmx(const Sep8Problem& p,
                                                                 int64_t m_begin, int64_t m_end) {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  alignas(64) int32_t c[32 * 32];
  const int64_t lda = p.Kp, ldb = p.ldg * 4;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += 32) {
    for (int64_t n0 = 0; n0 < p.N; n0 += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t k0 = 0; k0 < p.Kp; k0 += 64) {
        const uint8_t* a = p.fa + m0 * lda + k0;
        const int8_t* b = p.gb + (k0 / 4) * ldb + n0 * 4;
        _tile_loadd(4, a, lda);
        _tile_loadd(5, a + 16 * lda, lda);
        _tile_loadd(6, b, ldb);
        _tile_loadd(7, b + 64, ldb);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
      _tile_stored(0, c, 128);
      _tile_stored(1, c + 16, 128);
      _tile_stored(2, c + 16 * 32, 128);
      _tile_stored(3, c + 16 * 32 + 16, 128);
      const int64_t rows = std::min<int64_t>(32, m_end - m0), cols = std::min<int64_t>(32, p.N - n0);
      for (int64_t i = 0; i < rows; ++i) {
        int32_t* yr = p.y + (m0 + i) * p.ldy_m + n0 * p.ldy_n;
        for (int64_t j = 0; j < cols; ++j) {
          const uint32_t cc = p.corr ? static_cast<uint32_t>(p.corr[n0 + j]) : 0u;
          yr[j * p.ldy_n] = static_cast<int32_t>(static_cast<uint32_t>(c[i * 32 + j]) - cc);
        }
      }
    }
  }
  _tile_release();
}

}  // namespace steport::approx
