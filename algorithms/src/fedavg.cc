#include "fedml/algorithms/fedavg.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "fedml/core/cpu.h"
#include "fedml/core/parallel.h"

namespace fedml::algorithms {
namespace {

// NaN and Inf are exactly the floats whose exponent bits are all ones. An integer test on the
// bits vectorises (std::isfinite in the loop does not), so the check costs no extra pass.
inline std::uint32_t NonFinite(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}

// Floats per 64-byte cache line, and how far ahead of the fold the inputs are prefetched. With
// up to 18 streams the hardware prefetchers fall behind; an explicit prefetch 2 KB ahead of each
// stream ran the fold ~15% faster on the reference machine (distances from 512 B to 16 KB did
// about equally well).
constexpr std::size_t kLine = 16;
constexpr std::size_t kAhead = 512;

// One pass over memory: out[i] = float(keep * mean[i] + sum_j w[j] * x[j][i]), formed in double.
// K is a template parameter so that the loop over updates unrolls and each coordinate's partial
// sum stays in a register; gcc -O3 vectorises the loop over i. Returns nonzero when an output is
// not finite (which, for a convex combination, means some input was not).
template <int K, bool kReadMean>
FEDML_ALWAYS_INLINE std::uint32_t FoldKernel(const float* __restrict mean, float* __restrict out,
                                             const float* const* xs, const double* w, double keep,
                                             std::size_t n) {
  const float* x[K];
  double wk[K];
  for (int j = 0; j < K; ++j) {
    x[j] = xs[j];
    wk[j] = w[j];
  }
  std::uint32_t bad = 0;
  for (std::size_t b = 0; b < n; b += kLine) {
    if (b + kAhead < n) {
      for (int j = 0; j < K; ++j) __builtin_prefetch(x[j] + b + kAhead);
      if (kReadMean) __builtin_prefetch(mean + b + kAhead);
    }
    const std::size_t e = std::min(n, b + kLine);
    for (std::size_t i = b; i < e; ++i) {
      double acc = kReadMean ? keep * static_cast<double>(mean[i]) : 0.0;
#pragma GCC unroll 16
      for (int j = 0; j < K; ++j) acc += wk[j] * static_cast<double>(x[j][i]);
      const float f = static_cast<float>(acc);
      out[i] = f;
      bad |= NonFinite(f);
    }
  }
  return bad;
}

using FoldFn = std::uint32_t (*)(const float*, float*, const float* const*, const double*, double,
                                 std::size_t);

template <int K>
std::uint32_t FoldBaseline(const float* mean, float* out, const float* const* x, const double* w,
                           double keep, std::size_t n) {
  return mean ? FoldKernel<K, true>(mean, out, x, w, keep, n)
              : FoldKernel<K, false>(mean, out, x, w, keep, n);
}

#ifdef FEDML_AVX2_DISPATCH
// The library is built for baseline x86-64 (SSE2, two doubles per register); at that width the
// float->double conversions make the fold compute-bound below memory speed for narrow folds.
// An AVX2 copy, picked at run time, doubles the lanes.
template <int K>
__attribute__((target("avx2"))) std::uint32_t FoldAvx2(const float* mean, float* out,
                                                       const float* const* x, const double* w,
                                                       double keep, std::size_t n) {
  return mean ? FoldKernel<K, true>(mean, out, x, w, keep, n)
              : FoldKernel<K, false>(mean, out, x, w, keep, n);
}
#endif

template <int... Ks>
FoldFn PickFold(int k, std::integer_sequence<int, Ks...>) {
  FoldFn fn = nullptr;
#ifdef FEDML_AVX2_DISPATCH
  if (core::CpuHasAvx2()) {
    ((k == Ks + 1 ? (fn = &FoldAvx2<Ks + 1>, 0) : 0), ...);
    return fn;
  }
#endif
  ((k == Ks + 1 ? (fn = &FoldBaseline<Ks + 1>, 0) : 0), ...);
  return fn;
}

FoldFn FoldFor(int k) { return PickFold(k, std::make_integer_sequence<int, kMaxFoldWidth>{}); }

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
  // mean_ carries the layout and becomes the result; scratch_ keeps its capacity across rounds
  // of one model so that a long-running server does not re-fault model-sized pages every round.
  mean_ = core::ModelState::ZerosLike(global);
  scratch_.resize(global.numel());
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
  if (static_cast<int>(pending_.size()) < options_.fold_width) return Status::Ok();
  return Fold();
}

Status FedAvg::Fold() {
  const int k = static_cast<int>(pending_.size());
  if (k == 0) return Status::Ok();
  // Weights relative to the new total, so the stored state is a mean (bounded by the inputs).
  double added = 0.0;
  for (const ClientUpdate& u : pending_) added += static_cast<double>(u.num_samples);
  const double total = folded_weight_ + added;
  const float* x[kMaxFoldWidth];
  double w[kMaxFoldWidth];
  for (int j = 0; j < k; ++j) {
    x[j] = pending_[j].state.data();
    w[j] = static_cast<double>(pending_[j].num_samples) / total;
  }
  const double keep = folded_weight_ / total;
  const FoldFn fold = FoldFor(k);
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
        bad.fetch_or(fold(mean ? mean + b : nullptr, scratch_.data() + b, xs, w, keep, e - b));
        return Status::Ok();
      }));
  if (bad.load() == 0) {
    mean_.flat().swap(scratch_);
    mean_initialised_ = true;
    folded_weight_ = total;
    pending_.clear();
    return Status::Ok();
  }
  // Rare path: mean_ is untouched. Find the offenders (the fold only knows that one exists),
  // drop them and keep the rest queued for the next fold.
  std::string message = "FedAvg: dropped";
  std::vector<ClientUpdate> kept;
  kept.reserve(pending_.capacity());
  for (ClientUpdate& u : pending_) {
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
  FEDML_RETURN_IF_ERROR(Fold());
  begun_ = false;
  return std::move(mean_);
}

}  // namespace fedml::algorithms
