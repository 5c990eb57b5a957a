// An NHWC x HWIO convolution and its filter gradient on the CPU (AVX2/FMA), as XLA FFI handlers
// (affectjax/nn/cpu_kernel.py). The filter gradient reads x and the cotangent g in their NHWC
// layouts (no transposes): dw[i,j,c,o] = sum_{n,p,q} g[n,p,q,o] x[n, p*sh + i - pt, q*sw + j - pl, c],
// terms outside x being zero. The convolution is further down.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// fn(0) ... fn(chunks - 1) on XLA's thread pool, returning when all are done. Chunks are claimed by
// whoever comes first, the calling thread included, so a pool with no free thread never deadlocks
// the call; a late task finds nothing left and only touches the shared state it holds.
template <typename Fn>
void ParallelFor(ffi::ThreadPool& pool, int64_t chunks, Fn fn) {
  struct State {
    std::atomic<int64_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    int64_t done = 0;
  };
  auto st = std::make_shared<State>();
  auto work = [st, chunks, fn] {
    for (int64_t k; (k = st->next.fetch_add(1)) < chunks;) {
      fn(k);
      std::lock_guard<std::mutex> lock(st->mu);
      if (++st->done == chunks) st->cv.notify_all();
    }
  };
  for (int64_t t = 1; t < std::min<int64_t>(chunks, pool.num_threads() + 1); ++t)
    pool.Schedule(decltype(work)(work));
  work();
  std::unique_lock<std::mutex> lock(st->mu);
  st->cv.wait(lock, [&] { return st->done == chunks; });
}

struct Shape {
  int64_t n, h, w, c, ho, wo, o, kh, kw, sh, sw, pt, pl;
};

// acc[cb rows of x's channels][16 or 8 output channels] += x[c0 + r] * g[o0 : o0 + ob] over the
// positions of one tap (i, j) in images [n0, n1): a register-blocked outer-product sum.
template <int CB, int OV>
void Block(const Shape& s, const float* x, const float* g, float* dw, int64_t n0, int64_t n1,
           int64_t i, int64_t j, int64_t c0, int64_t o0, int64_t p0, int64_t p1, int64_t q0,
           int64_t q1) {
  __m256 acc[CB][OV];
  float* out = dw + ((i * s.kw + j) * s.c + c0) * s.o + o0;
  for (int r = 0; r < CB; ++r)
    for (int v = 0; v < OV; ++v) acc[r][v] = _mm256_loadu_ps(out + r * s.o + 8 * v);
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xrow = x + ((n * s.h + p * s.sh + i - s.pt) * s.w + j - s.pl) * s.c + c0;
      const float* grow = g + (n * s.ho + p) * s.wo * s.o + o0;
      for (int64_t q = q0; q < q1; ++q) {
        const float* xp = xrow + q * s.sw * s.c;
        const float* gp = grow + q * s.o;
        __m256 gv[OV];
        for (int v = 0; v < OV; ++v) gv[v] = _mm256_loadu_ps(gp + 8 * v);
        for (int r = 0; r < CB; ++r) {
          __m256 b = _mm256_broadcast_ss(xp + r);
          for (int v = 0; v < OV; ++v) acc[r][v] = _mm256_fmadd_ps(b, gv[v], acc[r][v]);
        }
      }
    }
  }
  for (int r = 0; r < CB; ++r)
    for (int v = 0; v < OV; ++v) _mm256_storeu_ps(out + r * s.o + 8 * v, acc[r][v]);
}

template <int OV>
void Rows(int cb, const Shape& s, const float* x, const float* g, float* dw, int64_t n0,
          int64_t n1, int64_t i, int64_t j, int64_t c0, int64_t o0, int64_t p0, int64_t p1,
          int64_t q0, int64_t q1) {
  switch (cb) {
#define CASE(K) \
  case K: Block<K, OV>(s, x, g, dw, n0, n1, i, j, c0, o0, p0, p1, q0, q1); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
  }
}

// the output rows p (or columns) at which tap k reads inside x: 0 <= p*s + k - pad < size
void Range(int64_t k, int64_t s, int64_t pad, int64_t size, int64_t out, int64_t* lo, int64_t* hi) {
  int64_t a = pad - k;  // p*s >= a
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  int64_t b = size + pad - k;  // p*s < b
  *hi = b <= 0 ? 0 : std::min(out, (b + s - 1) / s);
  if (*hi < *lo) *hi = *lo;
}

