// Secure aggregation, the server's half (fedml/api/secure_aggregation.h): the fit stage that
// replaces plain training in a synchronous round. Training rides on stage 0 (each client answers
// its task with its public keys), then the protocol's stages run over the worker pool, driving
// fedml::algorithms::SecAggServer, and the survivors' sum reaches the aggregator as one update.
// The client's half answers each stage in the worker.
//
// Contract: internal; runs on the controller's thread. An abort (too few clients left at some
// stage) costs the round its update, never the run: the global model stays as it was.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "fedml/algorithms/protocols/secagg.h"
#include "server/sync_rounds.h"

namespace fedml::api::secure {

class SecureFit final : public server::FitStage {
 public:
  explicit SecureFit(server::ServerContext& ctx) : ctx_(ctx) {}
  int Summands(int) const override { return 1; }  // the survivors' secure mean
  Status Run(std::int64_t round, const std::vector<std::int64_t>& sampled, core::ModelState& global,
             RoundMetrics& metrics) override;

 private:
  /// Sends each participant's stage message (out, by participant index) to the rank that holds
  /// it and collects the answers into `in` until all are in or stage_timeout passes; those that
  /// did not answer (gone, silent, failed, or a simulated dropout) are left out of `in`.
  Status Exchange(std::int64_t round, const char* stage, const std::vector<std::int64_t>& sampled,
                  const std::vector<int>& rank_of, std::map<int, core::Bytes>& out,
                  std::map<int, core::Bytes>& in, RoundMetrics& metrics);

  struct Round;
  /// One client's stage-0 answer (participant `pos`): its keys, and in a signed round their
  /// credential, checked before the server object takes the keys.
  Status AddKeys(Round& r, int pos, const core::Bytes& blob);
  /// Signed rounds: the consistency round over U3 (fedml/algorithms/protocols/secagg_auth.h),
  /// leaving in `requests` only the clients whose valid signature arrived.
  Status Consistency(Round& r, std::map<int, algorithms::SecAggUnmaskRequest>& requests,
                     RoundMetrics& metrics);
  /// Stage 0, riding on training: each client answers its task with its public keys.
  Status CollectKeys(Round& r, const core::ModelState& global, RoundMetrics& metrics);
  /// Stages 1 to 3 and the unmasking: the survivors' sum into `sum`, or the reason the protocol
  /// aborted into `abort` (too few left at some stage). A transport error is returned.
  Status RunStages(Round& r, RoundMetrics& metrics, Status& abort, std::vector<std::uint32_t>& sum);
  // Names in `metrics` (secagg_blamed, secagg_blamed_client_<id>) and the log every participant
  // the round caught breaking the protocol: a refused message, or the server object's blame.
  void ReportBlame(const Round& r, RoundMetrics& metrics) const;

  server::ServerContext& ctx_;
};

}  // namespace fedml::api::secure
