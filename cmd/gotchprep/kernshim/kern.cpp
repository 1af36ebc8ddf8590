// imgcap's CPU kernels: see kern.h. libtorch's operators quantized::linear_prepack and
// quantized::linear_dynamic are called through the dispatcher (boxed), so no private header of
// ATen is needed; gotchprep compiles the file with -DIMGCAP_QUANT_NONE when even that fails, and
// every int8 call then returns an error saying so (the attention kernel declines).
#include "kern.h"

#ifdef IMGCAP_QUANT_NONE
#define IMGCAP_SHIM_NO_TORCH
#endif
#include "shim.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifndef IMGCAP_QUANT_NONE
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#endif

namespace {

using imgcap::dup;

#ifndef IMGCAP_QUANT_NONE

using imgcap::guard;

// Packed is a layer's int8 weight twice over: the engine's prepacked form (a
// LinearPackedParamsBase object held as an IValue) for inputs of many rows, and the quantized
// weight itself (shared with the engine's copy of the original) for the few-row kernel below.
struct Packed {
  c10::IValue params;
  at::Tensor qweight;  // [out, in] per-channel qint8
  at::Tensor scales;   // [out] float32
  at::Tensor bias;     // [out] float32, or undefined
  int64_t out = 0, in = 0;
  // The few-row kernel's copy of the weight (see interleave), made by its first call: layers
  // that only ever see many rows (an image encoder's) never pay its memory.
  std::once_flag interleavedOnce;
  std::vector<int8_t> interleaved;  // empty: the kernel reads qweight
};

// kBlock is how many output rows the few-row kernel computes together.
constexpr int64_t kBlock = 4;

// interleave returns p's weight in the few-row kernel's order: for each block of kBlock output
// rows (the last one padded with zero rows), for each run of 8 inputs, the block's rows' 8
// weights one after another. The kernel then reads a single sequential stream instead of
// kBlock rows at once, which measured ~1.7× faster per thread on this project's CPU. Empty
// when the input size is not a multiple of 8 or the CPU lacks AVX2 (the kernel reads qweight).
std::vector<int8_t> interleave(const Packed &p, bool avx2) {
  std::vector<int8_t> out;
  const int64_t k = p.in, n = p.out;
  if (!avx2 || k % 8 != 0) {
    return out;
  }
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  out.assign(static_cast<size_t>(blocks * kBlock * k), 0);
  const int8_t *w = reinterpret_cast<const int8_t *>(p.qweight.data_ptr());
  for (int64_t o = 0; o < n; o++) {
    const int64_t b = o / kBlock, j = o % kBlock;
    for (int64_t c = 0; c < k; c += 8) {
      std::memcpy(&out[static_cast<size_t>(b * kBlock * k + c * kBlock + j * 8)], w + o * k + c, 8);
    }
  }
  return out;
}

// kFewRows is the most rows the few-row kernel takes: past it the engine's int8 GEMM, which
// also quantizes the input, is faster. (At one row, as in token-by-token decoding, the engine
// spends most of its ~0.7 ms per call on setting up the product.)
constexpr int64_t kFewRows = 16;

// dotScalar returns the dot product of x and the int8 weight row w (length k) in float32: the
// weight is int8 only in memory ("weight-only" quantization).
float dotScalar(const float *x, const int8_t *w, int64_t k) {
  float s = 0;
  for (int64_t i = 0; i < k; i++) {
    s += x[i] * static_cast<float>(w[i]);
  }
  return s;
}

// dotScalar is the dot product of two float vectors of length d.
float dotScalar(const float *a, const float *b, int64_t d) {
  float s = 0;
  for (int64_t i = 0; i < d; i++) {
    s += a[i] * b[i];
  }
  return s;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const int8_t *w) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(w))));
}

