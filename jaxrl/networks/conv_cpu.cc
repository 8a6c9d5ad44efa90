// Direct VALID 2-D convolution on x86 CPUs with AVX-512: the forward pass and the kernel gradient, as
// XLA FFI handlers ("jaxrl_conv_fwd", "jaxrl_conv_dkernel"). Built and loaded by
// jaxrl/networks/conv_kernels.py; see its docstring for why.
//
// Layout: x [B, N, H, W, C], kernel [B, KH, KW, C, O], y [B, N, OH, OW, O] (B: leading axes that
// jax.vmap adds, folded into one; B = 1 unbatched). For one kernel row kh, the input a pixel reads
// is one contiguous run of L = KW * C floats (x[n, oh*S + kh, ow*S : ow*S + KW, :]), so
//   y[p, o]            = sum_kh sum_{j < L} x[base(p) + kh*W*C + j] * k[kh, j, o]
//   dk[kh, j, o]       = sum_p x[base(p) + kh*W*C + j] * dy[p, o]
// with base(p) = ((n*H + oh*S)*W + ow*S)*C. Both are register-blocked outer products: output channels
// in zmm vectors (16 floats), pixels (forward) or kernel rows (gradient) broadcast from memory.
// Requires O % 16 == 0 (the Python side checks and falls back otherwise).

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using jaxrl::ParallelFor;

