// Dense layers with SiLU, y = silu(x w + b), fused on x86 CPUs with AVX-512, as XLA FFI handlers: the
// forward pass with the bias and activation in the product's epilogue (for training also storing the
// activation's derivative d), the weight and bias gradients from x and dz (the pre-activation's
// cotangent), and the cotangent handed to the layer below, (dz w^T) * d_below. Built and loaded by
// jaxrl/networks/dense_kernels.py; see its docstring for why.
//
// Layout: x [B, M, K], w [B, K, N], b [B, N], y [B, M, N] (B: leading axes that jax.vmap adds, folded
// into one; B = 1 unbatched). Output columns sit in zmm vectors (16 floats; the last one masked when
// N % 16 != 0), rows (forward, input gradient) or weight rows (weight gradient) are broadcast, so every
// product is a register-blocked outer product, the weight gradient included (XLA runs x^T g in a slower
// form than x w).
//
// SiLU in the epilogue: see Silu below; a few float32 ulp of the exact function and its derivative.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cpu_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using jaxrl::ParallelFor;

namespace {

// y = silu(z) = z s, s = sigmoid(z) = 1 / (1 + e), e = exp(-z), and the derivative d = s + y (1 - s) with
// 1 - s = e s (no cancellation for large z). e: z clamped to [-87, 104] (e stays finite, 1 + e keeps a
// normal reciprocal; beyond, s is 1 or below 2e-38 either way), -z = n ln2 + r with |r| <= ln2 / 2
// (ln2 in two parts), e^r by a degree-6 polynomial fitted to e^r on that interval (relative error 1e-7
// in float32), times 2^n; 1 / (1 + e) by a division (as fast here as rcp14 and a Newton step: the divider
// runs beside the FMA units).
inline void Silu(__m512 z, __m512& y, __m512& d) {
  const __m512 zc = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(zc, _mm512_set1_ps(-1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 q = _mm512_fmadd_ps(n, _mm512_set1_ps(0.693359375f), zc);  // q = -r
  q = _mm512_fmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), q);
  // e^r = sum_i c_i r^i = sum_i c_i (-q)^i
  __m512 p = _mm512_set1_ps(0.0013880354817956686f);
  p = _mm512_fmsub_ps(p, q, _mm512_set1_ps(0.008379952050745487f));
  p = _mm512_fmsub_ps(p, q, _mm512_set1_ps(-0.04166750982403755f));
  p = _mm512_fmsub_ps(p, q, _mm512_set1_ps(0.16666340827941895f));
  p = _mm512_fmsub_ps(p, q, _mm512_set1_ps(-0.4999999403953552f));
  p = _mm512_fmsub_ps(p, q, _mm512_set1_ps(1.0000001192092896f));
  p = _mm512_fmadd_ps(p, q, _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_scalef_ps(p, n);
  const __m512 den = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  // below the clamp s is under 2e-38: exactly 0 there (and for NaN), so that y and d are 0 for any finite
  // z < -87 (not z times the clamp's s, which is far from 0 for huge |z|) and NaN for z = -inf or NaN, as
  // jax.nn.silu gives
  const __m512 s = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(z, _mm512_set1_ps(-87.0f), _CMP_GE_OQ),
                                       _mm512_set1_ps(1.0f), den);
  y = _mm512_mul_ps(z, s);
  d = _mm512_fmadd_ps(y, _mm512_mul_ps(e, s), s);
}

// Lanes of the last of nv column vectors that hold columns (< n - c0).
inline __mmask16 TailMask(int64_t n, int64_t c0, int nv) {
  int64_t left = n - c0 - 16 * (nv - 1);
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

struct Dims {
  int64_t m, k, n;
};

enum class Epilogue { kSilu, kSiluGrad, kScale };

// out[r, c0 + ...] for RB rows of a (row stride lda, depth kd) times bm (row stride ldb), OV column
// vectors from c0 (the last masked by tail); the epilogue adds the bias and applies SiLU (and stores its
// derivative to d with kSiluGrad), or (kScale) multiplies by d's entries, storing to out.
template <int RB, int OV, Epilogue E>
inline void ProductBlock(const float* a, int64_t lda, int64_t kd, const float* bm, int64_t ldb,
                         const float* bias, float* out, float* d, int64_t ldo, int64_t c0, __mmask16 tail) {
  __m512 acc[RB][OV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t j = 0; j < kd; ++j) {
    __m512 bv[OV];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v)
      bv[v] = _mm512_maskz_loadu_ps(v == OV - 1 ? tail : 0xFFFF, bm + j * ldb + c0 + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      __m512 av = _mm512_set1_ps(a[r * lda + j]);
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  __m512 biasv[OV];
  if (E != Epilogue::kScale) {
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) biasv[v] = _mm512_maskz_loadu_ps(v == OV - 1 ? tail : 0xFFFF, bias + c0 + 16 * v);
  }
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) {
      __mmask16 mk = v == OV - 1 ? tail : 0xFFFF;
      int64_t at = r * ldo + c0 + 16 * v;
      if (E == Epilogue::kScale) {
        _mm512_mask_storeu_ps(out + at, mk, _mm512_mul_ps(acc[r][v], _mm512_maskz_loadu_ps(mk, d + at)));
      } else {
        __m512 yv, dv;
        Silu(_mm512_add_ps(acc[r][v], biasv[v]), yv, dv);
        _mm512_mask_storeu_ps(out + at, mk, yv);
        if (E == Epilogue::kSiluGrad) _mm512_mask_storeu_ps(d + at, mk, dv);
      }
    }
}

// Rows [0, rows) of the product (see ProductBlock), all columns (ncols), blocked by 64 columns.
template <Epilogue E>
void Product(const float* a, int64_t lda, int64_t kd, const float* bm, int64_t ncols, const float* bias,
             float* out, float* d, int64_t rows) {
  for (int64_t c0 = 0; c0 < ncols; c0 += 64) {
    const int ov = static_cast<int>(std::min<int64_t>(4, (ncols - c0 + 15) / 16));
    const __mmask16 tail = TailMask(ncols, c0, ov);
    auto run = [&](auto rb_tag, auto ov_tag) {
      constexpr int RB = decltype(rb_tag)::value, OV = decltype(ov_tag)::value;
      int64_t p = 0;
      for (; p + RB <= rows; p += RB)
        ProductBlock<RB, OV, E>(a + p * lda, lda, kd, bm, ncols, bias, out + p * ncols,
                                d ? d + p * ncols : nullptr, ncols, c0, tail);
      for (; p < rows; ++p)
        ProductBlock<1, OV, E>(a + p * lda, lda, kd, bm, ncols, bias, out + p * ncols,
                               d ? d + p * ncols : nullptr, ncols, c0, tail);
    };
    using std::integral_constant;
    switch (ov) {
      case 4: run(integral_constant<int, 6>{}, integral_constant<int, 4>{}); break;
      case 3: run(integral_constant<int, 8>{}, integral_constant<int, 3>{}); break;
      case 2: run(integral_constant<int, 12>{}, integral_constant<int, 2>{}); break;
      default: run(integral_constant<int, 16>{}, integral_constant<int, 1>{}); break;
    }
  }
}

constexpr int64_t kRowTile = 96;  // rows per parallel task (forward)
constexpr int64_t kGradTile = 64;  // rows whose dz stays in L1 while all weight rows pass over it

template <Epilogue E>
void Forward(ffi::ThreadPool& pool, const Dims& g, int64_t batch, const float* x, const float* w,
             const float* b, float* y, float* d) {
  const int64_t tiles = (g.m + kRowTile - 1) / kRowTile;
  ParallelFor(pool, batch * tiles, [&](int64_t t) {
    int64_t bi = t / tiles, p0 = (t % tiles) * kRowTile, p1 = std::min(p0 + kRowTile, g.m);
    int64_t at = (bi * g.m + p0) * g.n;
    Product<E>(x + (bi * g.m + p0) * g.k, g.k, g.k, w + bi * g.k * g.n, g.n, b + bi * g.n, y + at,
               E == Epilogue::kSiluGrad ? d + at : nullptr, p1 - p0);
  });
}

// dw rows j0..j0+RJ-1, column vectors c0.. (the last masked by tail), summed over rows [p0, p1) of x and
// dz; adds to dw unless first.
template <int RJ, int OV>
inline void WeightGradBlock(const Dims& g, const float* x, const float* dz, float* dw, int64_t j0,
                            int64_t c0, int64_t p0, int64_t p1, bool first, __mmask16 tail) {
  jaxrl::OuterProductRows<RJ, OV>([&](int64_t p) { return x + p * g.k + j0; },
                                  [&](int64_t p) { return dz + p * g.n + c0; }, p0, p1, dw + j0 * g.n + c0,
                                  g.n, first, tail);
}

template <int OV>
void WeightGradRows(const Dims& g, const float* x, const float* dz, float* dw, int64_t c0, int64_t p0,
                    int64_t p1) {
  constexpr int RJ = OV == 4 ? 6 : OV == 3 ? 7 : OV == 2 ? 10 : 14;
  const __mmask16 tail = TailMask(g.n, c0, OV);
  const bool first = p0 == 0;
  int64_t j = 0;
  for (; j + RJ <= g.k; j += RJ) WeightGradBlock<RJ, OV>(g, x, dz, dw, j, c0, p0, p1, first, tail);
  for (; j + 4 <= g.k; j += 4) WeightGradBlock<4, OV>(g, x, dz, dw, j, c0, p0, p1, first, tail);
  for (; j < g.k; ++j) WeightGradBlock<1, OV>(g, x, dz, dw, j, c0, p0, p1, first, tail);
}

// db = column sums of dz, dw = x^T dz for one batch entry, a tile of rows at a time (its dz stays in L1
// while every block of dw passes over it).
void WeightGrad(const Dims& g, const float* x, const float* dz, float* dw, float* db) {
  std::fill(db, db + g.n, 0.0f);
  if (g.m == 0) std::fill(dw, dw + g.k * g.n, 0.0f);
  for (int64_t p0 = 0; p0 < g.m; p0 += kGradTile) {
    const int64_t p1 = std::min(p0 + kGradTile, g.m);
    for (int64_t c = 0; c < g.n; c += 16) {
      const __mmask16 mk = TailMask(g.n, c, 1);
      __m512 sum = _mm512_setzero_ps();
      for (int64_t p = p0; p < p1; ++p) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mk, dz + p * g.n + c));
      _mm512_mask_storeu_ps(db + c, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, db + c), sum));
    }
    for (int64_t c0 = 0; c0 < g.n; c0 += 64) {
      switch (std::min<int64_t>(4, (g.n - c0 + 15) / 16)) {
        case 4: WeightGradRows<4>(g, x, dz, dw, c0, p0, p1); break;
        case 3: WeightGradRows<3>(g, x, dz, dw, c0, p0, p1); break;
        case 2: WeightGradRows<2>(g, x, dz, dw, c0, p0, p1); break;
        default: WeightGradRows<1>(g, x, dz, dw, c0, p0, p1); break;
      }
    }
  }
}