// dw (zeroed) += the contribution of images [n0, n1)
void Part(const Shape& s, const float* x, const float* g, float* dw, int64_t n0, int64_t n1) {
  const int ob = s.o % 16 == 0 ? 16 : 8;
  // the images in chunks that keep x's and g's rows in the cache across the taps
  const int64_t per = std::max<int64_t>(1, (256 << 10) / ((s.h * s.w * s.c + s.ho * s.wo * s.o) * 4));
  for (int64_t m0 = n0; m0 < n1; m0 += per) {
    const int64_t m1 = std::min(n1, m0 + per);
    for (int64_t i = 0; i < s.kh; ++i) {
      int64_t p0, p1;
      Range(i, s.sh, s.pt, s.h, s.ho, &p0, &p1);
      for (int64_t j = 0; j < s.kw; ++j) {
        int64_t q0, q1;
        Range(j, s.sw, s.pl, s.w, s.wo, &q0, &q1);
        if (p0 == p1 || q0 == q1) continue;
        for (int64_t o0 = 0; o0 < s.o; o0 += ob)
          for (int64_t c0 = 0; c0 < s.c; c0 += 6) {
            int cb = static_cast<int>(std::min<int64_t>(6, s.c - c0));
            if (ob == 16)
              Rows<2>(cb, s, x, g, dw, m0, m1, i, j, c0, o0, p0, p1, q0, q1);
            else
              Rows<1>(cb, s, x, g, dw, m0, m1, i, j, c0, o0, p0, p1, q0, q1);
          }
      }
    }
  }
}

ffi::Error FilterGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                      ffi::ResultBuffer<ffi::F32> dw, int64_t sh, int64_t sw, int64_t pt,
                      int64_t pl) {
  auto xd = x.dimensions(), gd = g.dimensions(), wd = dw->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || wd.size() != 4 || xd[0] != gd[0] || wd[2] != xd[3] ||
      wd[3] != gd[3] || gd[3] % 8 != 0)
    return ffi::Error::InvalidArgument("filter_grad: shapes x NHWC, g NHWC (O % 8 == 0), dw HWIO");
  Shape s{xd[0], xd[1], xd[2], xd[3], gd[1], gd[2], gd[3], wd[0], wd[1], sh, sw, pt, pl};
  const int64_t size = s.kh * s.kw * s.c * s.o;
  float* out = dw->typed_data();
  std::memset(out, 0, size * sizeof(float));
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), s.n));
  // chunk k > 0 sums into its own zeroed partial, added at the end
  std::vector<float> partial((chunks - 1) * size, 0.f);
  float* parts = partial.data();
  const float* xs = x.typed_data();
  const float* gs = g.typed_data();
  ParallelFor(pool, chunks, [=](int64_t k) {
    float* dst = k == 0 ? out : parts + (k - 1) * size;
    Part(s, xs, gs, dst, s.n * k / chunks, s.n * (k + 1) / chunks);
  });
  for (int64_t k = 1; k < chunks; ++k) {
    const float* p = partial.data() + (k - 1) * size;
    for (int64_t e = 0; e < size; ++e) out[e] += p[e];
  }
  return ffi::Error::Success();
}


// ------------------------------------------------------------------ forward convolution
// y[n,p,q,o] = sum_{i,j,c} x[n, p*sh + i - pt, q*sw + j - pl, c] w[i,j,c,o], terms outside x zero.
// The weights are repacked as wp[o block][i][j][c][V] (V = 8 * OV output channels); a tile of QB
// output pixels of one row times V channels sums in QB x OV AVX2 registers. For a fixed tap row i
// the pairs (j, c) of one pixel are contiguous in x (NHWC), so the inner loop is one run over them.

struct ConvShape {
  int64_t n, h, w, c, ho, wo, o, kh, kw, sh, sw, pt, pl;
};

template <int QB, int OV>
void Tile(const ConvShape& s, const float* x, const float* wp, float* y, int64_t n, int64_t p,
          int64_t i0, int64_t i1, int64_t q0, int64_t j0, int64_t j1, int64_t o0) {
  constexpr int V = 8 * OV;
  __m256 acc[QB][OV];
  for (int k = 0; k < QB; ++k)
    for (int v = 0; v < OV; ++v) acc[k][v] = _mm256_setzero_ps();
  const int64_t run = (j1 - j0) * s.c, step = s.sw * s.c;
  for (int64_t i = i0; i < i1; ++i) {
    const float* xp = x + ((n * s.h + p * s.sh + i - s.pt) * s.w + q0 * s.sw + j0 - s.pl) * s.c;
    const float* wr = wp + (i * s.kw + j0) * s.c * V;
    for (int64_t t = 0; t < run; ++t) {
      __m256 wv[OV];
      for (int v = 0; v < OV; ++v) wv[v] = _mm256_loadu_ps(wr + t * V + 8 * v);
      for (int k = 0; k < QB; ++k) {
        __m256 b = _mm256_broadcast_ss(xp + k * step + t);
        for (int v = 0; v < OV; ++v) acc[k][v] = _mm256_fmadd_ps(b, wv[v], acc[k][v]);
      }
    }
  }
  float* out = y + ((n * s.ho + p) * s.wo + q0) * s.o + o0;
  for (int k = 0; k < QB; ++k)
    for (int v = 0; v < OV; ++v) _mm256_storeu_ps(out + k * s.o + 8 * v, acc[k][v]);
}

