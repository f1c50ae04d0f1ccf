// Robust aggregation rules (fedml/algorithms/robust.h): median, trimmed mean, Krum, Multi-Krum,
// Bulyan, geometric median and their wise variants. Why one file of this size: the rules share
// one base (buffering, layout and finiteness checks) and the distance kernels, private here.
#include "fedml/algorithms/robust.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fedml/core/cpu.h"
#include "fedml/core/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace fedml::algorithms {
namespace {

// ---------------------------------------------------------------------------------------------
// Kernels. Each hot loop is written once as an always-inline body and compiled twice: for the
// baseline x86-64 the library is built for (SSE2) and, picked at run time, for AVX2, which
// doubles the lanes (the same scheme as fedavg.cc). Reductions are spelled out with a fixed number
// of lanes: gcc does not reorder floating-point sums by itself, and fixed lanes make the result
// the same on every ISA.

// NaN and Inf are the floats whose exponent bits are all ones; an integer test vectorises.
FEDML_ALWAYS_INLINE bool AnyNonFinite(const float* p, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, p + i, sizeof u);
    bad |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return bad != 0;
}

// Asks for the block of `block` coordinates at `offset` (clipped to dim) of every row to be
// brought into L2 while the current block is being worked on. Blocks are a few KB per row, about
// a page: the hardware prefetchers, which stop at page boundaries, would start each one cold.
FEDML_ALWAYS_INLINE void PrefetchBlock(const float* const* rows, std::size_t n, std::size_t offset,
                                       std::size_t block, std::size_t dim) {
  constexpr std::size_t kFloatsPerLine = 16;
  if (offset >= dim) return;
  const std::size_t end = std::min(dim, offset + block);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = offset; c < end; c += kFloatsPerLine) {
      __builtin_prefetch(rows[r] + c, 0, 2);  // read, keep in L2
    }
  }
}

// sum_k (a[k] - b[k])^2 in float64 throughout. Used where float partial sums could overflow or
// where the figure decides a clipping scale.
FEDML_ALWAYS_INLINE double SquaredDistanceF64Body(const float* a, const float* b, std::size_t n) {
  constexpr int kL = 8;
  double lanes[kL] = {};
  std::size_t k = 0;
  for (; k + kL <= n; k += kL) {
    for (int l = 0; l < kL; ++l) {
      const double d = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
      lanes[l] += d * d;
    }
  }
  double sum = 0.0;
  for (; k < n; ++k) {
    const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    sum += d * d;
  }
  for (int l = 0; l < kL; ++l) sum += lanes[l];
  return sum;
}

// Eight floats (four doubles) as one value, GCC/Clang vector extensions: element-wise arithmetic
// compiles to one AVX2 instruction, or two SSE2 ones in the baseline copy. Used where the
// auto-vectoriser needs help: on its own it keeps one accumulator per reduction, so the loop
// waits on the adder's latency.
typedef float Float8 __attribute__((vector_size(32)));
typedef float Float4 __attribute__((vector_size(16)));
typedef double Double4 __attribute__((vector_size(32)));

// By reference: a vector passed by value would change the calling convention between the
// baseline and AVX2 copies (gcc warns), even though these always inline.
FEDML_ALWAYS_INLINE void Load8(Float8& v, const float* p) { std::memcpy(&v, p, sizeof v); }
FEDML_ALWAYS_INLINE void Store8(float* p, const Float8& v) { std::memcpy(p, &v, sizeof v); }
// wide[0..2) += v, element by element, in float64. Through 256-bit halves: a 512-bit vector type
// would be lowered through the stack on AVX2.
FEDML_ALWAYS_INLINE void AddWidened(Double4* wide, const Float8& v) {
  Float4 lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  wide[0] += __builtin_convertvector(lo, Double4);
  wide[1] += __builtin_convertvector(hi, Double4);
}

// Squared distances in float lanes for the bulk of the pairwise work (twice the lanes of
// float64, no conversions), folded into float64 every kChunk elements, so each float lane sums
// only kChunk / 16 = 16 squares: a relative error of a few float32 ulps, against ~1e-5 for float
// sums over a whole block. Squares of differences above ~1.8e19 overflow float; the sum is then
// not finite (the inputs are), and that pair is redone in float64.
constexpr std::size_t kChunk = 256;

// Distances from `a` to each of b[0..P) over n elements into out[0..P). P pairs at once share the
// loads of `a` and give 2P independent accumulators, enough to hide the adds' latency (two, for
// one pair, leave the adder idle 3 cycles in 4). Every pair's arithmetic is the same whatever P,
// so a distance does not depend on which tile computed it.
template <int P>
FEDML_ALWAYS_INLINE void SquaredDistancesBody(const float* a, const float* const* b, std::size_t n,
                                              double* out) {
  Double4 wide[P][4] = {};  // 16 float64 lanes per pair, lane l summing float lane l
  std::size_t k = 0;
  for (; k + kChunk <= n; k += kChunk) {
    Float8 acc[P][2] = {};
    for (std::size_t s = k; s < k + kChunk; s += 16) {
      Float8 a0, a1;
      Load8(a0, a + s);
      Load8(a1, a + s + 8);
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) {
        Float8 b0, b1;
        Load8(b0, b[p] + s);
        Load8(b1, b[p] + s + 8);
        const Float8 d0 = a0 - b0;
        const Float8 d1 = a1 - b1;
        acc[p][0] += d0 * d0;
        acc[p][1] += d1 * d1;
      }
    }
    // Converted in registers: going through memory here stalls on store forwarding.
    for (int p = 0; p < P; ++p) {
      AddWidened(&wide[p][0], acc[p][0]);
      AddWidened(&wide[p][2], acc[p][1]);
    }
  }
  for (int p = 0; p < P; ++p) {
    double lanes[16];
    std::memcpy(lanes, &wide[p][0], sizeof lanes);
    double sum = SquaredDistanceF64Body(a + k, b[p] + k, n - k);
    for (int l = 0; l < 16; ++l) sum += lanes[l];
    if (!std::isfinite(sum)) sum = SquaredDistanceF64Body(a, b[p], n);
    out[p] = sum;
  }
}

// Adds, for every pair i < j, the squared distance between x[i] and x[j] (pointers already at
// the block's first coordinate) over len coordinates to d[i * n + j]. Called per block of
// coordinates so that the block of every update stays in L2 while all pairs are formed from it.
FEDML_ALWAYS_INLINE void PairwiseBlockBody(const float* const* x, std::size_t n, std::size_t len,
                                           double* d) {
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t j = i + 1;
    double out[4];
    for (; j + 4 <= n; j += 4) {
      SquaredDistancesBody<4>(x[i], x + j, len, out);
      for (int p = 0; p < 4; ++p) d[i * n + j + p] += out[p];
    }
    for (; j < n; ++j) {
      SquaredDistancesBody<1>(x[i], x + j, len, out);
      d[i * n + j] += out[0];
    }
  }
}