// dz_prev = (dz wt) * d_prev for one batch entry (wt: w transposed, [N, K]; d_prev [M, K]).
void InputGrad(ffi::ThreadPool& pool, const Dims& g, int64_t batch, const float* dz, const float* wt,
               const float* d_prev, float* out) {
  const int64_t tiles = (g.m + kRowTile - 1) / kRowTile;
  ParallelFor(pool, batch * tiles, [&](int64_t t) {
    int64_t bi = t / tiles, p0 = (t % tiles) * kRowTile, p1 = std::min(p0 + kRowTile, g.m);
    const int64_t at = (bi * g.m + p0) * g.k;
    Product<Epilogue::kScale>(dz + (bi * g.m + p0) * g.n, g.n, g.n, wt + bi * g.k * g.n, g.k, nullptr,
                              out + at, const_cast<float*>(d_prev + at), p1 - p0);
  });
}

// The folded leading axes of a buffer whose last `trailing` axes are the operand's own.
int64_t Leading(ffi::Span<const int64_t> d, size_t trailing) {
  int64_t b = 1;
  for (size_t i = 0; i + trailing < d.size(); ++i) b *= d[i];
  return b;
}

// The sizes of x [..., M, K] and w [..., K, N] and the folded leading axes (the same on both).
ffi::Error Parse(ffi::Span<const int64_t> xd, ffi::Span<const int64_t> wd, Dims& g, int64_t& batch) {
  size_t rx = xd.size(), rw = wd.size();
  if (rx < 2 || rw != rx) return ffi::Error::InvalidArgument("dense: x and w need the same rank >= 2");
  g = Dims{xd[rx - 2], xd[rx - 1], wd[rw - 1]};
  if (wd[rw - 2] != g.k) return ffi::Error::InvalidArgument("dense: x's last axis must match w's rows");
  batch = Leading(xd, 2);
  if (Leading(wd, 2) != batch) return ffi::Error::InvalidArgument("dense: leading axes differ");
  return ffi::Error::Success();
}