template <int OV>
void Tiles(int qb, const ConvShape& s, const float* x, const float* wp, float* y, int64_t n,
           int64_t p, int64_t i0, int64_t i1, int64_t q0, int64_t j0, int64_t j1, int64_t o0) {
  switch (qb) {
#define CASE(K) \
  case K: Tile<K, OV>(s, x, wp, y, n, p, i0, i1, q0, j0, j1, o0); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
  }
}

// output rows [r0, r1) of the flattened (image, row) index, every output channel
template <int OV>
void ConvRows(const ConvShape& s, const float* x, const float* wp, float* y, int64_t r0,
              int64_t r1) {
  constexpr int V = 8 * OV, QB = OV == 2 ? 6 : 8;
  const int64_t block = s.kh * s.kw * s.c * V;
  // columns whose taps all lie inside x: [qa, qb)
  const int64_t qa = std::min(s.wo, (s.pl + s.sw - 1) / s.sw);
  const int64_t qz = s.w + s.pl - s.kw >= 0 ? (s.w + s.pl - s.kw) / s.sw + 1 : 0;
  const int64_t qb = std::max(qa, std::min(s.wo, qz));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / s.ho, p = r % s.ho;
    const int64_t i0 = std::max<int64_t>(0, s.pt - p * s.sh);
    const int64_t i1 = std::max(i0, std::min(s.kh, s.h + s.pt - p * s.sh));
    for (int64_t o0 = 0; o0 < s.o; o0 += V) {
      const float* wb = wp + (o0 / V) * block;
      auto edge = [&](int64_t q) {  // one pixel with its own tap columns
        const int64_t j0 = std::max<int64_t>(0, s.pl - q * s.sw);
        const int64_t j1 = std::max(j0, std::min(s.kw, s.w + s.pl - q * s.sw));
        Tile<1, OV>(s, x, wb, y, n, p, i0, i1, q, j0, j1, o0);
      };
      for (int64_t q = 0; q < qa; ++q) edge(q);
      for (int64_t q = qa; q < qb; q += QB)
        Tiles<OV>(static_cast<int>(std::min<int64_t>(QB, qb - q)), s, x, wb, y, n, p, i0, i1, q,
                  0, s.kw, o0);
      for (int64_t q = qb; q < s.wo; ++q) edge(q);
    }
  }
}

ffi::Error Conv(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                ffi::ResultBuffer<ffi::F32> y, int64_t sh, int64_t sw, int64_t pt, int64_t pl) {
  auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || wd.size() != 4 || yd.size() != 4 || xd[0] != yd[0] || wd[2] != xd[3] ||
      wd[3] != yd[3] || yd[3] % 8 != 0 || pt < 0 || pl < 0)
    return ffi::Error::InvalidArgument("conv: shapes x NHWC, w HWIO, y NHWC (O % 8 == 0), pads >= 0");
  ConvShape s{xd[0], xd[1], xd[2], xd[3], yd[1], yd[2], yd[3], wd[0], wd[1], sh, sw, pt, pl};
  const int ov = s.o % 16 == 0 ? 2 : 1, V = 8 * ov;
  // wp[o block][i][j][c][V]: one block's taps contiguous, in the order the tiles read them
  const int64_t taps = s.kh * s.kw * s.c;
  std::vector<float> packed(taps * s.o);
  const float* ws = w.typed_data();
  for (int64_t b = 0; b < s.o / V; ++b)
    for (int64_t t = 0; t < taps; ++t)
      std::memcpy(&packed[(b * taps + t) * V], ws + t * s.o + b * V, V * sizeof(float));
  const int64_t rows = s.n * s.ho;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(rows, 4 * pool.num_threads()));
  const float* xs = x.typed_data();
  const float* wp = packed.data();
  float* ys = y->typed_data();
  ParallelFor(pool, chunks, [=](int64_t k) {
    const int64_t r0 = rows * k / chunks, r1 = rows * (k + 1) / chunks;
    if (ov == 2)
      ConvRows<2>(s, xs, wp, ys, r0, r1);
    else
      ConvRows<1>(s, xs, wp, ys, r0, r1);
  });
  return ffi::Error::Success();
}

// both kernels: (XLA's thread pool, two float32 arrays) -> one array; strides and top/left pads
auto Binding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>()
      .Attr<int64_t>("sh")
      .Attr<int64_t>("sw")
      .Attr<int64_t>("pt")
      .Attr<int64_t>("pl");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AffectjaxFilterGrad, FilterGrad, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(AffectjaxConv, Conv, Binding());
