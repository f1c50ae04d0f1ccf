#include "fedml/algorithms/fedavg.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "fedml/core/cpu.h"
#include "fedml/core/parallel.h"

#ifdef FEDML_AVX2_DISPATCH
#include <immintrin.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace fedml::algorithms {
namespace {

// NaN and Inf are exactly the floats whose exponent bits are all ones. An integer test on the
// bits vectorises (std::isfinite in the loop does not), so the check costs no extra pass.
inline std::uint32_t NonFinite(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}

// The fold computes, for every coordinate i of a range,
//   out[i] = float(keep * mean[i] + w[0] x[0][i] + ... + w[k-1] x[k-1][i])
// with one float64 product and one float64 sum per input, in that order. It goes over the range in
// blocks of kBlock coordinates and, within a block, over the updates in groups of at most kGroup:
// each group's inputs are added in registers, and the partial sums wait for the next group in a
// float64 accumulator of one block (16 KB, in L1). Because the accumulator is float64, the
// grouping does not change a single rounding: the bits are those of one sequential pass, whatever
// the width, block, group, thread split or kernel (portable or AVX2).
//
// Why blocks and groups (aggregation_bench's figures, 32 updates x 1M floats, on the reference
// machine with other processes paused; the read loop is the ceiling): the fold moves the queued
// inputs plus one read and one write of the mean per fold, so a wide fold moves less per input
// byte (width 8: at most 8 / 10 of the read loop's rate where bandwidth is the limit, as on all
// cores; width 32: 32 / 34). But one pass over 16 or 32 input streams ran at only 0.56-0.74 of
// the read loop: too many streams in flight at once for the prefetchers. Groups of 8 streams over
// an L1 block keep the streams per pass at 8 whatever the width: width 16 then ran at 0.88-0.90
// and width 32 at 0.93-0.99 on one thread and on two. Groups of 4 were 5-10% slower (more
// accumulator traffic), 2048-coordinate blocks are 8 KB of each input, two pages.
constexpr std::size_t kLine = 16;  // floats per 64-byte cache line
constexpr std::size_t kBlock = 2048;
constexpr int kGroup = 8;

// Where a group pass starts from and where it leaves its sums. The first group of a block starts
// from zero (the round's first fold) or keep * mean; the last writes the float32 output.
enum Mode : int {
  kZeroToOut,  // the only group of the round's first fold
  kMeanToOut,  // the only group of a later fold
  kZeroToAcc,
  kMeanToAcc,
  kAccToAcc,
  kAccToOut,
  kModes
};
constexpr bool FromMean(int m) { return m == kMeanToOut || m == kMeanToAcc; }
constexpr bool FromAcc(int m) { return m == kAccToAcc || m == kAccToOut; }
constexpr bool ToOut(int m) { return m == kZeroToOut || m == kMeanToOut || m == kAccToOut; }

// One group pass over n coordinates of a block. Returns nonzero when an output is not finite
// (for a convex combination, only when some input was not). `prefetch`: the next block of every
// input (and of the mean) exists and is asked into L2 while this one is folded. Prefetching a
// whole block ahead, 8 KB per stream, is what made the fold reach the read loop: 2 KB ahead into
// L1 (the earlier kernel) left it at ~0.68 of it, because with the output streamed and the
// arithmetic off the critical path, what is left is DRAM latency per stream.
using GroupFn = std::uint32_t (*)(const float* mean, double* acc, float* out, const float* const* x,
                                  const double* w, double keep, std::size_t n, bool prefetch);

// Portable group pass: gcc -O3 vectorises the loop over i for the baseline ISA (SSE2).
template <int G, int kMode>
std::uint32_t GroupPortable(const float* __restrict mean, double* __restrict acc,
                            float* __restrict out, const float* const* xs, const double* w,
                            double keep, std::size_t n, bool prefetch) {
  const float* x[G];
  double wk[G];
  for (int j = 0; j < G; ++j) {
    x[j] = xs[j];
    wk[j] = w[j];
  }
  std::uint32_t bad = 0;
  for (std::size_t b = 0; b < n; b += kLine) {
    if (prefetch) {
      for (int j = 0; j < G; ++j) __builtin_prefetch(x[j] + b + kBlock, 0, 2);
      if (FromMean(kMode)) __builtin_prefetch(mean + b + kBlock, 0, 2);
    }
    const std::size_t e = std::min(n, b + kLine);
    for (std::size_t i = b; i < e; ++i) {
      double a =
          FromMean(kMode) ? keep * static_cast<double>(mean[i]) : (FromAcc(kMode) ? acc[i] : 0.0);
#pragma GCC unroll 8
      for (int j = 0; j < G; ++j) a += wk[j] * static_cast<double>(x[j][i]);
      if (ToOut(kMode)) {
        const float f = static_cast<float>(a);
        out[i] = f;
        bad |= NonFinite(f);
      } else {
        acc[i] = a;
      }
    }
  }
  return bad;
}

#ifdef FEDML_AVX2_DISPATCH
// AVX2 group pass, picked at run time, written with intrinsics: in cache (32 x 16K floats) the
// auto-vectorised AVX2 copy of the portable pass ran at ~0.52 of the read loop, so on one thread
// the fold was partly compute-bound; this one ran at ~0.89. The output goes out with streaming
// stores, which do not read each line before writing it (one model's traffic per fold saved).
// Same operations per lane as the portable pass (multiply, then add; no fused multiply-add), so
// the same bits. Needs n a multiple of kLine, out 32-byte aligned and acc 32-byte aligned.
template <int G, int kMode>
__attribute__((target("avx2"))) std::uint32_t GroupAvx2(const float* __restrict mean,
                                                        double* __restrict acc,
                                                        float* __restrict out,
                                                        const float* const* x, const double* w,
                                                        double keep, std::size_t n, bool prefetch) {
  __m256d wk[G];
  for (int j = 0; j < G; ++j) wk[j] = _mm256_set1_pd(w[j]);
  const __m256d kp = _mm256_set1_pd(keep);
  const __m256i exponent = _mm256_set1_epi32(0x7f800000);
  __m256i bad = _mm256_setzero_si256();
  for (std::size_t b = 0; b < n; b += kLine) {
    if (prefetch) {
      for (int j = 0; j < G; ++j) __builtin_prefetch(x[j] + b + kBlock, 0, 2);
      if (FromMean(kMode)) __builtin_prefetch(mean + b + kBlock, 0, 2);
    }
    __m256d a[4];  // the line's 16 coordinates, four float64 lanes each
    for (int q = 0; q < 4; ++q) {
      if (FromMean(kMode)) {
        a[q] = _mm256_mul_pd(kp, _mm256_cvtps_pd(_mm_loadu_ps(mean + b + 4 * q)));
      } else if (FromAcc(kMode)) {
        a[q] = _mm256_load_pd(acc + b + 4 * q);
      } else {
        a[q] = _mm256_setzero_pd();
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < G; ++j) {
      for (int q = 0; q < 4; ++q) {
        const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x[j] + b + 4 * q));
        a[q] = _mm256_add_pd(a[q], _mm256_mul_pd(wk[j], v));
      }
    }
    if (ToOut(kMode)) {
      const __m256 lo = _mm256_set_m128(_mm256_cvtpd_ps(a[1]), _mm256_cvtpd_ps(a[0]));
      const __m256 hi = _mm256_set_m128(_mm256_cvtpd_ps(a[3]), _mm256_cvtpd_ps(a[2]));
      const __m256i elo = _mm256_and_si256(_mm256_castps_si256(lo), exponent);
      const __m256i ehi = _mm256_and_si256(_mm256_castps_si256(hi), exponent);
      bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(elo, exponent));
      bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(ehi, exponent));
      _mm256_stream_ps(out + b, lo);
      _mm256_stream_ps(out + b + 8, hi);
    } else {
      for (int q = 0; q < 4; ++q) _mm256_store_pd(acc + b + 4 * q, a[q]);
    }
  }
  return _mm256_testz_si256(bad, bad) ? 0U : 1U;
}
#endif