struct Comparator {
  std::uint32_t lo, hi;  // row indices, lo < hi: the smaller value goes to row lo
};

// Applies a sorting network to the columns of `rows` (count rows of `stride` floats, the first
// `len` of each in use): afterwards row r holds every column's r-th smallest value. Each
// comparator is an element-wise min/max of two rows, so every column is sorted at once with full
// vector lanes and no data-dependent branches, where a per-coordinate nth_element would
// mispredict about every other comparison.
//
// Written with intrinsics: min/max are one instruction each, where gcc compiles the same
// selection on vector types into a compare and two blends, and on scalars into a masked store
// behind a branch. minps(b, a) is exactly b < a ? b : a and maxps(a, b) exactly a > b ? a : b.
FEDML_ALWAYS_INLINE void CompareExchangeTail(float* lo, float* hi, std::size_t i, std::size_t len) {
  for (; i < len; ++i) {
    const float a = lo[i];
    const float b = hi[i];
    lo[i] = b < a ? b : a;
    hi[i] = b < a ? a : b;
  }
}

#ifdef FEDML_AVX2_DISPATCH
void SortColumnsBaseline(float* rows, std::size_t stride, std::size_t len, const Comparator* net,
                         std::size_t count) {
  for (std::size_t k = 0; k < count; ++k) {
    float* lo = rows + net[k].lo * stride;
    float* hi = rows + net[k].hi * stride;
    std::size_t i = 0;
    for (; i + 4 <= len; i += 4) {
      const __m128 a = _mm_loadu_ps(lo + i);
      const __m128 b = _mm_loadu_ps(hi + i);
      _mm_storeu_ps(lo + i, _mm_min_ps(b, a));
      _mm_storeu_ps(hi + i, _mm_max_ps(a, b));
    }
    CompareExchangeTail(lo, hi, i, len);
  }
}

__attribute__((target("avx2"))) void SortColumnsAvx2(float* rows, std::size_t stride,
                                                     std::size_t len, const Comparator* net,
                                                     std::size_t count) {
  for (std::size_t k = 0; k < count; ++k) {
    float* lo = rows + net[k].lo * stride;
    float* hi = rows + net[k].hi * stride;
    std::size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      const __m256 a = _mm256_loadu_ps(lo + i);
      const __m256 b = _mm256_loadu_ps(hi + i);
      _mm256_storeu_ps(lo + i, _mm256_min_ps(b, a));
      _mm256_storeu_ps(hi + i, _mm256_max_ps(a, b));
    }
    CompareExchangeTail(lo, hi, i, len);
  }
}

void SortColumns(float* rows, std::size_t stride, std::size_t len, const Comparator* net,
                 std::size_t count) {
  if (core::CpuHasAvx2()) {
    SortColumnsAvx2(rows, stride, len, net, count);
  } else {
    SortColumnsBaseline(rows, stride, len, net, count);
  }
}
#else
void SortColumns(float* rows, std::size_t stride, std::size_t len, const Comparator* net,
                 std::size_t count) {
  for (std::size_t k = 0; k < count; ++k) {
    CompareExchangeTail(rows + net[k].lo * stride, rows + net[k].hi * stride, 0, len);
  }
}
#endif

// acc[c] += row(0)[c] + row(1)[c] + ... + row(count - 1)[c], added in that order (row(r) gives
// the r-th row's first element). Four rows per pass over acc, a quarter of its loads and stores;
// ((acc + a) + b) + ... is the order one row at a time gives.
template <class RowAt>
FEDML_ALWAYS_INLINE void AddRowsInOrder(double* acc, std::size_t count, std::size_t len,
                                        RowAt row) {
  std::size_t r = 0;
  for (; r + 4 <= count; r += 4) {
    const float* r0 = row(r);
    const float* r1 = row(r + 1);
    const float* r2 = row(r + 2);
    const float* r3 = row(r + 3);
    for (std::size_t c = 0; c < len; ++c) {
      acc[c] = acc[c] + static_cast<double>(r0[c]) + static_cast<double>(r1[c]) +
               static_cast<double>(r2[c]) + static_cast<double>(r3[c]);
    }
  }
  for (; r < count; ++r) {
    const float* r0 = row(r);
    for (std::size_t c = 0; c < len; ++c) acc[c] += static_cast<double>(r0[c]);
  }
}

// out[c] = float(sum_{r in [first, last)} rows[r * stride + c] / (last - first)), in row order.
FEDML_ALWAYS_INLINE void MeanOfRowsBody(const float* rows, std::size_t stride, std::size_t first,
                                        std::size_t last, std::size_t len, double* acc,
                                        float* out) {
  for (std::size_t c = 0; c < len; ++c) acc[c] = 0.0;
  AddRowsInOrder(acc, last - first, len,
                 [&](std::size_t r) { return rows + (first + r) * stride; });
  const double count = static_cast<double>(last - first);
  for (std::size_t c = 0; c < len; ++c) out[c] = static_cast<float>(acc[c] / count);
}

// out[c] = float(sum_i x[i][c] / n) over [0, dim), blocked so that the float64 sums stay in L1.
constexpr std::size_t kMeanBlock = 2048;
FEDML_ALWAYS_INLINE void MeanOfUpdatesBody(const float* const* x, std::size_t n, std::size_t dim,
                                           float* out) {
  double acc[kMeanBlock];
  const double count = static_cast<double>(n);
  for (std::size_t b = 0; b < dim; b += kMeanBlock) {
    const std::size_t len = std::min(kMeanBlock, dim - b);
    PrefetchBlock(x, n, b + kMeanBlock, kMeanBlock, dim);
    for (std::size_t c = 0; c < len; ++c) acc[c] = 0.0;
    AddRowsInOrder(acc, n, len, [&](std::size_t i) { return x[i] + b; });
    for (std::size_t c = 0; c < len; ++c) out[b + c] = static_cast<float>(acc[c] / count);
  }
}