// dot4xR computes the dot products of R input rows x[r] with four consecutive int8 weight rows
// starting at w (row stride k) into acc[r*4 + j]: 4·R independent accumulators keep the FMA
// units busy, and each converted weight vector serves R rows.
template <int R>
__attribute__((target("avx2,fma"))) void dot4xR(const float *const *x, const int8_t *w, int64_t k, float *acc) {
  __m256 a[R][4];
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      a[r][j] = _mm256_setzero_ps();
    }
  }
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; r++) {
      xv[r] = _mm256_loadu_ps(x[r] + i);
    }
    for (int j = 0; j < 4; j++) {
      __m256 wv = load8(w + j * k + i);
      for (int r = 0; r < R; r++) {
        a[r][j] = _mm256_fmadd_ps(xv[r], wv, a[r][j]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      float s = hsum(a[r][j]);
      for (int64_t t = i; t < k; t++) {
        s += x[r][t] * static_cast<float>(w[j * k + t]);
      }
      acc[r * 4 + j] = s;
    }
  }
}

// dotInterleaved is dot4xR for one block of interleave's layout: w holds, for each run of 8
// inputs, the 8 weights of 4 rows one after another (k a multiple of 8).
template <int R>
__attribute__((target("avx2,fma"))) void dotInterleaved(const float *const *x, const int8_t *w, int64_t k,
                                                        float *acc) {
  __m256 a[R][4];
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      a[r][j] = _mm256_setzero_ps();
    }
  }
  for (int64_t i = 0; i < k; i += 8, w += 32) {
    __m256 xv[R];
    for (int r = 0; r < R; r++) {
      xv[r] = _mm256_loadu_ps(x[r] + i);
    }
    for (int j = 0; j < 4; j++) {
      const __m256 wv = load8(w + j * 8);
      for (int r = 0; r < R; r++) {
        a[r][j] = _mm256_fmadd_ps(xv[r], wv, a[r][j]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      acc[r * 4 + j] = hsum(a[r][j]);
    }
  }
}

// dotAVX2 is the dot product of two float vectors of length d (a multiple of 8).
__attribute__((target("avx2,fma"))) float dotAVX2(const float *a, const float *b, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < d; i += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  }
  return hsum(acc);
}

// axpyAVX2 adds alpha·x to y (length d, a multiple of 8).
__attribute__((target("avx2,fma"))) void axpyAVX2(float alpha, const float *x, float *y, int64_t d) {
  const __m256 a = _mm256_set1_ps(alpha);
  for (int64_t i = 0; i < d; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
}

// exp256 is e^x for 8 floats (range reduction to x = n·ln2 + r, |r| ≤ ln2/2, and a degree-6
// polynomial for e^r; relative error ~2e-7), with e^x = 0 below -87.
__attribute__((target("avx2,fma"))) inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x − n·ln2 in two steps (ln2 = 0.693359375 − 2.12194440e-4) to keep r exact enough.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// scaleMaskMax replaces the scores p[0..n) by p·scale + mask (mask: stride maskStride between
// keys, 0 for one value for all; null for none) and returns their maximum.
__attribute__((target("avx2,fma"))) float scaleMaskMax(float *p, int64_t n, float scale, const float *mask,
                                                       int64_t maskStride) {
  const __m256 sc = _mm256_set1_ps(scale);
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t t = 0;
  if (mask == nullptr || maskStride <= 1) {
    const __m256 m0 = _mm256_set1_ps(mask != nullptr ? mask[0] : 0.f);
    for (; t + 8 <= n; t += 8) {
      const __m256 add = (mask != nullptr && maskStride == 1) ? _mm256_loadu_ps(mask + t) : m0;
      const __m256 x = _mm256_fmadd_ps(_mm256_loadu_ps(p + t), sc, add);
      _mm256_storeu_ps(p + t, x);
      mv = _mm256_max_ps(mv, x);
    }
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, mv);
  float mx = *std::max_element(lanes, lanes + 8);
  for (; t < n; t++) {
    p[t] = p[t] * scale + (mask != nullptr ? mask[t * maskStride] : 0.f);
    mx = std::max(mx, p[t]);
  }
  return mx;
}

// expShift replaces p[0..n) by e^(p − mx) and returns their sum.
__attribute__((target("avx2,fma"))) float expShift(float *p, int64_t n, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p + t), m));
    _mm256_storeu_ps(p + t, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum(sum);
  for (; t < n; t++) {
    p[t] = std::exp(p[t] - mx);
    total += p[t];
  }
  return total;
}

