// Splitting a loop over [0, len) between threads, for the few CPU-bound loops that pay for it
// (the server's mask removal and key agreements in secure aggregation).
#pragma once

#include <cstddef>
#include <functional>

#include "fedml/core/status.h"

namespace fedml::core {

/// Runs slice(begin, end) over a split of [0, len) into at most max_threads contiguous ranges
/// (max_threads <= 0 means 1), one per thread, the caller's thread included. Inner bounds are
/// multiples of `align` (>= 1); every range but the last is at least min_len long, so small jobs
/// stay on the caller's thread. Every thread is joined before return, so slice may capture the
/// caller's locals by reference; slices run at once and must not write the same data. When no
/// thread can be started, the range runs on the caller's thread instead. Returns the first
/// range's error (in range order), if any; len 0 runs nothing and returns OK.
Status ParallelRanges(std::size_t len, int max_threads, std::size_t min_len, std::size_t align,
                      const std::function<Status(std::size_t begin, std::size_t end)>& slice);

}  // namespace fedml::core
