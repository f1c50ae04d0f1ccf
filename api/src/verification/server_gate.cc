#include "verification/server_gate.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "fedml/api/client_trainer.h"
#include "fedml/core/log.h"
#include "fedml/core/security/crypto.h"

namespace fedml::api {

core::Bytes SimulationSpotCheckSecret(std::uint64_t seed) {
  std::string input = "fedml-spot-check-secret-v1";
  for (int i = 0; i < 8; ++i) input.push_back(static_cast<char>((seed >> (8 * i)) & 0xff));
  auto digest = core::security::Sha256(input.data(), input.size());
  if (!digest.ok()) return {};  // OpenSSL failed: ServerGate::Start refuses the empty key
  return core::Bytes(digest->begin(), digest->end());
}

namespace verification {

using core::Message;
using core::MessageType;
namespace sec = core::security;

ServerGate::ServerGate(VerificationOptions options, algorithms::ContributionAccounts accounts,
                       std::uint64_t run_seed, std::chrono::milliseconds round_timeout,
                       server::LedgerObserver& ledger)
    : options_(std::move(options)),
      accounts_(std::move(accounts)),
      run_seed_(run_seed),
      round_timeout_(round_timeout),
      ledger_(ledger) {}

Result<std::unique_ptr<ServerGate>> ServerGate::Start(
    VerificationOptions v, const std::map<std::string, core::ModelState>& saved,
    std::uint64_t run_seed, std::chrono::milliseconds round_timeout,
    server::LedgerObserver& ledger) {
  if (v.checkpoint_interval < 1 || !(v.probability >= 0.0 && v.probability <= 1.0) ||
      !(v.threshold > 0.0) || !std::isfinite(v.threshold)) {
    return Status::InvalidArgument(
        "verification needs checkpoint_interval >= 1, verify_probability in [0, 1] and a finite "
        "verify_threshold > 0");
  }
  if (v.probability > 0.0 && !v.replay) {
    return Status::InvalidArgument(
        "spot checks (verify_probability > 0) need a segment replayer on the server");
  }
  if (v.secret.empty()) {
    FEDML_ASSIGN_OR_RETURN(v.secret, sec::SecureRandomBytes(sec::kSpotCheckSecretBytes));
  }
  if (v.secret.size() != sec::kSpotCheckSecretBytes) {
    return Status::InvalidArgument("the spot-check secret must be " +
                                   std::to_string(sec::kSpotCheckSecretBytes) + " bytes");
  }
  FEDML_ASSIGN_OR_RETURN(algorithms::ContributionAccounts accounts,
                         algorithms::ContributionAccounts::Create(v.accounts));
  FEDML_RETURN_IF_ERROR(accounts.RestoreState(saved).WithContext(
      "restoring the contribution accounts from the checkpoint"));
  return std::unique_ptr<ServerGate>(
      new ServerGate(std::move(v), std::move(accounts), run_seed, round_timeout, ledger));
}

Status ServerGate::BeginRound(const core::ModelState& global) {
  FEDML_ASSIGN_OR_RETURN(global_sha256_, sec::CheckpointSha256(global));
  return Status::Ok();
}

void ServerGate::AddTaskAttrs(std::int64_t round, std::int64_t client,
                              std::map<std::string, std::string>& attrs) const {
  attrs[kVerifyIntervalAttr] = std::to_string(options_.checkpoint_interval);
  attrs[kVerifySeedAttr] = std::to_string(TaskSeed(run_seed_, round, client));
}

double ServerGate::Reward(std::int64_t client, std::int64_t samples) {
  auto paid = accounts_.Reward(client, samples);
  return paid.ok() ? *paid : 0.0;
}

void ServerGate::RecordCheck(std::int64_t client, std::int64_t segment, const char* result,
                             double distance, RoundMetrics& metrics) {
  const bool passed = std::string(result) == "pass";
  metrics.extra[passed ? "verify_passed" : "verify_failed"] += 1;
  auto effect = accounts_.RecordCheck(client, passed);
  if (effect.ok() && effect->excluded) newly_excluded_.push_back(client);
  if (!ledger_.enabled()) return;
  if (!std::isfinite(distance)) distance = std::numeric_limits<double>::max();
  ledger_.Check({client, static_cast<int>(segment), result, distance, options_.threshold});
}

Result<sec::SpotCheck> ServerGate::Check(std::int64_t round, std::int64_t client,
                                         const std::string& blob,
                                         const algorithms::ClientUpdate& update,
                                         const std::string& sha256,
                                         const std::optional<ExpectedWork>& known,
                                         sec::TrainingCommitment& commitment,
                                         RoundMetrics& metrics) {
  const VerificationOptions& v = options_;
  const std::uint64_t seed = TaskSeed(run_seed_, round, client);
  auto decoded = sec::DecodeCommitment(core::Bytes(blob.begin(), blob.end()));
  if (!known && v.probability > 0.0) {  // the server's shortcoming: refused, not held against it
    return Status::FailedPrecondition(
        "the server cannot know this client's work (its trainer does not read the client's "
        "partition), so neither its committed step count nor a replay can be checked");
  }
  Status why;
  if (!decoded.ok()) {
    why = decoded.status().WithContext("the update's commitment");
  } else {
    commitment = std::move(decoded).value();
    const sec::TrainingCommitment& c = commitment;
    if (c.checkpoint_sha256.front() != global_sha256_) {
      why = Status::InvalidArgument("its trajectory does not start at the global model sent");
    } else if (c.checkpoint_sha256.back() != sha256) {
      why = Status::InvalidArgument("its trajectory does not end at the update it came with");
    } else if (c.checkpoint_interval != v.checkpoint_interval) {
      why = Status::InvalidArgument("it commits to checkpoints every " +
                                    std::to_string(c.checkpoint_interval) + " steps, not " +
                                    std::to_string(v.checkpoint_interval));
    } else if (c.data_seed != seed) {
      why = Status::InvalidArgument("its data order is not from the seed the task named");
    } else if (c.num_samples != update.num_samples) {
      why =
          Status::InvalidArgument("it claims " + std::to_string(c.num_samples) +
                                  " samples but the update " + std::to_string(update.num_samples));
    } else if (known && c.total_steps != known->total_steps) {
      // Fewer steps is less work (0 steps: nothing to spot-check); more is a trajectory the
      // task did not ask for.
      why = Status::InvalidArgument(
          "it commits to " + std::to_string(c.total_steps) + " optimizer steps; its task is " +
          std::to_string(known->total_steps) + " (epochs x ceil(samples / batch_size))");
    }
  }
  if (!why.ok()) {
    RecordCheck(client, -1, "mismatch", 0.0, metrics);
    return why.WithContext("commitment refused");
  }
  FEDML_ASSIGN_OR_RETURN(std::string digest, sec::CommitmentDigest(commitment));
  return sec::SelectSpotCheck(v.secret, round, client, digest, v.probability,
                              sec::NumSegments(commitment.total_steps, v.checkpoint_interval));
}

void ServerGate::ReportExclusions(std::int64_t round) {
  for (std::int64_t client : newly_excluded_) {
    const algorithms::ClientAccount a = accounts_.Account(client);
    FEDML_LOG_WARNING(
        "round %lld: client %lld is excluded from later rounds (reputation %.3g, stake %.3g)",
        static_cast<long long>(round) + 1, static_cast<long long>(client), a.reputation, a.stake);
  }
  newly_excluded_.clear();
}

void ServerGate::SettleReveal(std::int64_t round, PendingCheck& p, Message&& msg,
                              double& replay_seconds, RoundMetrics& metrics) {
  const std::int64_t client = p.update.client_id;
  const std::int64_t k = p.segment;
  const sec::TrainingCommitment& c = p.commitment;
  // distance: what the ledger records (the largest double where nothing was measured).
  auto refuse = [&](const char* result, const std::string& why,
                    double distance = std::numeric_limits<double>::max()) {
    FEDML_LOG_WARNING("round %lld: client %lld failed its spot check of segment %lld: %s",
                      static_cast<long long>(round) + 1, static_cast<long long>(client),
                      static_cast<long long>(k), why.c_str());
    RecordCheck(client, k, result, distance, metrics);
  };
  if (msg.type == MessageType::kInvalid || msg.attrs.count("error") ||
      msg.attrs["stage"] != kVerifyStageReveal ||
      msg.client_ids != std::vector<std::int64_t>{client}) {
    refuse("fail", "it did not reveal its checkpoints: " +
                       (msg.attrs.count("error") ? msg.attrs["error"] : "a malformed answer"));
    return;
  }
  auto next = msg.extras.find(kVerifyNextExtra);
  auto matches = [&](std::int64_t index, const core::ModelState& state) {
    auto m = sec::CheckpointMatches(c, index, state);
    return m.ok() && *m;
  };
  const bool revealed =
      next != msg.extras.end() && matches(k, msg.model) && matches(k + 1, next->second);
  if (!revealed) {
    refuse("mismatch", "the checkpoints it revealed are not those it committed to");
    return;
  }
  ReplayTask task;
  task.client_id = client;
  task.data_seed = c.data_seed;
  task.first_step = sec::SegmentStart(k, c.checkpoint_interval, c.total_steps);
  task.stop_step = sec::SegmentEnd(k, c.checkpoint_interval, c.total_steps);
  task.start = std::move(msg.model);
  const auto t_replay = core::Clock::now();
  auto replayed = options_.replay(task);
  replay_seconds += std::chrono::duration<double>(core::Clock::now() - t_replay).count();
  auto distance = replayed.ok() ? sec::StateL2Distance(*replayed, next->second)
                                : Result<double>(replayed.status());
  auto movement = replayed.ok() ? sec::StateL2Distance(*replayed, task.start)
                                : Result<double>(replayed.status());
  if (!distance.ok() || !movement.ok()) {
    refuse("fail", "its segment cannot be replayed: " +
                       (distance.ok() ? movement : distance).status().ToString());
    return;
  }
  // Relative to the honest movement of the segment, which the client does not control.
  const double relative = *distance / std::max(*movement, 1e-30);
  p.passed = sec::SegmentPasses(relative, options_.threshold);
  if (!p.passed) {
    char why[128];
    std::snprintf(why, sizeof(why),
                  "its replay ends %.3g (relative) from its committed checkpoint, above "
                  "verify_threshold %.3g",
                  relative, options_.threshold);
    refuse("fail", why, relative);
    return;
  }
  RecordCheck(client, k, "pass", relative, metrics);
}

Status ServerGate::RunSpotChecks(server::WorkerPool& pool, std::int64_t round,
                                 std::int64_t model_version, std::vector<PendingCheck>& pending,
                                 RoundMetrics& metrics) {
  const auto t0 = core::Clock::now();
  double replay_seconds = 0.0;
  server::WorkerPool::Batch batch;
  batch.round = round;
  batch.model_version = model_version;
  batch.n = static_cast<int>(pending.size());
  batch.reply_type = MessageType::kProtocol;
  batch.deadline = core::Clock::now() + round_timeout_;
  batch.owner = [&](int i) { return pending[i].rank; };
  batch.make_task = [&](int i) {
    Message m;
    m.type = MessageType::kProtocol;
    m.client_ids = {pending[i].update.client_id};
    m.attrs["stage"] = kVerifyStageReveal;
    m.attrs[kVerifySegmentAttr] = std::to_string(pending[i].segment);
    return m;
  };
  batch.describe = [&](int i) {
    return "the spot check of client " + std::to_string(pending[i].update.client_id);
  };
  batch.on_result = [&](int i, Message&& msg) {
    SettleReveal(round, pending[i], std::move(msg), replay_seconds, metrics);
  };
  FEDML_RETURN_IF_ERROR(pool.Dispatch(batch, metrics));
  metrics.extra["verify_seconds"] += replay_seconds;
  metrics.extra["verify_phase_seconds"] +=
      std::chrono::duration<double>(core::Clock::now() - t0).count();
  return Status::Ok();
}

}  // namespace verification
}  // namespace fedml::api