// attendBlock computes R (≤ 6) query rows of one head: s = q·Kᵀ·scale + mask, softmax, s·V.
// kt is Kᵀ [D, tk] (row stride tk), v is [tk, D], s is scratch of R·tk floats; mask[r] is row
// r's additive mask with stride maskStride between keys (0: one value for every key), or null
// for none. D is a multiple of 8. Products are register-blocked: R rows × 16 keys (or 16
// columns of V) per inner loop, 12 independent sums at R = 6, enough to hide the FMA latency.
template <int R>
__attribute__((target("avx2,fma"))) void attendBlock(const float *q, const float *kt, const float *v, int64_t tk,
                                                     int64_t d, float scale, const float *const *mask,
                                                     int64_t maskStride, float *s, float *o) {
  int64_t j = 0;
  for (; j + 16 <= tk; j += 16) {
    __m256 a0[R], a1[R];
    for (int r = 0; r < R; r++) {
      a0[r] = _mm256_setzero_ps();
      a1[r] = _mm256_setzero_ps();
    }
    for (int64_t c = 0; c < d; c++) {
      const __m256 k0 = _mm256_loadu_ps(kt + c * tk + j), k1 = _mm256_loadu_ps(kt + c * tk + j + 8);
      for (int r = 0; r < R; r++) {
        const __m256 qb = _mm256_broadcast_ss(q + r * d + c);
        a0[r] = _mm256_fmadd_ps(qb, k0, a0[r]);
        a1[r] = _mm256_fmadd_ps(qb, k1, a1[r]);
      }
    }
    for (int r = 0; r < R; r++) {
      _mm256_storeu_ps(s + r * tk + j, a0[r]);
      _mm256_storeu_ps(s + r * tk + j + 8, a1[r]);
    }
  }
  for (; j < tk; j++) {
    for (int r = 0; r < R; r++) {
      float acc = 0;
      for (int64_t c = 0; c < d; c++) {
        acc += q[r * d + c] * kt[c * tk + j];
      }
      s[r * tk + j] = acc;
    }
  }
  float inv[R];
  for (int r = 0; r < R; r++) {
    float *sr = s + r * tk;
    const float mx = scaleMaskMax(sr, tk, scale, mask != nullptr ? mask[r] : nullptr, maskStride);
    inv[r] = 1.f / expShift(sr, tk, mx);
  }
  for (int64_t c = 0; c < d; c += 8) {
    const bool two = c + 16 <= d;
    __m256 a0[R], a1[R];
    for (int r = 0; r < R; r++) {
      a0[r] = _mm256_setzero_ps();
      a1[r] = _mm256_setzero_ps();
    }
    for (int64_t t = 0; t < tk; t++) {
      const __m256 v0 = _mm256_loadu_ps(v + t * d + c);
      const __m256 v1 = two ? _mm256_loadu_ps(v + t * d + c + 8) : v0;
      for (int r = 0; r < R; r++) {
        const __m256 pb = _mm256_broadcast_ss(s + r * tk + t);
        a0[r] = _mm256_fmadd_ps(pb, v0, a0[r]);
        a1[r] = _mm256_fmadd_ps(pb, v1, a1[r]);
      }
    }
    for (int r = 0; r < R; r++) {
      const __m256 iv = _mm256_set1_ps(inv[r]);
      _mm256_storeu_ps(o + r * d + c, _mm256_mul_ps(a0[r], iv));
      if (two) {
        _mm256_storeu_ps(o + r * d + c + 8, _mm256_mul_ps(a1[r], iv));
      }
    }
    if (two) {
      c += 8;
    }
  }
}