namespace {

struct Geometry {
  int64_t n, h, w, c, kh, kw, o, s, oh, ow;
  int64_t pixels() const { return n * oh * ow; }
  int64_t run() const { return kw * c; }         // L: contiguous floats per kernel row
  int64_t row_stride() const { return w * c; }   // floats between input rows
  int64_t base(int64_t p) const {                // start of pixel p's patch in x
    int64_t q = p % (oh * ow), b = p / (oh * ow);
    return ((b * h + (q / ow) * s) * w + (q % ow) * s) * c;
  }
};

// y for RB pixels (p0..p0+RB-1) and 16*OV output channels from o0.
template <int RB, int OV>
inline void ForwardBlock(const Geometry& g, const float* x, const float* k, float* y, int64_t p0,
                         int64_t o0) {
  const float* xp[RB];
  for (int r = 0; r < RB; ++r) xp[r] = x + g.base(p0 + r);
  __m512 acc[RB][OV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int64_t L = g.run(), rs = g.row_stride();
  for (int64_t i = 0; i < g.kh; ++i) {
    const float* kr = k + i * L * g.o + o0;
    for (int64_t j = 0; j < L; ++j) {
      __m512 kv[OV];
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) kv[v] = _mm512_loadu_ps(kr + j * g.o + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        __m512 xv = _mm512_set1_ps(xp[r][i * rs + j]);
#pragma GCC unroll 4
        for (int v = 0; v < OV; ++v) acc[r][v] = _mm512_fmadd_ps(xv, kv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) _mm512_storeu_ps(y + (p0 + r) * g.o + o0 + 16 * v, acc[r][v]);
}

template <int RB, int OV>
void ForwardRange(const Geometry& g, const float* x, const float* k, float* y, int64_t p_begin,
                  int64_t p_end, int64_t o0) {
  int64_t p = p_begin;
  for (; p + RB <= p_end; p += RB) ForwardBlock<RB, OV>(g, x, k, y, p, o0);
  for (; p < p_end; ++p) ForwardBlock<1, OV>(g, x, k, y, p, o0);
}

constexpr int64_t kForwardTile = 96;  // pixels per parallel task
constexpr int64_t kGradTile = 128;    // pixels whose dy rows stay in L1 while all kernel rows pass

template <int RB, int OV>
void Forward(ffi::ThreadPool& pool, const Geometry& g, int64_t batch, const float* x,
             const float* k, float* y) {
  const int64_t tiles = (g.pixels() + kForwardTile - 1) / kForwardTile;
  const int64_t chunks = g.o / (16 * OV);
  ParallelFor(pool, batch * tiles * chunks, [&](int64_t t) {
    int64_t b = t / (tiles * chunks), rest = t % (tiles * chunks);
    int64_t tile = rest / chunks, chunk = rest % chunks;
    int64_t p0 = tile * kForwardTile, p1 = std::min(p0 + kForwardTile, g.pixels());
    ForwardRange<RB, OV>(g, x + b * g.n * g.h * g.w * g.c, k + b * g.kh * g.run() * g.o,
                         y + b * g.pixels() * g.o, p0, p1, chunk * 16 * OV);
  });
}

// dk rows r0..r0+RJ-1 (of KH*L; RJ divides L, so one kernel row kh), channels o0..o0+16*OV-1, summed
// over pixels [p0, p1); adds to dk unless first.
template <int RJ, int OV>
inline void GradBlock(const Geometry& g, const int64_t* base, const float* x, const float* dy,
                      float* dk, int64_t r0, int64_t o0, int64_t p0, int64_t p1, bool first) {
  const int64_t L = g.run();
  const int64_t off = (r0 / L) * g.row_stride() + r0 % L;
  jaxrl::OuterProductRows<RJ, OV>([&](int64_t p) { return x + base[p] + off; },
                                  [&](int64_t p) { return dy + p * g.o + o0; }, p0, p1,
                                  dk + r0 * g.o + o0, g.o, first, __mmask16(0xFFFF));
}

template <int RJ, int OV>
void KernelGrad(ffi::ThreadPool& pool, const Geometry& g, int64_t batch, const float* x,
                const float* dy, float* dk) {
  const int64_t P = g.pixels();
  std::vector<int64_t> base(P);
  for (int64_t p = 0; p < P; ++p) base[p] = g.base(p);
  const int64_t row_blocks = g.kh * g.run() / RJ, chunks = g.o / (16 * OV);
  const int64_t units = row_blocks * chunks;
  // each task owns a set of (row block, channel chunk) units of one batch entry and walks all pixels
  // tile by tile, so a tile's dy stays in cache while its units pass over it; 4 tasks per thread, so
  // a thread that starts late (its core busy with another op) leaves the rest to the others
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(4 * pool.num_threads(), units));
  ParallelFor(pool, batch * groups, [&](int64_t t) {
    int64_t b = t / groups, grp = t % groups;
    int64_t u0 = grp * units / groups, u1 = (grp + 1) * units / groups;
    const float* xb = x + b * g.n * g.h * g.w * g.c;
    const float* dyb = dy + b * P * g.o;
    float* dkb = dk + b * g.kh * g.run() * g.o;
    for (int64_t p0 = 0; p0 < P; p0 += kGradTile) {
      int64_t p1 = std::min(p0 + kGradTile, P);
      for (int64_t u = u0; u < u1; ++u)
        GradBlock<RJ, OV>(g, base.data(), xb, dyb, dkb, (u / chunks) * RJ, (u % chunks) * 16 * OV,
                          p0, p1, p0 == 0);
    }
  });
}

// dx for one image: for RB pixels and kernel row kh, the 16*JV input floats from j0 of each pixel's
// run get sum_o dy[p, o] * kt[kh, o, j] added (kt: the kernel as [KH, O, L]); runs of neighbouring
// pixels overlap when the stride is below the kernel, hence the read-add-write.
template <int RB, int JV>
inline void InputGradBlock(const Geometry& g, const float* dy, const float* kt, float* dx,
                           int64_t p0, int64_t kh, int64_t j0) {
  __m512 acc[RB][JV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < JV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int64_t L = g.run();
  const float* kr = kt + kh * g.o * L + j0;
  for (int64_t o = 0; o < g.o; ++o) {
    __m512 kv[JV];
#pragma GCC unroll 4
    for (int v = 0; v < JV; ++v) kv[v] = _mm512_loadu_ps(kr + o * L + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      __m512 dv = _mm512_set1_ps(dy[(p0 + r) * g.o + o]);
#pragma GCC unroll 4
      for (int v = 0; v < JV; ++v) acc[r][v] = _mm512_fmadd_ps(dv, kv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    float* out = dx + g.base(p0 + r) + kh * g.row_stride() + j0;
#pragma GCC unroll 4
    for (int v = 0; v < JV; ++v)
      _mm512_storeu_ps(out + 16 * v, _mm512_add_ps(_mm512_loadu_ps(out + 16 * v), acc[r][v]));
  }
}

template <int RB, int JV>
void InputGrad(ffi::ThreadPool& pool, const Geometry& g, int64_t batch, const float* dy,
               const float* k, float* dx) {
  const int64_t L = g.run(), R = g.kh * L, image = g.h * g.w * g.c, pix = g.oh * g.ow;
  // the kernel as [B, KH, O, L], so a kernel row's run is contiguous per output channel
  std::vector<float> kt(batch * R * g.o);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t o = 0; o < g.o; ++o)
        kt[b * R * g.o + ((r / L) * g.o + o) * L + r % L] = k[(b * R + r) * g.o + o];
  Geometry one = g;
  one.n = 1;
  ParallelFor(pool, batch * g.n, [&](int64_t t) {
    int64_t b = t / g.n;
    float* dxi = dx + t * image;
    const float* dyi = dy + t * pix * g.o;
    const float* kti = kt.data() + b * R * g.o;
    std::fill(dxi, dxi + image, 0.0f);
    for (int64_t p = 0; p < pix; p += RB) {
      for (int64_t kh = 0; kh < g.kh; ++kh)
        for (int64_t j0 = 0; j0 < L; j0 += 16 * JV) {
          if (p + RB <= pix)
            InputGradBlock<RB, JV>(one, dyi, kti, dxi, p, kh, j0);
          else
            for (int64_t q = p; q < pix; ++q) InputGradBlock<1, JV>(one, dyi, kti, dxi, q, kh, j0);
        }
    }
  });
}

// Splits a buffer's dimensions into the folded leading axes and the trailing four.
int64_t Leading(ffi::Span<const int64_t> d) {
  int64_t b = 1;
  for (size_t i = 0; i + 4 < d.size(); ++i) b *= d[i];
  return b;
}

// The geometry of x [..., N, H, W, C] and the kernel [..., KH, KW, C, O] with the output grid of
// y [..., N, OH, OW, O] (y is the conv's output or its cotangent), and the folded leading axes; an
// error where the ranks or channels do not fit the kernels.
ffi::Error Parse(ffi::Span<const int64_t> xd, ffi::Span<const int64_t> kd, ffi::Span<const int64_t> yd,
                 int64_t stride, Geometry& g, int64_t& batch) {
  size_t rx = xd.size(), rk = kd.size(), ry = yd.size();
  if (rx < 4 || rk != rx || ry != rx) return ffi::Error::InvalidArgument("conv: rank mismatch");
  g = Geometry{xd[rx - 4], xd[rx - 3], xd[rx - 2], xd[rx - 1], kd[rk - 4], kd[rk - 3],
               kd[rk - 1], stride, yd[ry - 3], yd[ry - 2]};
  if (g.o % 16 != 0 || kd[rk - 2] != g.c)
    return ffi::Error::InvalidArgument("conv: needs C_out % 16 == 0 and matching C_in");
  batch = Leading(xd);
  return ffi::Error::Success();
}

ffi::Error ConvForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                           ffi::ResultBuffer<ffi::F32> y, int64_t stride) {
  Geometry g;
  int64_t batch;
  if (ffi::Error e = Parse(x.dimensions(), k.dimensions(), y->dimensions(), stride, g, batch); e.failure())
    return e;
  const float* xp = x.typed_data();
  const float* kp = k.typed_data();
  float* yp = y->typed_data();
  if (g.o % 64 == 0)
    Forward<6, 4>(pool, g, batch, xp, kp, yp);
  else if (g.o % 32 == 0)
    Forward<12, 2>(pool, g, batch, xp, kp, yp);
  else
    Forward<16, 1>(pool, g, batch, xp, kp, yp);
  return ffi::Error::Success();
}

ffi::Error ConvKernelGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                              ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dk,
                              int64_t stride) {
  Geometry g;
  int64_t batch;
  if (ffi::Error e = Parse(x.dimensions(), dk->dimensions(), dy.dimensions(), stride, g, batch); e.failure())
    return e;
  const float* xp = x.typed_data();
  const float* dp = dy.typed_data();
  float* kp = dk->typed_data();
  const int64_t L = g.run();
  // the most kernel rows per block (at most 8, dividing L: a block stays in one kernel row)
  int64_t rj = 8;
  while (L % rj != 0) --rj;
  if (g.o % 64 == 0 && L % 4 == 0) {
    KernelGrad<4, 4>(pool, g, batch, xp, dp, kp);
  } else if (g.o % 32 == 0 && rj == 8) {
    KernelGrad<8, 2>(pool, g, batch, xp, dp, kp);
  } else {
    switch (rj) {
      case 8: KernelGrad<8, 1>(pool, g, batch, xp, dp, kp); break;
      case 7: KernelGrad<7, 1>(pool, g, batch, xp, dp, kp); break;
      case 6: KernelGrad<6, 1>(pool, g, batch, xp, dp, kp); break;
      case 5: KernelGrad<5, 1>(pool, g, batch, xp, dp, kp); break;
      case 4: KernelGrad<4, 1>(pool, g, batch, xp, dp, kp); break;
      case 3: KernelGrad<3, 1>(pool, g, batch, xp, dp, kp); break;
      case 2: KernelGrad<2, 1>(pool, g, batch, xp, dp, kp); break;
      default: KernelGrad<1, 1>(pool, g, batch, xp, dp, kp); break;
    }
  }
  return ffi::Error::Success();
}

ffi::Error ConvInputGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dy,
                             ffi::Buffer<ffi::F32> k, ffi::ResultBuffer<ffi::F32> dx,
                             int64_t stride) {
  Geometry g;
  int64_t batch;
  if (ffi::Error e = Parse(dx->dimensions(), k.dimensions(), dy.dimensions(), stride, g, batch); e.failure())
    return e;
  if (g.run() % 16 != 0) return ffi::Error::InvalidArgument("conv: needs KW * C_in % 16 == 0");
  const int64_t vectors = g.run() / 16;
  const float* dp = dy.typed_data();
  const float* kp = k.typed_data();
  float* xp = dx->typed_data();
  if (vectors % 4 == 0)
    InputGrad<6, 4>(pool, g, batch, dp, kp, xp);
  else if (vectors % 3 == 0)
    InputGrad<8, 3>(pool, g, batch, dp, kp, xp);
  else if (vectors % 2 == 0)
    InputGrad<12, 2>(pool, g, batch, dp, kp, xp);
  else
    InputGrad<16, 1>(pool, g, batch, dp, kp, xp);
  return ffi::Error::Success();
}

}  // namespace

// The three handlers' shared signature: two float32 operands, one float32 result, the stride.
#define JAXRL_CONV_BINDING                                                       \
  ffi::Ffi::Bind()                                                               \
      .Ctx<ffi::ThreadPool>()                                                    \
      .Arg<ffi::Buffer<ffi::F32>>()                                              \
      .Arg<ffi::Buffer<ffi::F32>>()                                              \
      .Ret<ffi::Buffer<ffi::F32>>()                                              \
      .Attr<int64_t>("stride")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlConvForward, ConvForwardImpl, JAXRL_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlConvKernelGrad, ConvKernelGradImpl, JAXRL_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlConvInputGrad, ConvInputGradImpl, JAXRL_CONV_BINDING);