template <Epilogue E>
ffi::Error RunForward(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& w,
                      ffi::Buffer<ffi::F32>& b, float* y, float* d) {
  Dims g;
  int64_t batch;
  if (ffi::Error e = Parse(x.dimensions(), w.dimensions(), g, batch); e.failure()) return e;
  Forward<E>(pool, g, batch, x.typed_data(), w.typed_data(), b.typed_data(), y, d);
  return ffi::Error::Success();
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                       ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> y) {
  return RunForward<Epilogue::kSilu>(pool, x, w, b, y->typed_data(), nullptr);
}

ffi::Error ForwardTrainImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                            ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> y,
                            ffi::ResultBuffer<ffi::F32> d) {
  return RunForward<Epilogue::kSiluGrad>(pool, x, w, b, y->typed_data(), d->typed_data());
}

// dw = x^T dz, db = the column sums of dz (per batch entry).
ffi::Error WeightGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dz,
                          ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> db) {
  Dims g;
  int64_t batch;
  if (ffi::Error e = Parse(x.dimensions(), dw->dimensions(), g, batch); e.failure()) return e;
  const float *xp = x.typed_data(), *zp = dz.typed_data();
  float *wp = dw->typed_data(), *bp = db->typed_data();
  ParallelFor(pool, batch, [&](int64_t i) {
    WeightGrad(g, xp + i * g.m * g.k, zp + i * g.m * g.n, wp + i * g.k * g.n, bp + i * g.n);
  });
  return ffi::Error::Success();
}

