// The C ABI of steport/approx_abi.h: the training front end of the approx kernels. Threads
// are plain std::threads per call (a training call is milliseconds long; the ORT front end
// uses ORT's pool instead).
#include "steport/approx_abi.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/common/cpu.h"
#include "core/common/shapes.h"
#include "lut_ops.h"

namespace steport::approx {
namespace {

// Chunks of at least `grain` items handed out dynamically to `threads` workers (the caller is
// one of them); the first exception is rethrown after all have stopped.
ParFn ThreadPar(int32_t threads) {
  return [threads](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, 256);
    const int64_t workers = std::min<int64_t>(std::max<int32_t>(threads, 1), chunks);
    if (workers <= 1) { fn(0, n); return; }
    const int64_t chunk = (n + chunks - 1) / chunks;
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mu;
    auto work = [&]() {
      try {
        for (int64_t c; (c = next.fetch_add(1)) * chunk < n;)
          fn(c * chunk, std::min(n, (c + 1) * chunk));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(workers - 1));  // may throw before any thread exists
    for (int64_t i = 1; i < workers; ++i) {
      try {
        pool.emplace_back(work);
      } catch (const std::system_error&) {
        // No more threads (a process limit): the chunks are handed out dynamically, so the
        // threads already running and this one take them all. Propagating would destroy
        // joinable threads (std::terminate).
        break;
      }
    }
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  };
}

void Fail(const std::string& msg) { throw std::invalid_argument(msg); }

int Report(const char* what, char* err, int64_t err_len) {
  if (err && err_len > 0) std::snprintf(err, static_cast<size_t>(err_len), "%s", what);
  return 1;
}

template <typename F>
int Guard(char* err, int64_t err_len, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    return Report(e.what(), err, err_len);
  } catch (...) {
    return Report("unknown error", err, err_len);
  }
}

}  // namespace
}  // namespace steport::approx

using namespace steport;
using namespace steport::approx;

extern "C" {

__attribute__((visibility("default"))) int steport_approx_matmul(
    const int32_t* lut, const uint8_t* a, int64_t M, int64_t K, const int8_t* b, int64_t N,
    int32_t zp, int32_t* y, int32_t threads, char* err, int64_t err_len) {
  return Guard(err, err_len, [&] {
    if (!lut || M < 0 || K < 0 || N < 0 || zp < 0 || zp > 255) Fail("bad matmul arguments");
    if (M == 0 || N == 0) return;
    if (!a || !b || !y) Fail("null buffer");
    if (K == 0) { std::fill(y, y + M * N, 0); return; }
    auto prep = PrepareLut(lut);
    MatMul(*prep, SelectKernelVariants(), a, M, K, b, N, zp, y, ThreadPar(threads));
  });
}

__attribute__((visibility("default"))) int steport_approx_conv2d(
    const int32_t* lut, const uint8_t* x, int64_t NB, int64_t C, int64_t H, int64_t W,
    const int8_t* w, int64_t Co, int64_t Cg, int64_t KH, int64_t KW, const int64_t* strides,
    const int64_t* pads, const int64_t* dilations, int64_t group, int32_t zp, int32_t* y,
    int32_t threads, char* err, int64_t err_len) {
  return Guard(err, err_len, [&] {
    if (!lut || !strides || !pads || !dilations) Fail("null argument");
    if (NB < 0 || C < 1 || H < 1 || W < 1 || Co < 1 || Cg < 1 || KH < 1 || KW < 1 || group < 1 ||
        zp < 0 || zp > 255)
      Fail("bad conv shape or zero point");
    if (C % group || Co % group || Cg * group != C) Fail("channels do not fit group");
    for (int i = 0; i < 2; ++i)
      if (strides[i] < 1 || dilations[i] < 1) Fail("strides and dilations must be >= 1");
    for (int i = 0; i < 4; ++i)
      if (pads[i] < 0) Fail("pads must be >= 0");
    const int64_t OH = ConvOutputSize(H, pads[0], pads[2], KH, strides[0], dilations[0]);
    const int64_t OW = ConvOutputSize(W, pads[1], pads[3], KW, strides[1], dilations[1]);
    if (OH < 1 || OW < 1) Fail("kernel larger than the padded input");
    if (NB == 0) return;
    if (!x || !w || !y) Fail("null buffer");
    const ConvShape s{NB, C, H, W, Co, Cg, KH, KW, strides[0], strides[1], pads[0], pads[1],
                      pads[2], pads[3], dilations[0], dilations[1], group, OH, OW};
    auto prep = PrepareLut(lut);
    Conv(*prep, SelectKernelVariants(), s, x, w, zp, y, ThreadPar(threads));
  });
}

__attribute__((visibility("default"))) int64_t steport_approx_preparations(void) {
  return PreparationCount();
}

}  // extern "C"