// sum8 returns the sums of the eight vectors a[0..7], in order, as one vector.
__attribute__((target("avx2,fma"))) inline __m256 sum8(const __m256 *a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// attendQuery64 computes one query row of one head with head size 64, as in token-by-token
// decoding: k and v are [tk, 64] in place, mask the row's additive mask (stride maskStride
// between keys; null for none), p scratch of tk floats. Scores come 8 keys at a time (8
// independent sums), and the output's 8 vectors stay in registers while v streams by.
__attribute__((target("avx2,fma"))) void attendQuery64(const float *q, const float *k, const float *v, int64_t tk,
                                                       float scale, const float *mask, int64_t maskStride, float *p,
                                                       float *o) {
  constexpr int64_t D = 64;
  int64_t j = 0;
  for (; j + 8 <= tk; j += 8) {
    __m256 a[8];
    for (int r = 0; r < 8; r++) {
      a[r] = _mm256_setzero_ps();
    }
    for (int64_t c = 0; c < D; c += 8) {
      const __m256 qc = _mm256_loadu_ps(q + c);
      for (int r = 0; r < 8; r++) {
        a[r] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k + (j + r) * D + c), a[r]);
      }
    }
    _mm256_storeu_ps(p + j, sum8(a));
  }
  for (; j < tk; j++) {
    p[j] = dotAVX2(q, k + j * D, D);
  }
  const float total = expShift(p, tk, scaleMaskMax(p, tk, scale, mask, maskStride));
  __m256 acc[8];
  for (int c = 0; c < 8; c++) {
    acc[c] = _mm256_setzero_ps();
  }
  for (int64_t t = 0; t < tk; t++) {
    const __m256 pb = _mm256_broadcast_ss(p + t);
    for (int c = 0; c < 8; c++) {
      acc[c] = _mm256_fmadd_ps(pb, _mm256_loadu_ps(v + t * D + c * 8), acc[c]);
    }
  }
  const __m256 inv = _mm256_set1_ps(1.f / total);
  for (int c = 0; c < 8; c++) {
    _mm256_storeu_ps(o + c * 8, _mm256_mul_ps(acc[c], inv));
  }
}

bool haveAVX2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#else
float dotAVX2(const float *a, const float *b, int64_t d) { return dotScalar(a, b, d); }
void axpyAVX2(float alpha, const float *x, float *y, int64_t d) {
  for (int64_t i = 0; i < d; i++) {
    y[i] += alpha * x[i];
  }
}
bool haveAVX2() { return false; }
// attendQuery64 is never called without AVX2 (imgcap_attend takes its scalar path).
void attendQuery64(const float *, const float *, const float *, int64_t, float, const float *, int64_t, float *,
                   float *) {}
// attendBlock is never called without AVX2 (imgcap_attend takes its scalar path).
template <int R>
void attendBlock(const float *, const float *, const float *, int64_t, int64_t, float, const float *const *, int64_t,
                 float *, float *) {}
template <int R>
void dot4xR(const float *const *x, const int8_t *w, int64_t k, float *acc) {
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      acc[r * 4 + j] = dotScalar(x[r], w + j * k, k);
    }
  }
}
// dotInterleaved is never called without AVX2 (interleave returns nothing then).
template <int R>
void dotInterleaved(const float *const *, const int8_t *, int64_t, float *) {}
#endif

// fewRows computes y [m, out] = x [m, in] · (scale ⊙ Wq)ᵀ + b with float32 activations, the
// output rows split across libtorch's intra-op threads. The int8 weight is read once per two
// input rows: a quarter of the float32 weight's memory traffic.
at::Tensor fewRows(Packed &p, const at::Tensor &x2) {
  const int64_t m = x2.size(0), k = p.in, n = p.out;
  at::Tensor y = at::empty({m, n}, x2.options());
  const float *xp = x2.data_ptr<float>();
  float *yp = y.data_ptr<float>();
  const int8_t *wp = reinterpret_cast<const int8_t *>(p.qweight.data_ptr());
  const float *sp = p.scales.data_ptr<float>();
  const float *bp = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
  const bool avx2 = haveAVX2();
  std::call_once(p.interleavedOnce, [&] { p.interleaved = interleave(p, avx2); });
  const int8_t *il = p.interleaved.empty() ? nullptr : p.interleaved.data();
  // Blocks of 4 output rows; the threads split the blocks.
  at::parallel_for(0, (n + 3) / 4, 8, [&](int64_t b0, int64_t b1) {
    float acc[8];
    for (int64_t r0 = 0; r0 < m; r0 += 2) {
      const int nr = static_cast<int>(std::min<int64_t>(2, m - r0));
      const float *rows[2] = {xp + r0 * k, xp + (r0 + nr - 1) * k};
      for (int64_t o = b0 * 4; o < std::min(n, b1 * 4); o += 4) {
        const int64_t no = std::min<int64_t>(4, n - o);
        if (il != nullptr) {
          // The padded rows of the last block are computed and not written.
          if (nr == 2) {
            dotInterleaved<2>(rows, il + o * k, k, acc);
          } else {
            dotInterleaved<1>(rows, il + o * k, k, acc);
          }
        } else if (avx2 && no == 4) {
          if (nr == 2) {
            dot4xR<2>(rows, wp + o * k, k, acc);
          } else {
            dot4xR<1>(rows, wp + o * k, k, acc);
          }
        } else {
          for (int r = 0; r < nr; r++) {
            for (int j = 0; j < no; j++) {
              acc[r * 4 + j] = dotScalar(rows[r], wp + (o + j) * k, k);
            }
          }
        }
        for (int r = 0; r < nr; r++) {
          for (int j = 0; j < no; j++) {
            yp[(r0 + r) * n + o + j] = acc[r * 4 + j] * sp[o + j] + (bp != nullptr ? bp[o + j] : 0.f);
          }
        }
      }
    }
  });
  return y;
}