// Bulyan's coordinate stage on a sorted block: for each column c, the mean of the `keep` of its
// theta values (rows, ascending) closest to the column's median m, a tie between a value below
// and one above going to the one below. Those values are the window [w, w + keep) of the sorted
// column with w = min{s : v[s] + v[s + keep] >= 2m} (the window may move right while the value
// it would drop, v[s], is farther from m than the one it would take, v[s + keep]); the condition
// is monotone in s, so w counts the s with v[s] + v[s + keep] < 2m. Counting and the masked sum
// run across columns in full vector lanes, where growing the window value by value would branch
// unpredictably on every step. `scratch` holds 3 * len doubles.
FEDML_ALWAYS_INLINE void BulyanWindowMeanBody(const float* sorted, std::size_t stride,
                                              std::size_t theta, std::size_t keep, std::size_t len,
                                              double* scratch, float* out) {
  double* two_m = scratch;
  double* start = scratch + len;
  double* sum = scratch + 2 * len;
  auto row = [&](std::size_t r) { return sorted + r * stride; };
  if (theta % 2 == 1) {
    const float* mid = row(theta / 2);
    for (std::size_t c = 0; c < len; ++c) two_m[c] = 2.0 * static_cast<double>(mid[c]);
  } else {
    const float* lo = row(theta / 2 - 1);
    const float* hi = row(theta / 2);
    for (std::size_t c = 0; c < len; ++c) {
      two_m[c] = static_cast<double>(lo[c]) + static_cast<double>(hi[c]);
    }
  }
  for (std::size_t c = 0; c < len; ++c) start[c] = 0.0;
  for (std::size_t s = 0; s + keep < theta; ++s) {
    const float* drop = row(s);
    const float* take = row(s + keep);
    for (std::size_t c = 0; c < len; ++c) {
      start[c] +=
          static_cast<double>(drop[c]) + static_cast<double>(take[c]) < two_m[c] ? 1.0 : 0.0;
    }
  }
  for (std::size_t c = 0; c < len; ++c) sum[c] = 0.0;
  const double width = static_cast<double>(keep);
  for (std::size_t r = 0; r < theta; ++r) {
    const float* v = row(r);
    const double rank = static_cast<double>(r);
    for (std::size_t c = 0; c < len; ++c) {
      const bool in = rank >= start[c] && rank < start[c] + width;
      sum[c] += in ? static_cast<double>(v[c]) : 0.0;
    }
  }
  for (std::size_t c = 0; c < len; ++c) out[c] = static_cast<float>(sum[c] / width);
}

// out[r] += ||zn - (x[r] - gd)||^2 over the block, for R rows at once: 2R independent float64
// accumulators (two, for one row, leave the adder waiting on its latency). Lane l sums the
// elements k = l (mod 8), then the tail and the lanes are added in a fixed order, so a row's
// figure does not depend on R.
template <int R>
FEDML_ALWAYS_INLINE void DistancesToEstimate(const float* const* x, std::size_t offset,
                                             const double* gd, const double* zn, std::size_t len,
                                             double* out) {
  Double4 acc[R][2] = {};
  std::size_t k = 0;
  for (; k + 8 <= len; k += 8) {
    Double4 z0, z1, g0, g1;
    std::memcpy(&z0, zn + k, sizeof z0);
    std::memcpy(&z1, zn + k + 4, sizeof z1);
    std::memcpy(&g0, gd + k, sizeof g0);
    std::memcpy(&g1, gd + k + 4, sizeof g1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      Float4 f0, f1;
      std::memcpy(&f0, x[r] + offset + k, sizeof f0);
      std::memcpy(&f1, x[r] + offset + k + 4, sizeof f1);
      const Double4 d0 = z0 - (__builtin_convertvector(f0, Double4) - g0);
      const Double4 d1 = z1 - (__builtin_convertvector(f1, Double4) - g1);
      acc[r][0] += d0 * d0;
      acc[r][1] += d1 * d1;
    }
  }
  for (int r = 0; r < R; ++r) {
    const float* row = x[r] + offset;
    double tail = 0.0;
    for (std::size_t c = k; c < len; ++c) {
      const double d = zn[c] - (static_cast<double>(row[c]) - gd[c]);
      tail += d * d;
    }
    double lanes[8];
    std::memcpy(lanes, &acc[r][0], sizeof lanes);
    for (int l = 0; l < 8; ++l) tail += lanes[l];
    out[r] += tail;
  }
}

// One smoothed-Weiszfeld step over coordinates [offset, offset + len), all in deltas d_i = x_i - g:
//   z'[c] = sum_i w[i] d_i[c] / total_weight,
// then, while the block is in cache, adds ||z' - d_i||^2 over the block to next_dist2[i],
// ||z' - z||^2 to *change2 (when `z` holds the previous estimate) and ||z'||^2 to *norm2, and
// stores z' into z. `scratch` holds 2 * len doubles.
FEDML_ALWAYS_INLINE void WeiszfeldBlockBody(const float* const* x, std::size_t n, const float* g,
                                            const double* w, double total_weight,
                                            std::size_t offset, std::size_t len, bool have_previous,
                                            double* z, double* scratch, double* next_dist2,
                                            double* change2, double* norm2) {
  constexpr int kL = 8;
  double* gd = scratch;
  double* zn = scratch + len;
  for (std::size_t c = 0; c < len; ++c) {
    gd[c] = static_cast<double>(g[offset + c]);
    zn[c] = 0.0;
  }
  // Four rows per pass over zn (a quarter of its loads and stores); the sum is still formed in
  // row order, ((zn + t0) + t1) + ..., as one row at a time would.
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float* r0 = x[i] + offset;
    const float* r1 = x[i + 1] + offset;
    const float* r2 = x[i + 2] + offset;
    const float* r3 = x[i + 3] + offset;
    const double w0 = w[i], w1 = w[i + 1], w2 = w[i + 2], w3 = w[i + 3];
    for (std::size_t c = 0; c < len; ++c) {
      zn[c] = zn[c] + w0 * (static_cast<double>(r0[c]) - gd[c]) +
              w1 * (static_cast<double>(r1[c]) - gd[c]) +
              w2 * (static_cast<double>(r2[c]) - gd[c]) + w3 * (static_cast<double>(r3[c]) - gd[c]);
    }
  }
  for (; i < n; ++i) {
    const float* row = x[i] + offset;
    const double wi = w[i];
    for (std::size_t c = 0; c < len; ++c) zn[c] += wi * (static_cast<double>(row[c]) - gd[c]);
  }
  for (std::size_t c = 0; c < len; ++c) zn[c] /= total_weight;

  double ch[kL] = {}, nm[kL] = {};
  double ch_tail = 0.0, nm_tail = 0.0;
  double* zb = z + offset;
  std::size_t c = 0;
  for (; c + kL <= len; c += kL) {
    for (int l = 0; l < kL; ++l) {
      const double delta = zn[c + l] - zb[c + l];
      ch[l] += delta * delta;
      nm[l] += zn[c + l] * zn[c + l];
    }
  }
  for (; c < len; ++c) {
    const double delta = zn[c] - zb[c];
    ch_tail += delta * delta;
    nm_tail += zn[c] * zn[c];
  }
  for (int l = 0; l < kL; ++l) {
    ch_tail += ch[l];
    nm_tail += nm[l];
  }
  if (have_previous) *change2 += ch_tail;
  *norm2 += nm_tail;
  std::memcpy(zb, zn, len * sizeof(double));

  std::size_t r = 0;
  for (; r + 4 <= n; r += 4) DistancesToEstimate<4>(x + r, offset, gd, zn, len, next_dist2 + r);
  for (; r < n; ++r) DistancesToEstimate<1>(x + r, offset, gd, zn, len, next_dist2 + r);
}

