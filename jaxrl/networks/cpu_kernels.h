// Shared by jaxrl's hand-written CPU kernels (conv_cpu.cc, dense_cpu.cc): running the items of an op on
// the caller and XLA's intra-op thread pool, and the weight-gradient form of a product. Built with them by
// jaxrl/networks/cpu_kernels.py (x86 with AVX-512).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace jaxrl {

// Runs fn(i) for i in [0, count) on the caller and XLA's intra-op pool. The caller never waits for a
// scheduled task to start (XLA may run this op on a pool thread, and two such ops waiting for each
// other's tasks would deadlock): it takes items itself and waits only for items other threads have
// already taken. Tasks that start late find nothing left and touch only the shared counters.
template <typename F>
void ParallelFor(xla::ffi::ThreadPool& pool, int64_t count, F fn) {
  int64_t helpers = std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1), count) - 1;
  if (helpers <= 0) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto shared = std::make_shared<Shared>();
  F* body = &fn;
  // a helper only dereferences body after claiming an item, which the caller is still waiting for
  auto work = [](Shared& st, F* f, int64_t n) {
    for (int64_t i; (i = st.next.fetch_add(1)) < n;) {
      (*f)(i);
      if (st.done.fetch_add(1) + 1 == n) {
        std::lock_guard<std::mutex> lock(st.mu);
        st.cv.notify_all();
      }
    }
  };
  for (int64_t t = 0; t < helpers; ++t)
    pool.Schedule([shared, body, count, work]() { work(*shared, body, count); });
  work(*shared, body, count);
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done.load() == count; });
}

// The weight-gradient form of a product (sum over rows p of a(p)^T b(p)) as a register-blocked outer
// product: out[r, 16 v + i] (+)= sum_{p in [p0, p1)} a(p)[r] * b(p)[16 v + i] for r < RJ and v < OV, where
// a(p) and b(p) point at row p's entries; the last vector is loaded and stored with the mask tail.
// out's rows are ldo apart; it is added to unless first.
template <int RJ, int OV, typename A, typename B>
inline void OuterProductRows(A a, B b, int64_t p0, int64_t p1, float* out, int64_t ldo, bool first,
                             __mmask16 tail) {
  __m512 acc[RJ][OV];
#pragma GCC unroll 16
  for (int r = 0; r < RJ; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v)
      acc[r][v] = first ? _mm512_setzero_ps()
                        : _mm512_maskz_loadu_ps(v == OV - 1 ? tail : 0xFFFF, out + r * ldo + 16 * v);
  for (int64_t p = p0; p < p1; ++p) {
    const float* ar = a(p);
    const float* br = b(p);
    __m512 bv[OV];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) bv[v] = _mm512_maskz_loadu_ps(v == OV - 1 ? tail : 0xFFFF, br + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < RJ; ++r) {
      __m512 av = _mm512_set1_ps(ar[r]);
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RJ; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, v == OV - 1 ? tail : 0xFFFF, acc[r][v]);
}

}  // namespace jaxrl