// engineName is the name PyTorch gives a quantized engine.
const char *engineName(at::QEngine e) {
  switch (e) {
    case at::QEngine::FBGEMM:
      return "fbgemm";
    case at::QEngine::QNNPACK:
      return "qnnpack";
    case at::QEngine::ONEDNN:
      return "onednn";
    default:
      break;
  }
  // X86 (fbgemm + onednn) exists from libtorch 2.0 on.
  if (static_cast<int>(e) == 4) {
    return "x86";
  }
  return "";
}

// chooseEngine selects (once) the best quantized engine of this libtorch and makes it current.
at::QEngine chooseEngine() {
  static const at::QEngine chosen = [] {
    const auto &have = at::globalContext().supportedQEngines();
    auto has = [&](int e) {
      for (auto h : have) {
        if (static_cast<int>(h) == e) {
          return true;
        }
      }
      return false;
    };
    // x86, fbgemm, onednn, qnnpack: best first.
    for (int e : {4, static_cast<int>(at::QEngine::FBGEMM), static_cast<int>(at::QEngine::ONEDNN),
                  static_cast<int>(at::QEngine::QNNPACK)}) {
      if (has(e)) {
        at::globalContext().setQEngine(static_cast<at::QEngine>(e));
        return static_cast<at::QEngine>(e);
      }
    }
    return at::QEngine::NoQEngine;
  }();
  return chosen;
}

#endif

}  // namespace