// acc[c] (=, when first, else +=) sum_j coef[j] * (x[j][c] - g[c]), in blocks so that each
// accumulator element is read and written once per fold however many updates it folds.
constexpr std::size_t kClipBlock = 2048;
FEDML_ALWAYS_INLINE void ClipFoldBody(const float* g, const float* const* x, const double* coef,
                                      std::size_t k, std::size_t dim, bool first, double* acc) {
  double tmp[kClipBlock];
  double gd[kClipBlock];
  for (std::size_t b = 0; b < dim; b += kClipBlock) {
    const std::size_t len = std::min(kClipBlock, dim - b);
    for (std::size_t c = 0; c < len; ++c) {
      gd[c] = static_cast<double>(g[b + c]);
      tmp[c] = 0.0;
    }
    PrefetchBlock(x, k, b + kClipBlock, kClipBlock, dim);
    std::size_t j = 0;
    for (; j + 4 <= k; j += 4) {  // four per pass over tmp, summed in order as in AddRowsInOrder
      const float* r0 = x[j] + b;
      const float* r1 = x[j + 1] + b;
      const float* r2 = x[j + 2] + b;
      const float* r3 = x[j + 3] + b;
      const double c0 = coef[j], c1 = coef[j + 1], c2 = coef[j + 2], c3 = coef[j + 3];
      for (std::size_t c = 0; c < len; ++c) {
        tmp[c] = tmp[c] + c0 * (static_cast<double>(r0[c]) - gd[c]) +
                 c1 * (static_cast<double>(r1[c]) - gd[c]) +
                 c2 * (static_cast<double>(r2[c]) - gd[c]) +
                 c3 * (static_cast<double>(r3[c]) - gd[c]);
      }
    }
    for (; j < k; ++j) {
      const float* row = x[j] + b;
      const double cj = coef[j];
      for (std::size_t c = 0; c < len; ++c) tmp[c] += cj * (static_cast<double>(row[c]) - gd[c]);
    }
    double* out = acc + b;
    if (first) {
      std::memcpy(out, tmp, len * sizeof(double));
    } else {
      for (std::size_t c = 0; c < len; ++c) out[c] += tmp[c];
    }
  }
}

// The dispatchers: one baseline and one AVX2 copy of each body (FEDML_DEFINE_KERNEL, cpu.h).

FEDML_DEFINE_KERNEL(double, SquaredDistanceF64, (const float* a, const float* b, std::size_t n),
                    (a, b, n))
FEDML_DEFINE_KERNEL(void, PairwiseBlock,
                    (const float* const* x, std::size_t n, std::size_t len, double* d),
                    (x, n, len, d))
FEDML_DEFINE_KERNEL(void, MeanOfRows,
                    (const float* rows, std::size_t stride, std::size_t first, std::size_t last,
                     std::size_t len, double* acc, float* out),
                    (rows, stride, first, last, len, acc, out))
FEDML_DEFINE_KERNEL(void, BulyanWindowMean,
                    (const float* sorted, std::size_t stride, std::size_t theta, std::size_t keep,
                     std::size_t len, double* scratch, float* out),
                    (sorted, stride, theta, keep, len, scratch, out))
FEDML_DEFINE_KERNEL(void, MeanOfUpdates,
                    (const float* const* x, std::size_t n, std::size_t dim, float* out),
                    (x, n, dim, out))
FEDML_DEFINE_KERNEL(void, WeiszfeldBlock,
                    (const float* const* x, std::size_t n, const float* g, const double* w,
                     double total_weight, std::size_t offset, std::size_t len, bool have_previous,
                     double* z, double* scratch, double* next_dist2, double* change2,
                     double* norm2),
                    (x, n, g, w, total_weight, offset, len, have_previous, z, scratch, next_dist2,
                     change2, norm2))
FEDML_DEFINE_KERNEL(void, ClipFold,
                    (const float* g, const float* const* x, const double* coef, std::size_t k,
                     std::size_t dim, bool first, double* acc),
                    (g, x, coef, k, dim, first, acc))

#undef FEDML_DEFINE_KERNEL

// ---------------------------------------------------------------------------------------------
// Building blocks shared by the rules.

// Batcher's odd-even merge sort for any n (the network for the next power of two with the
// comparators that touch padding dropped, which is valid because padding would hold +inf and
// never move). n log^2 n / 4 comparators: 403 for n = 50.
std::vector<Comparator> SortingNetwork(std::size_t n) {
  std::vector<Comparator> net;
  for (std::size_t p = 1; p < n; p += p) {
    for (std::size_t k = p; k >= 1; k /= 2) {
      for (std::size_t j = k % p; j + k < n; j += 2 * k) {
        for (std::size_t i = 0; i < std::min(k, n - j - k); ++i) {
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
            net.push_back(
                {static_cast<std::uint32_t>(i + j), static_cast<std::uint32_t>(i + j + k)});
          }
        }
      }
    }
  }
  return net;
}

// Columns per sorted block: as many as keep the n rows within ~48 KB, about L1, since every
// comparator pass goes over two rows (n = 50: 240 columns). For n = 50, 128 and 256 columns ran
// equally fast, 512 to 2048 ~1.6x slower (out of L1).
constexpr std::size_t kSortBudgetFloats = 12288;
constexpr std::size_t kMaxSortBlock = 2048;
std::size_t SortBlockFor(std::size_t n) {
  return std::clamp<std::size_t>((kSortBudgetFloats / n) & ~std::size_t{7}, 64, kMaxSortBlock);
}

// Ranges of parameters below this length stay on one thread: a thread costs ~0.1 ms to start,
// and this much work per thread costs more than that for every rule.
constexpr std::size_t kMinRange = std::size_t{1} << 16;

// Copies coordinates [b, b + len) of every row into a buffer (row r at r * stride), sorts each
// coordinate's values across rows, and calls reduce(sorted, stride, b, len, scratch) once per
// block, with len <= kMaxSortBlock and `scratch` 3 * kMaxSortBlock float64s of the calling
// thread's own. Split over up to `threads` threads by ranges of whole blocks: the blocks, and so
// every coordinate's arithmetic, are the same for any thread count; reduce must only write the
// coordinates of its block.
template <class Reduce>
void ForEachSortedBlock(const std::vector<const float*>& rows, std::size_t dim,
                        const std::vector<Comparator>& net, int threads, Reduce&& reduce) {
  const std::size_t n = rows.size();
  const std::size_t stride = SortBlockFor(n);
  // The slices cannot fail; ParallelRanges' status is always OK.
  (void)core::ParallelRanges(dim, threads, kMinRange, stride, [&](std::size_t lo, std::size_t hi) {
    std::vector<float> buf(n * stride);
    std::vector<double> scratch(3 * kMaxSortBlock);
    for (std::size_t b = lo; b < hi; b += stride) {
      const std::size_t len = std::min(stride, hi - b);
      for (std::size_t r = 0; r < n; ++r) {
        std::memcpy(buf.data() + r * stride, rows[r] + b, len * sizeof(float));
      }
      PrefetchBlock(rows.data(), n, b + stride, stride, hi);
      SortColumns(buf.data(), stride, len, net.data(), net.size());
      reduce(static_cast<const float*>(buf.data()), stride, b, len, scratch.data());
    }
    return Status::Ok();
  });
}