// The cotangent of the layer below's pre-activation: (dz w^T) * d_prev, from dz [..., M, N], wt = w^T
// [..., N, K] and d_prev [..., M, K] (that layer's SiLU derivative).
ffi::Error InputGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dz, ffi::Buffer<ffi::F32> wt,
                         ffi::Buffer<ffi::F32> d_prev, ffi::ResultBuffer<ffi::F32> out) {
  auto od = out->dimensions(), zd = dz.dimensions(), td = wt.dimensions();
  const size_t r = od.size();
  if (r < 2 || zd.size() != r || td.size() != r || d_prev.dimensions().size() != r)
    return ffi::Error::InvalidArgument("dense: dz, w^T, d_prev and the result need the same rank >= 2");
  if (td[r - 2] != zd[r - 1] || td[r - 1] != od[r - 1] || zd[r - 2] != od[r - 2])
    return ffi::Error::InvalidArgument("dense: dz [M, N], w^T [N, K] and d_prev [M, K] do not fit");
  const Dims g{od[r - 2], od[r - 1], zd[r - 1]};
  const int64_t batch = Leading(od, 2);
  InputGrad(pool, g, batch, dz.typed_data(), wt.typed_data(), d_prev.typed_data(), out->typed_data());
  return ffi::Error::Success();
}

}  // namespace

// The handlers' shared start: XLA's thread pool and three float32 operands.
#define JAXRL_DENSE_BINDING                                                                         \
  ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Arg< \
      ffi::Buffer<ffi::F32>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlDenseSiluForward, ForwardImpl, JAXRL_DENSE_BINDING.Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlDenseSiluForwardTrain, ForwardTrainImpl,
                              JAXRL_DENSE_BINDING.Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlDenseSiluWeightGrad, WeightGradImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlDenseSiluInputGrad, InputGradImpl, JAXRL_DENSE_BINDING.Ret<ffi::Buffer<ffi::F32>>());
