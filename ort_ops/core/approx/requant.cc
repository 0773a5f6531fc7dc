// Requantization and fused max-pool (requant.h); the portable kernels and the drivers.
#include "requant.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace steport::approx {
namespace {

// The code of one accumulator (bias already added, wrapping). Clamping to [-y_zp, 255 - y_zp]
// before rounding equals saturating after it: the bounds are integers and rounding is
// monotone. std::nearbyint rounds half to even in the default rounding mode.
inline uint8_t Code(int32_t v, float mult, int32_t y_zp) {
  float f = static_cast<float>(v) * mult;
  f = std::min(std::max(f, static_cast<float>(-y_zp)), static_cast<float>(255 - y_zp));
  return static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(f)) + y_zp);
}

inline int32_t WrapAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

using SpanFn = void (*)(const int32_t*, int64_t, int32_t, float, int32_t, uint8_t*);

// A 2x2 / stride-2 pool whose every window is whole: rows 2ph, 2ph + 1 < H and columns
// 2pw, 2pw + 1 < W (the AVX-512 kernels read them all). Bottom / right pads of 1 on an odd
// size clip the last window to one row or column: the general path (which the fast one took
// before, reading the next row's first value and past the last plane).
bool Unclipped2x2(const PoolShape& p, int64_t H, int64_t W, int64_t PH, int64_t PW) {
  return p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.pt == 0 && p.pl == 0 &&
         2 * PH <= H && 2 * PW <= W;
}

// One plane with the pool: each output row reduces its window rows (vertical, contiguous),
// then the columns of the reduced row (horizontal), then requantizes PW values.
void PoolPlane(const int32_t* acc, int64_t H, int64_t W, const PoolShape& p, int64_t PH,
               int64_t PW, int32_t bias, float mult, int32_t y_zp, bool take_min, SpanFn span,
               int32_t* rowbuf, int32_t* outbuf, uint8_t* y) {
  for (int64_t ph = 0; ph < PH; ++ph) {
    const int64_t h0 = std::max<int64_t>(ph * p.sh - p.pt, 0);
    const int64_t h1 = std::min<int64_t>(ph * p.sh - p.pt + p.kh, H);  // h0 < h1 (pads < kernel)
    // The pool compares the biased values wrap32(acc + bias), the ones requantized: adding
    // the bias after the pool would differ where an addition wraps.
    for (int64_t w = 0; w < W; ++w) rowbuf[w] = WrapAdd(acc[h0 * W + w], bias);
    for (int64_t h = h0 + 1; h < h1; ++h) {
      const int32_t* r = acc + h * W;
      if (take_min)
        for (int64_t w = 0; w < W; ++w) rowbuf[w] = std::min(rowbuf[w], WrapAdd(r[w], bias));
      else
        for (int64_t w = 0; w < W; ++w) rowbuf[w] = std::max(rowbuf[w], WrapAdd(r[w], bias));
    }
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int64_t w0 = std::max<int64_t>(pw * p.sw - p.pl, 0);
      const int64_t w1 = std::min<int64_t>(pw * p.sw - p.pl + p.kw, W);
      int32_t v = rowbuf[w0];
      for (int64_t w = w0 + 1; w < w1; ++w) v = take_min ? std::min(v, rowbuf[w]) : std::max(v, rowbuf[w]);
      outbuf[pw] = v;
    }
    span(outbuf, PW, 0, mult, y_zp, y + ph * PW);
  }
}

}  // namespace

void RequantSpanPortable(const int32_t* acc, int64_t n, int32_t bias, float mult, int32_t y_zp,
                         uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = Code(WrapAdd(acc[i], bias), mult, y_zp);
}

void RequantRowPortable(const int32_t* acc, int64_t n, const int32_t* bias, const float* mult,
                        bool per_channel, int32_t y_zp, uint8_t* y) {
  for (int64_t j = 0; j < n; ++j)
    y[j] = Code(WrapAdd(acc[j], bias[j]), per_channel ? mult[j] : mult[0], y_zp);
}

void RequantizePlanes(Isa isa, const int32_t* acc, int64_t NB, int64_t C, int64_t H, int64_t W,
                      const RequantParams& q, const PoolShape& pool, int64_t PH, int64_t PW,
                      uint8_t* y, const ParFn& par) {
  const bool avx512 = isa == Isa::kAvx512;
  const SpanFn span = avx512 ? RequantSpanAvx512 : RequantSpanPortable;
  const bool pooled = !pool.identity();
  const bool pool2x2 = Unclipped2x2(pool, H, W, PH, PW);
  const int64_t plane = H * W, grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(plane, 1));
  par(NB * C, grain, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> rowbuf(pooled ? W : 0), outbuf(pooled ? PW : 0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t c = i % C;
      const int32_t bias = q.bias[c];
      const float mult = q.per_channel ? q.mult[c] : q.mult[0];
      const int32_t* a = acc + i * plane;
      uint8_t* out = y + i * PH * PW;
      if (!pooled) {
        span(a, plane, bias, mult, q.y_zp, out);
        continue;
      }
      if (avx512 && pool2x2) {  // the common VGG / ResNet pool
        for (int64_t ph = 0; ph < PH; ++ph)
          Pool2x2RequantAvx512(a + 2 * ph * W, a + (2 * ph + 1) * W, PW, bias, mult, q.y_zp,
                               mult < 0.0f, out + ph * PW);
        continue;
      }
      PoolPlane(a, H, W, pool, PH, PW, bias, mult, q.y_zp, mult < 0.0f, span,
                rowbuf.data(), outbuf.data(), out);
    }
  });
}

void MaxPoolCodes(Isa isa, const uint8_t* codes, int64_t planes, int64_t H, int64_t W,
                  const PoolShape& p, int64_t PH, int64_t PW, uint8_t* y, const ParFn& par) {
  const bool pool2x2 = isa == Isa::kAvx512 && Unclipped2x2(p, H, W, PH, PW);
  const int64_t plane = H * W, grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(plane, 1));
  par(planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t* a = codes + i * plane;
      uint8_t* out = y + i * PH * PW;
      for (int64_t ph = 0; ph < PH; ++ph) {
        if (pool2x2) {
          Pool2x2CodesAvx512(a + 2 * ph * W, a + (2 * ph + 1) * W, PW, out + ph * PW);
          continue;
        }
        const int64_t h0 = std::max<int64_t>(ph * p.sh - p.pt, 0);
        const int64_t h1 = std::min<int64_t>(ph * p.sh - p.pt + p.kh, H);  // h0 < h1 (pads < kernel)
        for (int64_t pw = 0; pw < PW; ++pw) {
          const int64_t w0 = std::max<int64_t>(pw * p.sw - p.pl, 0);
          const int64_t w1 = std::min<int64_t>(pw * p.sw - p.pl + p.kw, W);
          uint8_t v = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) v = std::max(v, a[h * W + w]);
          out[ph * PW + pw] = v;
        }
      }
    }
  });
}

void RequantizeRows(Isa isa, const int32_t* acc, int64_t M, int64_t N, const RequantParams& q,
                    uint8_t* y, const ParFn& par) {
  const auto row = isa == Isa::kAvx512 ? RequantRowAvx512 : RequantRowPortable;
  par(M, std::max<int64_t>(1, 65536 / std::max<int64_t>(N, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m)
      row(acc + m * N, N, q.bias, q.mult, q.per_channel, q.y_zp, y + m * N);
  });
}

}  // namespace steport::approx