// The group pass for `mode` and G = g (1..kGroup), from a table built at compile time.
template <bool kAvx2, int kMode, int... Gs>
constexpr std::array<GroupFn, kGroup> GroupRow(std::integer_sequence<int, Gs...>) {
#ifdef FEDML_AVX2_DISPATCH
  if constexpr (kAvx2) return {&GroupAvx2<Gs + 1, kMode>...};
#endif
  return {&GroupPortable<Gs + 1, kMode>...};
}
template <bool kAvx2, int... Ms>
constexpr std::array<std::array<GroupFn, kGroup>, kModes> GroupTable(
    std::integer_sequence<int, Ms...>) {
  return {GroupRow<kAvx2, Ms>(std::make_integer_sequence<int, kGroup>{})...};
}
template <bool kAvx2>
constexpr auto kGroups = GroupTable<kAvx2>(std::make_integer_sequence<int, kModes>{});

// Folds k updates over n coordinates, block by block and group by group. mean: nullptr for the
// round's first fold.
template <bool kAvx2>
std::uint32_t FoldBlocks(const float* mean, float* out, const float* const* x, const double* w,
                         int k, double keep, std::size_t n) {
  alignas(64) double acc[kBlock];
  const float* xs[kMaxFoldWidth];
  std::uint32_t bad = 0;
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t len = std::min(kBlock, n - b);
    const bool prefetch = b + 2 * kBlock <= n;
    for (int j = 0; j < k; ++j) xs[j] = x[j] + b;
    for (int g0 = 0; g0 < k; g0 += kGroup) {
      const int g = std::min(kGroup, k - g0);
      const bool first = g0 == 0, last = g0 + g == k;
      const int mode =
          first ? (last ? (mean ? kMeanToOut : kZeroToOut) : (mean ? kMeanToAcc : kZeroToAcc))
                : (last ? kAccToOut : kAccToAcc);
      bad |= kGroups<kAvx2>[static_cast<std::size_t>(mode)][static_cast<std::size_t>(g - 1)](
          mean ? mean + b : nullptr, acc, out + b, xs + g0, w + g0, keep, len, prefetch);
    }
  }
  return bad;
}

