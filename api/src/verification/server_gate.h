// Verified work, the server's half (fedml/api/verification.h): a gate on the synchronous update
// path. Each update that arrives is checked against its commitment and accepted, held for a spot
// check, or refused; after the round's training the held ones are checked (reveal at the rank
// that trained the client, replay here) and the contribution accounts record every outcome. The
// client's half (committing while training, revealing a segment) is in the worker.
//
// Contract: not thread-safe; used on the controller's thread. Borrows the ledger observer, which
// must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fedml/algorithms/reputation.h"
#include "fedml/api/metrics.h"
#include "fedml/api/verification.h"
#include "fedml/core/security/commitment.h"
#include "server/ledger_observer.h"
#include "server/worker_pool.h"

namespace fedml::api::verification {

/// An update held back for a spot check.
struct PendingCheck {
  int pos = 0;   // in the round's sampled clients
  int rank = 0;  // that trained it and holds its checkpoints
  algorithms::ClientUpdate update;
  std::string sha256;  // of update.state
  double loss = 0.0;   // its reported train_loss
  core::security::TrainingCommitment commitment;
  std::int64_t segment = 0;
  bool passed = false;
};

class ServerGate {
 public:
  /// Checks the options, draws the secret when none is given and opens the accounts (restored
  /// from `saved`, the checkpoint's strategy state). INVALID_ARGUMENT naming the problem.
  static Result<std::unique_ptr<ServerGate>> Start(
      VerificationOptions options, const std::map<std::string, core::ModelState>& saved,
      std::uint64_t run_seed, std::chrono::milliseconds round_timeout,
      server::LedgerObserver& ledger);

  /// The round's global model (what every trajectory must start at).
  Status BeginRound(const core::ModelState& global);
  /// The task attributes that ask a client for a commitment.
  void AddTaskAttrs(std::int64_t round, std::int64_t client,
                    std::map<std::string, std::string>& attrs) const;
  /// An update just arrived (sha256: CheckpointSha256 of its state): the spot-check decision, or
  /// the reason its commitment is refused (already recorded in the ledger and the account).
  /// `known`: the work the server expects of the client (ServerContext::KnownWork), whose step
  /// count the commitment must match. With spot checks (probability > 0) an update whose work the
  /// server cannot know is refused: neither its step count nor a replay could be checked.
  Result<core::security::SpotCheck> Check(std::int64_t round, std::int64_t client,
                                          const std::string& blob,
                                          const algorithms::ClientUpdate& update,
                                          const std::string& sha256,
                                          const std::optional<ExpectedWork>& known,
                                          core::security::TrainingCommitment& commitment,
                                          RoundMetrics& metrics);
  /// Records a refused claim of `client` (its sample count) as a failed check, "mismatch".
  void RecordMismatch(std::int64_t client, RoundMetrics& metrics) {
    RecordCheck(client, -1, "mismatch", 0.0, metrics);
  }
  /// Reveals from the ranks, replays here; sets each one's passed.
  Status RunSpotChecks(server::WorkerPool& pool, std::int64_t round, std::int64_t model_version,
                       std::vector<PendingCheck>& pending, RoundMetrics& metrics);
  /// Says which clients this round's checks excluded.
  void ReportExclusions(std::int64_t round);

  /// What an accepted update of `samples` samples earns (0 when the account refuses).
  double Reward(std::int64_t client, std::int64_t samples);
  double Stake(std::int64_t client) const { return accounts_.Account(client).stake; }
  bool excluded(std::int64_t client) const { return accounts_.excluded(client); }
  bool any_excluded() const { return !accounts_.Excluded().empty(); }
  std::map<std::string, core::ModelState> SaveState() const { return accounts_.SaveState(); }

 private:
  ServerGate(VerificationOptions options, algorithms::ContributionAccounts accounts,
             std::uint64_t run_seed, std::chrono::milliseconds round_timeout,
             server::LedgerObserver& ledger);
  void RecordCheck(std::int64_t client, std::int64_t segment, const char* result, double distance,
                   RoundMetrics& metrics);
  /// Settles one reveal: replays the segment and records pass or fail.
  void SettleReveal(std::int64_t round, PendingCheck& p, core::Message&& msg,
                    double& replay_seconds, RoundMetrics& metrics);

  VerificationOptions options_;
  algorithms::ContributionAccounts accounts_;
  std::uint64_t run_seed_;
  std::chrono::milliseconds round_timeout_;
  server::LedgerObserver& ledger_;
  std::string global_sha256_;                 // of the model the current round sent
  std::vector<std::int64_t> newly_excluded_;  // by this round's checks, until reported
};

}  // namespace fedml::api::verification
