// System heterogeneity on a virtual clock: how long each simulated client takes for a task
// (download the model, train its samples, upload the update) and when it is online. The
// controllers (fedml/api/round_controller.h) advance a virtual clock by these durations, so a run
// with hours of simulated device time takes only the time the training itself takes, and its
// result is a function of the config and the seed alone. Torch-free.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::api {

struct SystemModelOptions {
  /// none: every client has the median speed and bandwidth; lognormal: each client's speed and
  /// bandwidth are the medians times exp(sigma Z), Z standard normal drawn from the seed;
  /// trace: read from trace_file.
  std::string heterogeneity = "none";
  double speed_sigma = 1.0;
  double bandwidth_sigma = 0.0;
  double compute_speed = 1000.0;  // samples per second of the median client
  double bandwidth_mbps = 100.0;  // the median client's link, each way (10^6 bits per second)
  /// CSV with the header `client_id,samples_per_second,bandwidth_mbps,available` and one row
  /// per client 0..num_clients-1 (any order). `available` lists the client's online windows in
  /// virtual seconds as `start-end` separated by `;` (empty: always online); outside them it is
  /// offline.
  std::string trace_file;
  std::uint64_t seed = 0;
  int num_clients = 1;
};

/// One client's device.
struct ClientSystem {
  double samples_per_second = 1.0;
  double bytes_per_second = 1.0;
  std::vector<std::pair<double, double>> windows;  // sorted, disjoint [start, end); empty: always
};

/// Immutable after Create; safe to share between threads.
class SystemModel {
 public:
  static constexpr double kNever = std::numeric_limits<double>::infinity();

  /// INVALID_ARGUMENT naming the key for an unknown heterogeneity, a non-positive speed,
  /// bandwidth or negative sigma; for a trace, errors name the file and line (a missing or
  /// repeated client, a malformed number or window).
  static Result<SystemModel> Create(const SystemModelOptions& options);

  int num_clients() const { return static_cast<int>(clients_.size()); }
  const ClientSystem& client(std::int64_t id) const { return clients_.at(static_cast<size_t>(id)); }

  /// Virtual seconds client `id` needs to receive `bytes_down`, train on `samples` samples
  /// (epochs times its data set) and send `bytes_up`.
  double TaskSeconds(std::int64_t id, double samples, std::uint64_t bytes_down,
                     std::uint64_t bytes_up) const;
  bool AvailableAt(std::int64_t id, double t) const;
  /// The end of the online window holding `t` (kNever when always online; `t` itself when
  /// offline at `t`).
  double OnlineUntil(std::int64_t id, double t) const;
  /// The earliest time >= t at which the client is online (kNever when it never is again).
  double NextOnline(std::int64_t id, double t) const;
  /// True when some client has offline periods (a trace with windows).
  bool has_offline_periods() const { return has_offline_; }

 private:
  std::vector<ClientSystem> clients_;
  bool has_offline_ = false;
};

}  // namespace fedml::api
