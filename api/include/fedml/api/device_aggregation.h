// Server-side aggregation on the device the run trains on (a CUDA GPU), for the plain
// sample-weighted mean that FedAvg, FedProx, FedBuff and the FedOpt family share. The host FedAvg
// (fedml/algorithms/fedavg.h) stays the CPU path; this one keeps the running mean on the device,
// so each update costs one host-to-device copy and one fused kernel instead of a pass of the
// server's CPU over its memory.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/status.h"

namespace fedml::api {

/// The running sample-weighted mean of flat float32 vectors, held on one device. Each Add is one
/// fused kernel, mean' = mean + (w / W') (x - mean) (torch::lerp), a convex combination, so finite
/// inputs never overflow whatever the sample counts; the error against a float64 reference is
/// about one float32 ulp of the largest input per update. Not thread-safe; the work is queued on
/// the calling thread's current stream.
class DeviceMean {
 public:
  /// Zero updates over vectors of `numel` elements on `device`.
  DeviceMean(std::int64_t numel, torch::Device device);

  /// Folds in `x` (numel elements, any device, float32) with weight `weight` > 0. A vector holding
  /// NaN or Inf, a wrong length or a non-positive weight is refused with INVALID_ARGUMENT and the
  /// mean is left as it was. The finiteness check is one reduction (float64, so finite values
  /// cannot overflow it) and waits for the device: it is what makes refusal possible.
  Status Add(const torch::Tensor& x, double weight);

  /// The mean so far (a view of the device buffer: copy it before the next Add). Meaningless
  /// before the first Add.
  const torch::Tensor& mean() const { return mean_; }
  double total_weight() const { return total_weight_; }
  std::int64_t count() const { return count_; }

 private:
  torch::Tensor mean_;
  double total_weight_ = 0.0;
  std::int64_t count_ = 0;
};

/// FedAvg's aggregator (the same contract as algorithms::FedAvg: full models in, their
/// sample-weighted mean out; a refused update leaves the round as it was) with the running mean on
/// `device` ("cpu", "cuda", "cuda:N"). Updates arrive as host ModelStates (that is how they travel)
/// and are copied to the device once; the mean crosses back to the host in Finalize. Unlike the
/// host FedAvg, a non-finite update is refused by the Accumulate that receives it. Errors: the
/// ParseDevice error when CUDA is asked for and this LibTorch build or this machine has none.
Result<std::unique_ptr<algorithms::Aggregator>> CreateDeviceFedAvg(const std::string& device);

}  // namespace fedml::api