// The fold of one thread's range. With AVX2: streaming stores need 32-byte aligned addresses and
// a std::vector's floats are only 16-byte aligned, so the coordinates before the first boundary
// and the tail of less than a line go through the portable passes (same bits).
std::uint32_t FoldRange(const float* mean, float* out, const float* const* x, const double* w,
                        int k, double keep, std::size_t n) {
#ifdef FEDML_AVX2_DISPATCH
  if (core::CpuHasAvx2()) {
    const auto addr = reinterpret_cast<std::uintptr_t>(out);
    const std::size_t head = std::min(n, ((32 - addr % 32) % 32) / sizeof(float));
    const std::size_t body = (n - head) / kLine * kLine;
    const float* xs[kMaxFoldWidth];
    const auto part = [&](bool avx2, std::size_t b, std::size_t len) -> std::uint32_t {
      if (len == 0) return 0;
      for (int j = 0; j < k; ++j) xs[j] = x[j] + b;
      const float* m = mean ? mean + b : nullptr;
      return avx2 ? FoldBlocks<true>(m, out + b, xs, w, k, keep, len)
                  : FoldBlocks<false>(m, out + b, xs, w, k, keep, len);
    };
    const std::uint32_t bad =
        part(false, 0, head) | part(true, head, body) | part(false, head + body, n - head - body);
    // Streaming stores are weakly ordered: fence them before the thread join publishes the
    // output to the thread that swaps it in.
    _mm_sfence();
    return bad;
  }
#endif
  return FoldBlocks<false>(mean, out, x, w, k, keep, n);
}