extern "C" {

#ifdef IMGCAP_QUANT_NONE

static const char *kNone = "this libtorch has no quantized linear operators (the int8 shim did not compile against it)";

char *imgcap_quant_engine(void) { return dup(""); }

char *imgcap_qlinear_pack(void *, void *, void **out) {
  *out = nullptr;
  return dup(kNone);
}

char *imgcap_qlinear_forward(void *, void *, int, void **out) {
  *out = nullptr;
  return dup(kNone);
}

void imgcap_qlinear_free(void *) {}

char *imgcap_attend(void *, void *, void *, void *, double, void **out) {
  *out = nullptr;
  return nullptr;
}

char *imgcap_release_storage(void *) { return dup(kNone); }

#else

char *imgcap_quant_engine(void) {
  std::string name;
  char *err = guard("quantized engine", [&] { name = engineName(chooseEngine()); });
  if (err != nullptr) {
    std::free(err);
    return dup("");
  }
  return dup(name);
}

char *imgcap_qlinear_pack(void *weight, void *bias, void **out) {
  *out = nullptr;
  return guard("int8 linear pack", [&] {
    if (chooseEngine() == at::QEngine::NoQEngine) {
      throw std::runtime_error("this libtorch has no quantized engine for this CPU");
    }
    const at::Tensor &w = *static_cast<at::Tensor *>(weight);
    TORCH_CHECK(w.dim() == 2, "weight must be [out, in], got ", w.sizes());
    TORCH_CHECK(w.device().is_cpu(), "int8 linear layers run on the CPU only; the weight is on ", w.device());
    at::Tensor wf = w.detach().to(at::kFloat).contiguous();
    at::Tensor scales = wf.abs().amax({1}).div(127.0).clamp_min(1e-8).to(at::kDouble);
    at::Tensor zeros = at::zeros({wf.size(0)}, at::kLong);
    at::Tensor qw = at::quantize_per_channel(wf, scales, zeros, 0, at::kQInt8);
    auto p = std::make_unique<Packed>();
    c10::IValue b;
    if (bias != nullptr) {
      p->bias = static_cast<at::Tensor *>(bias)->detach().to(at::kFloat).contiguous();
      TORCH_CHECK(p->bias.dim() == 1 && p->bias.size(0) == wf.size(0), "bias must be [", wf.size(0), "], got ",
                  p->bias.sizes());
      b = p->bias;
    }
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
    std::vector<c10::IValue> stack{qw, b};
    op.callBoxed(&stack);
    TORCH_CHECK(stack.size() == 1, "quantized::linear_prepack returned ", stack.size(), " values");
    p->params = std::move(stack[0]);
    p->qweight = qw;
    p->scales = scales.to(at::kFloat);
    p->out = wf.size(0);
    p->in = wf.size(1);
    *out = p.release();
  });
}

char *imgcap_qlinear_forward(void *packed, void *x, int reduce_range, void **out) {
  *out = nullptr;
  return guard("int8 linear", [&] {
    TORCH_CHECK(packed != nullptr, "layer is not packed");
    const at::Tensor &in = *static_cast<at::Tensor *>(x);
    TORCH_CHECK(in.device().is_cpu(), "int8 linear layers run on the CPU only; the input is on ", in.device());
    TORCH_CHECK(in.scalar_type() == at::kFloat, "int8 linear layers take float32 inputs, got ", in.scalar_type());
    Packed &p = *static_cast<Packed *>(packed);
    TORCH_CHECK(in.dim() >= 1 && in.size(-1) == p.in, "input ", in.sizes(), " does not end in ", p.in);
    const int64_t rows = in.numel() / p.in;
    if (rows <= kFewRows) {
      at::Tensor x2 = in.reshape({rows, p.in}).contiguous();
      std::vector<int64_t> shape(in.sizes().begin(), in.sizes().end());
      shape.back() = p.out;
      *out = new at::Tensor(fewRows(p, x2).view(shape));
      return;
    }
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_dynamic", "");
    std::vector<c10::IValue> stack{in.contiguous(), p.params, reduce_range != 0};
    op.callBoxed(&stack);
    TORCH_CHECK(stack.size() == 1 && stack[0].isTensor(), "quantized::linear_dynamic returned no tensor");
    *out = new at::Tensor(stack[0].toTensor());
  });
}

void imgcap_qlinear_free(void *packed) { delete static_cast<Packed *>(packed); }

char *imgcap_attend(void *qp, void *kp, void *vp, void *maskp, double scale, void **out) {
  *out = nullptr;
  return guard("attention", [&] {
    const at::Tensor &q = *static_cast<at::Tensor *>(qp);
    const at::Tensor &k = *static_cast<at::Tensor *>(kp);
    const at::Tensor &v = *static_cast<at::Tensor *>(vp);
    const at::Tensor *mask = static_cast<at::Tensor *>(maskp);
    if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) {
      return;
    }
    const bool blocked = haveAVX2() && q.size(3) % 8 == 0;
    if (!blocked && q.size(2) > 16) {
      return;
    }
    for (const at::Tensor *t : {&q, &k, &v, mask}) {
      if (t != nullptr && (!t->device().is_cpu() || t->scalar_type() != at::kFloat)) {
        return;
      }
    }
    if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                                       (mask != nullptr && mask->requires_grad()))) {
      return;
    }
    const int64_t N = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
    if (k.size(0) != N || k.size(1) != H || k.size(3) != D || !v.sizes().equals(k.sizes())) {
      return;
    }
    at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    at::Tensor m;
    if (mask != nullptr) {
      m = mask->expand({N, H, Tq, Tk});  // strided view: broadcast dimensions have stride 0
    }
    at::Tensor o = at::empty({N, H, Tq, D}, q.options());
    const float *Q = qc.data_ptr<float>(), *K = kc.data_ptr<float>(), *V = vc.data_ptr<float>();
    float *O = o.data_ptr<float>();
    const float *M = m.defined() ? m.data_ptr<float>() : nullptr;
    int64_t ms[4] = {0, 0, 0, 0};
    if (m.defined()) {
      for (int d = 0; d < 4; d++) {
        ms[d] = m.stride(d);
      }
    }
    const float s = static_cast<float>(scale);
    if (blocked && Tq > 16) {
      // Kᵀ per head, so that 16 keys' scores come from contiguous loads; tasks of 36 query rows.
      // (A few queries, as in decoding, read k in place instead: transposing the cached keys at
      // every step would cost more than the products.)
      at::Tensor kt = kc.transpose(2, 3).contiguous();
      const float *KT = kt.data_ptr<float>();
      constexpr int64_t kRows = 36;  // a multiple of the 6 rows attendBlock takes at once
      const int64_t chunks = (Tq + kRows - 1) / kRows;
      at::parallel_for(0, N * H * chunks, 1, [&](int64_t c0, int64_t c1) {
        std::vector<float> scratch(6 * Tk);
        for (int64_t c = c0; c < c1; c++) {
          const int64_t b = c / chunks, n = b / H, h = b % H;
          const int64_t r0 = (c % chunks) * kRows, r1 = std::min(Tq, r0 + kRows);
          for (int64_t t0 = r0; t0 < r1; t0 += 6) {
            const float *rows[6];
            for (int r = 0; r < 6; r++) {
              rows[r] = M != nullptr ? M + n * ms[0] + h * ms[1] + std::min(t0 + r, Tq - 1) * ms[2] : nullptr;
            }
            const float *const *mk = M != nullptr ? rows : nullptr;
            const float *qt = Q + (b * Tq + t0) * D;
            float *ot = O + (b * Tq + t0) * D;
            const float *ktb = KT + b * D * Tk, *vb = V + b * Tk * D;
            float *sp = scratch.data();
            switch (std::min<int64_t>(6, r1 - t0)) {
              case 6:
                attendBlock<6>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
                break;
              case 5:
                attendBlock<5>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
                break;
              case 4:
                attendBlock<4>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
                break;
              case 3:
                attendBlock<3>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
                break;
              case 2:
                attendBlock<2>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
                break;
              default:
                attendBlock<1>(qt, ktb, vb, Tk, D, s, mk, ms[3], sp, ot);
            }
          }
        }
      });
      *out = new at::Tensor(o);
      return;
    }
    const bool avx2 = haveAVX2() && D % 8 == 0;
    at::parallel_for(0, N * H, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> p(Tk);
      for (int64_t b = b0; b < b1; b++) {
        const int64_t n = b / H, h = b % H;
        const float *Kb = K + b * Tk * D, *Vb = V + b * Tk * D;
        for (int64_t t = 0; t < Tq; t++) {
          const float *qt = Q + (b * Tq + t) * D;
          float *ot = O + (b * Tq + t) * D;
          if (avx2 && D == 64) {
            const float *mr = M != nullptr ? M + n * ms[0] + h * ms[1] + t * ms[2] : nullptr;
            attendQuery64(qt, Kb, Vb, Tk, s, mr, ms[3], p.data(), ot);
            continue;
          }
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < Tk; j++) {
            float x = (avx2 ? dotAVX2(qt, Kb + j * D, D) : dotScalar(qt, Kb + j * D, D)) * s;
            if (M != nullptr) {
              x += M[n * ms[0] + h * ms[1] + t * ms[2] + j * ms[3]];
            }
            p[j] = x;
            mx = std::max(mx, x);
          }
          float sum = 0;
          for (int64_t j = 0; j < Tk; j++) {
            p[j] = std::exp(p[j] - mx);
            sum += p[j];
          }
          const float inv = 1.f / sum;
          std::fill(ot, ot + D, 0.f);
          for (int64_t j = 0; j < Tk; j++) {
            if (avx2) {
              axpyAVX2(p[j] * inv, Vb + j * D, ot, D);
            } else {
              for (int64_t d = 0; d < D; d++) {
                ot[d] += p[j] * inv * Vb[j * D + d];
              }
            }
          }
        }
      }
    });
    *out = new at::Tensor(o);
  });
}

char *imgcap_release_storage(void *tensor) {
  return guard("release weight", [&] {
    at::NoGradGuard noGrad;
    static_cast<at::Tensor *>(tensor)->set_();
  });
}

#endif

}  // extern "C"