// Coordinates per pairwise-distance block: 50 updates x 2048 floats = 400 KB, within L2, and long
// enough that the per-pair overhead (a few dozen cycles) is small against 2048 elements.
constexpr std::size_t kDistBlock = 2048;

// Coordinates per chunk of the pairwise distances: each chunk's n x n partial sums are formed
// from zero (block by block), then the partials are added to the matrix in chunk order. Threads
// take whole chunks, so the sums, and the bits, are the same for any thread count.
constexpr std::size_t kDistChunk = 32 * kDistBlock;

// Symmetric n x n matrix of squared L2 distances, each pair computed once; zero diagonal. Split
// over up to `threads` threads by chunks, a wave of up to 2 chunks per thread at a time so that
// the partial matrices held stay a few per thread whatever the model size.
std::vector<double> PairwiseSquaredDistances(const std::vector<const float*>& x, std::size_t dim,
                                             int threads) {
  const std::size_t n = x.size();
  std::vector<double> d(n * n, 0.0);
  const std::size_t chunks = (dim + kDistChunk - 1) / kDistChunk;
  const std::size_t workers = static_cast<std::size_t>(std::max(threads, 1));
  const std::size_t wave = std::min(chunks, 2 * workers);
  std::vector<double> partial(wave * n * n);
  for (std::size_t c0 = 0; c0 < chunks; c0 += wave) {
    const std::size_t count = std::min(wave, chunks - c0);
    std::fill(partial.begin(), partial.end(), 0.0);
    (void)core::ParallelRanges(count, threads, 1, 1, [&](std::size_t lo, std::size_t hi) {
      std::vector<const float*> block(n);
      for (std::size_t c = lo; c < hi; ++c) {
        const std::size_t begin = (c0 + c) * kDistChunk;
        const std::size_t end = std::min(dim, begin + kDistChunk);
        double* part = partial.data() + c * n * n;
        for (std::size_t b = begin; b < end; b += kDistBlock) {
          const std::size_t len = std::min(kDistBlock, end - b);
          for (std::size_t i = 0; i < n; ++i) block[i] = x[i] + b;
          PrefetchBlock(x.data(), n, b + kDistBlock, kDistBlock, end);
          PairwiseBlock(block.data(), n, len, part);
        }
      }
      return Status::Ok();
    });
    for (std::size_t c = 0; c < count; ++c) {
      const double* part = partial.data() + c * n * n;
      for (std::size_t k = 0; k < n * n; ++k) d[k] += part[k];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) d[j * n + i] = d[i * n + j];
  }
  return d;
}

// Krum scores of the `members` (indices into the n x n matrix `d`), against the other members
// only: the sum of the `neighbours` smallest squared distances, added in ascending order so that
// duplicated updates get bit-identical scores.
std::vector<double> ScoresAmong(const std::vector<double>& d, std::size_t n,
                                const std::vector<std::size_t>& members, std::size_t neighbours) {
  std::vector<double> scores(members.size(), 0.0);
  std::vector<double> row;
  for (std::size_t a = 0; a < members.size(); ++a) {
    row.clear();
    for (std::size_t b = 0; b < members.size(); ++b) {
      if (b != a) row.push_back(d[members[a] * n + members[b]]);
    }
    const std::size_t k = std::min(neighbours, row.size());
    std::partial_sort(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(k), row.end());
    double s = 0.0;
    for (std::size_t i = 0; i < k; ++i) s += row[i];
    scores[a] = s;
  }
  return scores;
}

// Position of the smallest score; the first on ties (arrival order).
std::size_t ArgMin(const std::vector<double>& v) {
  return static_cast<std::size_t>(std::min_element(v.begin(), v.end()) - v.begin());
}

std::string Str(std::size_t v) { return std::to_string(v); }
std::string Str(int v) { return std::to_string(v); }
// Shortest text that reads back as the same double (std::to_string prints 6 decimals, so
// 1e-7 would print as 0.000000).
std::string Str(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// "krum needs n >= 2f + 3 updates (f = 2: at least 7), got 5"; OK when n is enough.
Status NeedAtLeast(const std::string& rule, std::size_t n, int f, int times) {
  const std::size_t need = static_cast<std::size_t>(times) * static_cast<std::size_t>(f) + 3;
  if (n >= need) return Status::Ok();
  return Status::FailedPrecondition(rule + " needs n >= " + Str(times) + "f + 3 updates (f = " +
                                    Str(f) + ": at least " + Str(need) + "), got " + Str(n));
}

std::string ClientName(const ClientUpdate& u) {
  return "update from client " + std::to_string(u.client_id);
}

// ---------------------------------------------------------------------------------------------
// The rules.

// What every rule shares: the lifecycle, the copy of the global model, the checks on arrival.
class RobustBase : public Aggregator {
 public:
  explicit RobustBase(std::string rule) : rule_(std::move(rule)) {}
  std::string name() const override { return rule_; }
  // A selection, an order statistic, a fixed point or a clip: none is a weighted sum.
  bool is_linear() const override { return false; }
  int accepted() const override { return accepted_; }
  std::map<std::string, double> RoundFigures() const override { return figures_; }
  /// RobustOptions::threads, resolved: <= 0 becomes every core.
  void set_threads(int threads) {
    threads_ =
        threads > 0 ? threads : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  }

  Status Begin(const core::ModelState& global, const RoundInfo& /*info*/) override {
    if (global.empty()) return Status::InvalidArgument(rule_ + ": the global model has no tensors");
    // The deltas and the result are formed against it; a NaN here would poison every update.
    if (AnyNonFinite(global.data(), global.numel())) {
      return Status::InvalidArgument(rule_ +
                                     ": the global model: " + global.CheckFinite().message());
    }
    global_ = global;
    accepted_ = 0;
    begun_ = true;
    OnBegin();
    return Status::Ok();
  }

  Result<core::ModelState> Finalize() override {
    if (!begun_) {
      return Status::FailedPrecondition(rule_ + ": Finalize called before Begin (or twice)");
    }
    if (accepted_ == 0) {
      return Status::FailedPrecondition(rule_ + ": no update was accepted this round");
    }
    // A precondition error leaves the round open: more updates may still arrive.
    FEDML_RETURN_IF_ERROR(CheckCount(static_cast<std::size_t>(accepted_)));
    figures_.clear();
    Result<core::ModelState> result = Aggregate();
    begun_ = false;
    OnEnd();
    return result;
  }

 protected:
  // The checks every Accumulate makes before it touches the round's state.
  Status CheckUpdate(const ClientUpdate& update) const {
    if (!begun_) {
      return Status::FailedPrecondition(rule_ +
                                        ": Accumulate called before Begin (or after Finalize)");
    }
    FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(update.state, rule_ + ": " + ClientName(update)));
    if (update.num_samples <= 0) {
      return Status::InvalidArgument(rule_ + ": " + ClientName(update) + " has num_samples " +
                                     std::to_string(update.num_samples) +
                                     "; the sample count must be > 0");
    }
    return Status::Ok();
  }

  Status NonFiniteError(const ClientUpdate& update) const {
    Status finite = update.state.CheckFinite();
    return Status::InvalidArgument(
        rule_ + ": refused " + ClientName(update) + " (" +
        (finite.ok() ? std::string("non-finite value") : finite.message()) +
        "); the round goes on without it");
  }

  virtual void OnBegin() = 0;
  // Frees what the round held.
  virtual void OnEnd() = 0;
  // FAILED_PRECONDITION when n accepted updates are too few for the rule.
  virtual Status CheckCount(std::size_t /*n*/) const { return Status::Ok(); }
  // The new global model; may move global_ into the result (Begin copies it again).
  virtual Result<core::ModelState> Aggregate() = 0;

  const std::string rule_;
  core::ModelState global_;
  int accepted_ = 0;
  bool begun_ = false;
  std::map<std::string, double> figures_;
  int threads_ = 1;
};