// n zero floats. The round's result is a new buffer every round, and where the allocator maps
// fresh pages for it, first touching 4 KB pages cost up to 6 ms of a 31 ms round (32 x 4M floats,
// one thread: a fifth of it; ~0.6 ms where it reuses memory). Asking for transparent huge pages
// before the zero fill cuts those faults 512-fold where the kernel grants them on request (THP
// "madvise" or "always"); elsewhere the advice is ignored and nothing changes.
std::vector<float> ModelBuffer(std::size_t n) {
  std::vector<float> v;
  v.reserve(n);
#ifdef __linux__
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto first = reinterpret_cast<std::uintptr_t>(v.data());
  const std::uintptr_t begin = (first + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (first + n * sizeof(float)) & ~(kHuge - 1);
  if (end > begin) {
    (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
  }
#endif
  v.resize(n);
  return v;
}

bool ByClientId(const ClientUpdate& a, const ClientUpdate& b) { return a.client_id < b.client_id; }

std::string ClientName(const ClientUpdate& u) {
  return "update from client " + std::to_string(u.client_id);
}

}  // namespace

FedAvg::FedAvg(FedAvgOptions options) : options_(options) {
  options_.fold_width = std::clamp(options_.fold_width, 1, kMaxFoldWidth);
  pending_.reserve(static_cast<std::size_t>(options_.fold_width));
}

Status FedAvg::Begin(const core::ModelState& global, const RoundInfo& /*info*/) {
  if (global.empty()) return Status::InvalidArgument("FedAvg: the global model has no tensors");
  // mean_ carries the layout and becomes the result, so each round needs one new model-sized
  // buffer; scratch_ keeps its capacity across rounds of one model. The layout is copied from
  // layout_ (names and shapes, no values) rather than made by ZerosLike, so that the new buffer
  // can be asked for huge pages before it is first touched (ModelBuffer).
  if (layout_.specs() != global.specs()) {
    layout_ = core::ModelState::ZerosLike(global);
    std::vector<float>().swap(layout_.flat());
  }
  mean_ = layout_;
  mean_.flat() = ModelBuffer(global.numel());
  if (scratch_.size() != global.numel()) scratch_ = ModelBuffer(global.numel());
  pending_.clear();
  folded_weight_ = 0.0;
  mean_initialised_ = false;
  accepted_ = 0;
  begun_ = true;
  return Status::Ok();
}

Status FedAvg::Accumulate(ClientUpdate update) {
  if (!begun_) {
    return Status::FailedPrecondition("FedAvg: Accumulate called before Begin (or after Finalize)");
  }
  FEDML_RETURN_IF_ERROR(mean_.CheckSameLayout(update.state, "FedAvg: " + ClientName(update)));
  if (update.num_samples <= 0) {
    return Status::InvalidArgument("FedAvg: " + ClientName(update) + " has num_samples " +
                                   std::to_string(update.num_samples) +
                                   "; the sample count must be > 0");
  }
  pending_.push_back(std::move(update));
  ++accepted_;
  if (options_.order_independent || static_cast<int>(pending_.size()) < options_.fold_width) {
    return Status::Ok();
  }
  return Fold();
}

Status FedAvg::Fold() {
  // The first fold_width queued updates (all of them when streaming; with order_independent,
  // Finalize has sorted the whole queue).
  const int k = std::min(static_cast<int>(pending_.size()), options_.fold_width);
  if (k == 0) return Status::Ok();
  const auto batch_end = pending_.begin() + k;
  // A fold's sum runs in client-id order, not arrival order, so the updates that share a fold
  // give the same bits however they arrived (stable: equal ids keep their arrival order). At most
  // kMaxFoldWidth moves of small structs per fold.
  std::stable_sort(pending_.begin(), batch_end, ByClientId);
  // Weights relative to the new total, so the stored state is a mean (bounded by the inputs).
  double added = 0.0;
  for (auto u = pending_.begin(); u != batch_end; ++u) added += static_cast<double>(u->num_samples);
  const double total = folded_weight_ + added;
  const float* x[kMaxFoldWidth];
  double w[kMaxFoldWidth];
  for (int j = 0; j < k; ++j) {
    x[j] = pending_[j].state.data();
    w[j] = static_cast<double>(pending_[j].num_samples) / total;
  }
  const double keep = folded_weight_ / total;
  const float* mean = mean_initialised_ ? mean_.data() : nullptr;
  std::atomic<std::uint32_t> bad{0};
  // Ranges of whole 16-float lines (so threads share at most the line at a boundary), of at
  // least 64K parameters (below that a thread costs more than it folds).
  const int threads = options_.threads > 0
                          ? options_.threads
                          : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  FEDML_RETURN_IF_ERROR(core::ParallelRanges(
      mean_.numel(), threads, std::size_t{1} << 16, kLine, [&](std::size_t b, std::size_t e) {
        const float* xs[kMaxFoldWidth];
        for (int j = 0; j < k; ++j) xs[j] = x[j] + b;
        bad.fetch_or(
            FoldRange(mean ? mean + b : nullptr, scratch_.data() + b, xs, w, k, keep, e - b));
        return Status::Ok();
      }));
  if (bad.load() == 0) {
    mean_.flat().swap(scratch_);
    mean_initialised_ = true;
    folded_weight_ = total;
    pending_.erase(pending_.begin(), batch_end);
    return Status::Ok();
  }
  // Rare path: mean_ is untouched. Find the offenders (the fold only knows that one exists),
  // drop them and keep the rest queued for the next fold.
  std::string message = "FedAvg: dropped";
  std::vector<ClientUpdate> kept;
  kept.reserve(pending_.capacity());
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    ClientUpdate& u = *it;
    if (it >= batch_end) {  // not in this fold: kept as it is
      kept.push_back(std::move(u));
      continue;
    }
    Status finite = u.state.CheckFinite();
    if (finite.ok()) {
      kept.push_back(std::move(u));
    } else {
      message += " " + ClientName(u) + " (" + finite.message() + ");";
      --accepted_;
    }
  }
  pending_ = std::move(kept);
  message += " found when folding the queued updates; the round goes on without it, " +
             std::to_string(accepted_) + " update(s) accepted";
  return Status::InvalidArgument(message);
}

Result<core::ModelState> FedAvg::Finalize() {
  if (!begun_) {
    return Status::FailedPrecondition("FedAvg: Finalize called before Begin (or twice)");
  }
  if (accepted_ == 0) {
    return Status::FailedPrecondition("FedAvg: no update was accepted this round");
  }
  if (options_.order_independent) {
    // Every update of the round is here: fold them in client-id order, fold_width at a time. After
    // an error (a dropped update, the rest still queued) the next Finalize sorts again, so the
    // folds are those of a round in which the dropped update never arrived.
    std::stable_sort(pending_.begin(), pending_.end(), ByClientId);
    while (!pending_.empty()) FEDML_RETURN_IF_ERROR(Fold());
  } else {
    FEDML_RETURN_IF_ERROR(Fold());
  }
  begun_ = false;
  return std::move(mean_);
}

}  // namespace fedml::algorithms
