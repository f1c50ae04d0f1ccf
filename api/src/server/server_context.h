// What every round driver of one RoundController::Run shares: the strategy, the options, the
// worker pool, the observers (ledger, metrics callbacks), the optional verification gate, and the
// server's clock and model version; plus the steps that end every round the same way (evaluate,
// checkpoint, ledger record, metrics row).
//
// Contract: internal to the server; one per Run, used on the controller's thread only. Borrows
// everything it refers to; RoundController owns those for the length of Run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fedml/api/round_controller.h"
#include "server/ledger_observer.h"
#include "server/worker_pool.h"

namespace fedml::api::verification {
class ServerGate;
}

namespace fedml::api::server {

/// The work the options know client `client` does in one task (ServerOptions::expected_work), or
/// nullopt where they cannot know; the function's other errors pass through.
Result<std::optional<ExpectedWork>> KnownWork(const ServerOptions& options, std::int64_t client);
/// Whether an update of `client` may claim `claimed` samples: >= 1, equal to the known count,
/// else at most max_claimed_samples. INVALID_ARGUMENT naming both figures otherwise. The server's
/// rounds and an aggregator's subtree rounds check claims with it.
Status CheckClaim(const ServerOptions& options, std::int64_t client, std::int64_t claimed);

struct ServerContext {
  algorithms::Aggregator& aggregator;
  const ServerOptions& options;
  const GlobalEvaluator& evaluator;
  WorkerPool& pool;
  LedgerObserver& ledger;
  verification::ServerGate* gate = nullptr;  // with verified work
  std::function<void(std::int64_t round, int done, int total)> on_progress;
  std::function<void(const RoundMetrics&)> on_round;
  std::vector<RoundMetrics>& history;
  std::int64_t model_version = 0;
  double virtual_now = 0.0;  // the virtual clock (seconds), with a system model
  /// Told each client's fate as RecordOutcome records it (an aggregator's subtree round learns
  /// which clients its secure round summed this way). May be empty.
  std::function<void(std::int64_t client, bool accepted)> on_outcome = nullptr;

  /// The clients sampled for `round`: the seeded draw of SelectionSize() clients, among the
  /// online ones with a system model (advancing the clock to the next online time when nobody is
  /// online) and among the connected ones in deployment (none: an empty round), never an
  /// excluded one.
  Result<std::vector<std::int64_t>> SampleRound(std::int64_t round);
  /// How many clients a round selects: client_num_per_round x over_selection, rounded up, at
  /// most client_num_in_total.
  int SelectionSize() const;
  /// The samples client `id` trains in one task, for the virtual clock (1 without client_work).
  double ClientWork(std::int64_t id) const;
  /// The aggregator's view of client `client_id`'s reply (its model, metrics and extras moved).
  static algorithms::ClientUpdate UpdateFromReply(std::int64_t client_id, core::Message&& reply);
  /// The work the server knows client `client` does in one task (ServerOptions::expected_work),
  /// or nullopt where it cannot know; the function's other errors pass through.
  Result<std::optional<ExpectedWork>> KnownWork(std::int64_t client) const;
  /// Whether an update of `client` may claim `claimed` samples: >= 1, equal to the known count,
  /// else at most max_claimed_samples. INVALID_ARGUMENT naming both figures otherwise.
  Status CheckClaim(std::int64_t client, std::int64_t claimed) const;
  /// With over_selection: `batch` (the round's `selected` training tasks) closes as soon as
  /// client_num_per_round replies are in, and the row counts `selected` and `over_selected_cut`.
  void OverSelect(WorkerPool::Batch& batch, int selected, RoundMetrics& metrics) const;
  /// Adds what every train task carries beyond its strategy's payload: the signed ledger head.
  void TagTask(core::Message& task) const;
  /// An update's fate for the accounts (an accepted one is paid) and the ledger.
  void RecordOutcome(std::int64_t client, std::int64_t samples, const std::string& sha256,
                     bool accepted);
  /// Counts a refused message of `client` and says why.
  void Refuse(std::int64_t round, std::int64_t client, const char* what, const Status& why,
              RoundMetrics& metrics) const;
  /// Ends a round's training phase: a new global model from the aggregator when at least
  /// min_clients were `accepted`, else a warning and the model kept.
  Status EndTraining(std::int64_t round, int accepted, core::ModelState& global,
                     RoundMetrics& metrics, core::Clock::time_point train_start);
  /// Evaluates `global` when round (0-based) is due, into `metrics`.
  Status EvaluateIfDue(std::int64_t round, const core::ModelState& global, RoundMetrics& metrics);
  /// Ends a metrics row: ledger record, checkpoint, history, callback.
  Status EndRow(std::int64_t rounds_done, const core::ModelState& global, RoundMetrics& metrics);
  /// The strategy's state plus the accounts, for a checkpoint.
  std::map<std::string, core::ModelState> SavedState() const;

 private:
  Result<Evaluation> EvaluateOnWorkers(std::int64_t round, const core::ModelState& global,
                                       RoundMetrics& metrics);
};

}  // namespace fedml::api::server