// Rules that see every update at once: they keep the updates (moved in) until Finalize.
class AllUpdatesRule : public RobustBase {
 public:
  using RobustBase::RobustBase;
  bool needs_all_updates() const override { return true; }

  Status Accumulate(ClientUpdate update) override {
    FEDML_RETURN_IF_ERROR(CheckUpdate(update));
    if (AnyNonFinite(update.state.data(), update.state.numel())) return NonFiniteError(update);
    updates_.push_back(std::move(update));
    ++accepted_;
    return Status::Ok();
  }

 protected:
  void OnBegin() override { updates_.clear(); }
  void OnEnd() override { updates_.clear(); }

  std::vector<const float*> Rows() const {
    std::vector<const float*> rows;
    rows.reserve(updates_.size());
    for (const ClientUpdate& u : updates_) rows.push_back(u.state.data());
    return rows;
  }
  std::size_t dim() const { return global_.numel(); }

  std::vector<ClientUpdate> updates_;  // arrival order
};

class WiseMedian final : public AllUpdatesRule {
 public:
  WiseMedian() : AllUpdatesRule("wise_median") {}

 protected:
  Result<core::ModelState> Aggregate() override {
    const std::vector<const float*> rows = Rows();
    const std::size_t n = rows.size();
    if (net_n_ != n) {
      net_ = SortingNetwork(n);
      net_n_ = n;
    }
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    float* o = out.data();
    ForEachSortedBlock(rows, out.numel(), net_, threads_,
                       [&](const float* s, std::size_t stride, std::size_t b, std::size_t len,
                           double* /*scratch*/) {
                         if (n % 2 == 1) {
                           std::memcpy(o + b, s + (n / 2) * stride, len * sizeof(float));
                         } else {
                           const float* lo = s + (n / 2 - 1) * stride;
                           const float* hi = s + (n / 2) * stride;
                           for (std::size_t c = 0; c < len; ++c) {
                             o[b + c] =
                                 static_cast<float>(0.5 * (static_cast<double>(lo[c]) + hi[c]));
                           }
                         }
                       });
    return out;
  }

 private:
  std::vector<Comparator> net_;  // for net_n_ rows, kept across rounds of the same size
  std::size_t net_n_ = 0;
};

class TrimmedMean final : public AllUpdatesRule {
 public:
  explicit TrimmedMean(double beta) : AllUpdatesRule("trimmed_mean"), beta_(beta) {}

 protected:
  Result<core::ModelState> Aggregate() override {
    const std::vector<const float*> rows = Rows();
    const std::size_t n = rows.size();
    // beta < 0.5 keeps at least one value; the min guards a product that rounds up to n / 2.
    const std::size_t trim =
        std::min(static_cast<std::size_t>(std::floor(beta_ * static_cast<double>(n))), (n - 1) / 2);
    if (net_n_ != n) {
      net_ = SortingNetwork(n);
      net_n_ = n;
    }
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    float* o = out.data();
    ForEachSortedBlock(
        rows, out.numel(), net_, threads_,
        [&](const float* s, std::size_t stride, std::size_t b, std::size_t len, double* scratch) {
          MeanOfRows(s, stride, trim, n - trim, len, scratch, o + b);
        });
    figures_["trimmed_mean_trimmed_per_side"] = static_cast<double>(trim);
    return out;
  }

 private:
  double beta_;
  std::vector<Comparator> net_;
  std::size_t net_n_ = 0;
};

// krum (m = 1, the chosen update itself) and multikrum (the mean of the m best-scored).
class KrumRule final : public AllUpdatesRule {
 public:
  KrumRule(bool multi, int f, int m)
      : AllUpdatesRule(multi ? "multikrum" : "krum"), multi_(multi), f_(f), m_(m) {}

 protected:
  Status CheckCount(std::size_t n) const override {
    FEDML_RETURN_IF_ERROR(NeedAtLeast(rule_, n, f_, 2));
    if (multi_ && static_cast<std::size_t>(m_) > n) {
      return Status::FailedPrecondition(rule_ + " needs krum_param_m <= n (m = " + Str(m_) +
                                        "), got " + Str(n) + " updates");
    }
    return Status::Ok();
  }

  Result<core::ModelState> Aggregate() override {
    const std::vector<const float*> rows = Rows();
    const std::size_t n = rows.size();
    FEDML_ASSIGN_OR_RETURN(std::vector<double> scores, KrumScores(rows, dim(), f_, threads_));
    if (!multi_) {
      const std::size_t best = ArgMin(scores);
      figures_["krum_selected_client"] = static_cast<double>(updates_[best].client_id);
      return std::move(updates_[best].state);  // exactly the chosen update
    }
    const std::size_t m = m_ == 0 ? n - static_cast<std::size_t>(f_) : static_cast<std::size_t>(m_);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    order.resize(m);
    std::sort(order.begin(), order.end());  // summed in arrival order
    std::vector<const float*> chosen;
    chosen.reserve(order.size());
    for (std::size_t i : order) chosen.push_back(rows[i]);
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    // Per coordinate, so split over threads by ranges of whole blocks: the same bits.
    float* o = out.data();
    (void)core::ParallelRanges(out.numel(), threads_, kMinRange, kMeanBlock,
                               [&](std::size_t lo, std::size_t hi) {
                                 std::vector<const float*> at(chosen.size());
                                 for (std::size_t i = 0; i < at.size(); ++i) at[i] = chosen[i] + lo;
                                 MeanOfUpdates(at.data(), at.size(), hi - lo, o + lo);
                                 return Status::Ok();
                               });
    figures_["multikrum_selected"] = static_cast<double>(m);
    return out;
  }

