/* C ABI of the approximate-multiplier kernels for callers outside ONNX Runtime: the PyTorch
 * training ops (steport.train.ops.approx, via ctypes) compute their LUT sums with the same
 * drivers the ORT nodes run (core/approx/lut_ops.h). Semantics: docs/ops.md
 * (ApproxMatMulInteger, ApproxConvInteger). All pointers are dense, row-major, CPU memory.
 * Every function returns 0 on success, or 1 and a NUL-terminated message in err[0..err_len)
 * for input it rejects (shapes, attribute ranges); it never throws. `threads` <= 1 runs on
 * the calling thread. The ISA is the best the CPU has, capped by STEPORT_ISA. */
#ifndef STEPORT_APPROX_ABI_H_
#define STEPORT_APPROX_ABI_H_
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[M, N] = sum_k lut[a[m, k] * 256 + uint8(b[k, n])] - zp * sum_k b[k, n]   (int32, wrapping)
 * lut: int32 [65536]; a: uint8 [M, K]; b: int8 [K, N]; zp in [0, 255]. */
int steport_approx_matmul(const int32_t* lut, const uint8_t* a, int64_t M, int64_t K,
                          const int8_t* b, int64_t N, int32_t zp, int32_t* y, int32_t threads,
                          char* err, int64_t err_len);

/* ApproxConvInteger: x uint8 [NB, C, H, W], w int8 [Co, C/group, KH, KW], y int32
 * [NB, Co, OH, OW] with OH, OW as docs/ops.md computes them from strides[2], pads[4]
 * (top, left, bottom, right), dilations[2]. */
int steport_approx_conv2d(const int32_t* lut, const uint8_t* x, int64_t NB, int64_t C, int64_t H,
                          int64_t W, const int8_t* w, int64_t Co, int64_t Cg, int64_t KH,
                          int64_t KW, const int64_t* strides, const int64_t* pads,
                          const int64_t* dilations, int64_t group, int32_t zp, int32_t* y,
                          int32_t threads, char* err, int64_t err_len);

/* LUT preparations built since the library was loaded (shared by content across nodes,
 * sessions and training calls: a table used many times is prepared once). */
int64_t steport_approx_preparations(void);

#ifdef __cplusplus
}
#endif
#endif