 private:
  bool multi_;
  int f_;
  int m_;
};

class Bulyan final : public AllUpdatesRule {
 public:
  explicit Bulyan(int f) : AllUpdatesRule("bulyan"), f_(f) {}

 protected:
  Status CheckCount(std::size_t n) const override { return NeedAtLeast(rule_, n, f_, 4); }

  Result<core::ModelState> Aggregate() override {
    const std::vector<const float*> rows = Rows();
    const std::size_t n = rows.size();
    const std::size_t f = static_cast<std::size_t>(f_);
    const std::size_t theta = n - 2 * f;
    const std::size_t keep = theta - 2 * f;  // beta_b

    // Selection: Krum over the remaining set, theta times, on one distance matrix. A remaining
    // set of r scores with max(r - f - 2, 0) neighbours: the last rounds have r < 2f + 3, where
    // Krum's own guarantee no longer holds but the selection is still well defined.
    const std::vector<double> d = PairwiseSquaredDistances(rows, dim(), threads_);
    std::vector<std::size_t> remaining(n);
    std::iota(remaining.begin(), remaining.end(), std::size_t{0});
    std::vector<const float*> selected;
    selected.reserve(theta);
    while (selected.size() < theta) {
      const std::size_t r = remaining.size();
      const std::size_t neighbours = r > f + 2 ? r - f - 2 : 0;
      const std::size_t best = ArgMin(ScoresAmong(d, n, remaining, neighbours));
      selected.push_back(rows[remaining[best]]);
      remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(best));
    }

    // Aggregation: per coordinate, the mean of the `keep` selected values closest to their
    // median (see BulyanWindowMean).
    if (net_n_ != theta) {
      net_ = SortingNetwork(theta);
      net_n_ = theta;
    }
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    float* o = out.data();
    ForEachSortedBlock(
        selected, out.numel(), net_, threads_,
        [&](const float* s, std::size_t stride, std::size_t b, std::size_t len, double* scratch) {
          BulyanWindowMean(s, stride, theta, keep, len, scratch, o + b);
        });
    figures_["bulyan_selected"] = static_cast<double>(theta);
    return out;
  }

 private:
  int f_;
  std::vector<Comparator> net_;
  std::size_t net_n_ = 0;
};

class GeoMedian final : public AllUpdatesRule {
 public:
  GeoMedian(int max_iterations, double tolerance, double nu)
      : AllUpdatesRule("geo_median"),
        max_iterations_(max_iterations),
        tolerance_(tolerance),
        nu_(nu) {}

 protected:
  // Smoothed Weiszfeld (RFA) on the deltas d_i = x_i - g, from their mean:
  //   z <- sum_i w_i d_i / sum_i w_i,  w_i = 1 / max(nu, ||z - d_i||),
  // until ||z' - z|| <= tolerance * ||z'|| or max_iterations steps. Each step is one pass over
  // the updates: the new estimate and the distances to it are formed block by block while the
  // block is in cache.
  static constexpr std::size_t kBlock = 2048;

  Result<core::ModelState> Aggregate() override {
    const std::vector<const float*> rows = Rows();
    const std::size_t n = rows.size();
    const std::size_t p = dim();
    z_.resize(p);
    std::vector<double> w(n, 1.0), dist2(n, 0.0), next2(n, 0.0);
    std::vector<double> scratch(2 * kBlock);
    const float* g = global_.data();

    // One step with weights w; returns ||z' - z|| <= tolerance * ||z'||.
    auto step = [&](bool have_previous) {
      double total = 0.0;
      for (double wi : w) total += wi;
      std::fill(next2.begin(), next2.end(), 0.0);
      double change2 = 0.0, norm2 = 0.0;
      for (std::size_t b = 0; b < p; b += kBlock) {
        PrefetchBlock(rows.data(), n, b + kBlock, kBlock, p);
        WeiszfeldBlock(rows.data(), n, g, w.data(), total, b, std::min(kBlock, p - b),
                       have_previous, z_.data(), scratch.data(), next2.data(), &change2, &norm2);
      }
      dist2.swap(next2);
      return std::sqrt(change2) <= tolerance_ * std::sqrt(norm2);
    };

    step(false);  // z0: the mean (all weights 1)
    int iterations = 0;
    while (iterations < max_iterations_) {
      for (std::size_t i = 0; i < n; ++i) w[i] = 1.0 / std::max(nu_, std::sqrt(dist2[i]));
      ++iterations;
      if (step(true)) break;
    }
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    float* o = out.data();
    for (std::size_t c = 0; c < p; ++c) {
      o[c] = static_cast<float>(static_cast<double>(o[c]) + z_[c]);
    }
    figures_["geo_median_iterations"] = static_cast<double>(iterations);
    return out;
  }

 private:
  int max_iterations_;
  double tolerance_;
  double nu_;
  std::vector<double> z_;  // the estimate (a delta), kept for its capacity across rounds
};

// Streams: each update's delta is clipped on arrival and folded into a float64 running sum, a
// few updates per pass over it (kFold), so memory is O(model) whatever the number of clients.
class NormDiffClipping final : public RobustBase {
 public:
  explicit NormDiffClipping(double norm_bound)
      : RobustBase("norm_diff_clipping"), norm_bound_(norm_bound) {}
  bool needs_all_updates() const override { return false; }

  Status Accumulate(ClientUpdate update) override {
    FEDML_RETURN_IF_ERROR(CheckUpdate(update));
    // One pass for the norm; it is also the finiteness check (g is finite, and the float64 sum
    // of squares of finite floats cannot overflow: at most ~4.7e77 per element).
    const double norm2 = SquaredDistanceF64(update.state.data(), global_.data(), global_.numel());
    if (!std::isfinite(norm2)) return NonFiniteError(update);
    const double norm = std::sqrt(norm2);
    // FedML: delta / max(1, ||delta|| / norm_bound).
    const double shrink = std::max(1.0, norm / norm_bound_);
    if (shrink > 1.0) ++clipped_;
    const double samples = static_cast<double>(update.num_samples);
    coef_.push_back(samples / shrink);
    total_samples_ += samples;
    pending_.push_back(std::move(update));
    ++accepted_;
    if (pending_.size() == kFold) Fold();
    return Status::Ok();
  }

 protected:
  // Held back and folded in one pass: the accumulator (8 bytes per parameter) is then read and
  // written once per kFold updates rather than once per update.
  static constexpr std::size_t kFold = 8;

  void OnBegin() override {
    acc_.resize(global_.numel());
    acc_initialised_ = false;
    pending_.clear();
    coef_.clear();
    total_samples_ = 0.0;
    clipped_ = 0;
  }
  void OnEnd() override {
    pending_.clear();
    coef_.clear();
  }

  void Fold() {
    if (pending_.empty()) return;
    const float* x[kFold];
    for (std::size_t j = 0; j < pending_.size(); ++j) x[j] = pending_[j].state.data();
    ClipFold(global_.data(), x, coef_.data(), pending_.size(), global_.numel(), !acc_initialised_,
             acc_.data());
    acc_initialised_ = true;
    pending_.clear();
    coef_.clear();
  }

  Result<core::ModelState> Aggregate() override {
    Fold();
    core::ModelState out = std::move(global_);  // the result: g's layout, values overwritten
    float* o = out.data();
    for (std::size_t c = 0; c < out.numel(); ++c) {
      o[c] = static_cast<float>(static_cast<double>(o[c]) + acc_[c] / total_samples_);
    }
    figures_["norm_diff_clipped"] = static_cast<double>(clipped_);
    return out;
  }

 private:
  double norm_bound_;
  std::vector<double> acc_;  // sum_i n_i * clipped delta_i, over folded updates
  bool acc_initialised_ = false;
  std::vector<ClientUpdate> pending_;
  std::vector<double> coef_;  // n_i / shrink_i of each pending update
  double total_samples_ = 0.0;
  int clipped_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Factory.

Status OptionError(const std::string& rule, const std::string& option, const std::string& value,
                   const std::string& allowed) {
  return Status::InvalidArgument(rule + ": " + option + " is " + value + "; allowed: " + allowed);
}

Status CheckF(const std::string& rule, int f) {
  if (f < 0) return OptionError(rule, "byzantine_client_num", Str(f), ">= 0");
  return Status::Ok();
}

using Factory = Result<std::unique_ptr<Aggregator>> (*)(const RobustOptions&);

Result<std::unique_ptr<Aggregator>> MakeWiseMedian(const RobustOptions&) {
  return std::unique_ptr<Aggregator>(std::make_unique<WiseMedian>());
}

Result<std::unique_ptr<Aggregator>> MakeTrimmedMean(const RobustOptions& o) {
  if (!(o.beta >= 0.0 && o.beta < 0.5)) {
    return OptionError("trimmed_mean", "beta", Str(o.beta), "[0, 0.5)");
  }
  return std::unique_ptr<Aggregator>(std::make_unique<TrimmedMean>(o.beta));
}

Result<std::unique_ptr<Aggregator>> MakeKrum(const RobustOptions& o) {
  FEDML_RETURN_IF_ERROR(CheckF("krum", o.byzantine_client_num));
  return std::unique_ptr<Aggregator>(std::make_unique<KrumRule>(false, o.byzantine_client_num, 1));
}

Result<std::unique_ptr<Aggregator>> MakeMultiKrum(const RobustOptions& o) {
  FEDML_RETURN_IF_ERROR(CheckF("multikrum", o.byzantine_client_num));
  if (o.krum_param_m < 0) {
    return OptionError("multikrum", "krum_param_m", Str(o.krum_param_m), ">= 1, or 0 for n - f");
  }
  return std::unique_ptr<Aggregator>(
      std::make_unique<KrumRule>(true, o.byzantine_client_num, o.krum_param_m));
}

Result<std::unique_ptr<Aggregator>> MakeBulyan(const RobustOptions& o) {
  FEDML_RETURN_IF_ERROR(CheckF("bulyan", o.byzantine_client_num));
  return std::unique_ptr<Aggregator>(std::make_unique<Bulyan>(o.byzantine_client_num));
}

Result<std::unique_ptr<Aggregator>> MakeGeoMedian(const RobustOptions& o) {
  if (o.geo_median_max_iterations < 1) {
    return OptionError("geo_median", "geo_median_max_iterations", Str(o.geo_median_max_iterations),
                       ">= 1");
  }
  if (!(o.geo_median_tolerance >= 0.0 && std::isfinite(o.geo_median_tolerance))) {
    return OptionError("geo_median", "geo_median_tolerance", Str(o.geo_median_tolerance),
                       ">= 0 (0: run all iterations)");
  }
  if (!(o.geo_median_nu > 0.0 && std::isfinite(o.geo_median_nu))) {
    return OptionError("geo_median", "geo_median_nu", Str(o.geo_median_nu), "> 0, finite");
  }
  return std::unique_ptr<Aggregator>(std::make_unique<GeoMedian>(
      o.geo_median_max_iterations, o.geo_median_tolerance, o.geo_median_nu));
}

Result<std::unique_ptr<Aggregator>> MakeNormDiffClipping(const RobustOptions& o) {
  if (!(o.norm_bound > 0.0 && std::isfinite(o.norm_bound))) {
    return OptionError("norm_diff_clipping", "norm_bound", Str(o.norm_bound), "> 0, finite");
  }
  return std::unique_ptr<Aggregator>(std::make_unique<NormDiffClipping>(o.norm_bound));
}

struct Entry {
  const char* name;
  Factory factory;
};

// FedML's defense_type names, in the order DefenseTypeNames lists them.
constexpr Entry kRules[] = {
    {"wise_median", &MakeWiseMedian},
    {"trimmed_mean", &MakeTrimmedMean},
    {"krum", &MakeKrum},
    {"multikrum", &MakeMultiKrum},
    {"bulyan", &MakeBulyan},
    {"geo_median", &MakeGeoMedian},
    {"norm_diff_clipping", &MakeNormDiffClipping},
};

}  // namespace

Result<std::unique_ptr<Aggregator>> CreateRobustAggregator(const RobustOptions& options) {
  for (const Entry& e : kRules) {
    if (options.defense_type == e.name) {
      Result<std::unique_ptr<Aggregator>> made = e.factory(options);
      // Every rule derives from RobustBase.
      if (made.ok()) static_cast<RobustBase*>(made->get())->set_threads(options.threads);
      return made;
    }
  }
  std::string allowed;
  for (const std::string& n : DefenseTypeNames()) allowed += (allowed.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("unknown defense_type '" + options.defense_type +
                                 "'; allowed: " + allowed + " (names are case-sensitive)");
}

std::vector<std::string> DefenseTypeNames() {
  std::vector<std::string> names;
  for (const Entry& e : kRules) names.emplace_back(e.name);
  return names;
}

Result<std::vector<double>> KrumScores(const std::vector<const float*>& updates, std::size_t dim,
                                       int f, int threads) {
  if (f < 0) return OptionError("krum", "f", Str(f), ">= 0");
  const std::size_t n = updates.size();
  FEDML_RETURN_IF_ERROR(NeedAtLeast("krum", n, f, 2));
  const std::vector<double> d = PairwiseSquaredDistances(updates, dim, threads);
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  return ScoresAmong(d, n, all, n - static_cast<std::size_t>(f) - 2);
}

}  // namespace fedml::algorithms
