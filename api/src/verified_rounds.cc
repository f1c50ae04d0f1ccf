// Verified work at the round controller (fedml/api/verification.h): commitment checks on
// arrival, spot checks after the round's training (reveal at the client's rank, replay here),
// and the contribution accounts those outcomes feed.
#include <cmath>
#include <cstdio>
#include <limits>

#include "fedml/api/round_controller.h"
#include "fedml/core/security/crypto.h"

namespace fedml::api {

using core::Message;
using core::MessageType;
namespace sec = core::security;

core::Bytes SimulationSpotCheckSecret(std::uint64_t seed) {
  std::string input = "fedml-spot-check-secret-v1";
  for (int i = 0; i < 8; ++i) input.push_back(static_cast<char>((seed >> (8 * i)) & 0xff));
  auto digest = sec::Sha256(input.data(), input.size());
  if (!digest.ok()) return {};  // OpenSSL failed: StartVerification refuses the empty key
  return core::Bytes(digest->begin(), digest->end());
}

Status RoundController::StartVerification() {
  VerificationOptions& v = options_.verification;
  if (!v.enabled) return Status::Ok();
  std::string what;
  if (options_.async.enabled) what = "asynchronous " + aggregator_->name();
  if (options_.secure.enabled()) what = "secure aggregation (the server never sees an update)";
  if (!what.empty()) {
    return Status::InvalidArgument(
        "verification settles each update at the end of a synchronous round; it does not "
        "combine with " +
        what);
  }
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
  FEDML_RETURN_IF_ERROR(
      accounts.RestoreState(options_.start_strategy_state)
          .WithContext("restoring the contribution accounts from the checkpoint"));
  accounts_.emplace(std::move(accounts));
  return Status::Ok();
}

std::map<std::string, core::ModelState> RoundController::SavedState() const {
  std::map<std::string, core::ModelState> state = aggregator_->SaveState();
  if (accounts_) state.merge(accounts_->SaveState());
  return state;
}

void RoundController::RecordCheck(std::int64_t client, std::int64_t segment, const char* result,
                                  double distance, RoundMetrics& metrics) {
  const bool passed = std::string(result) == "pass";
  metrics.extra[passed ? "verify_passed" : "verify_failed"] += 1;
  auto effect = accounts_->RecordCheck(client, passed);
  if (effect.ok() && effect->excluded) newly_excluded_.push_back(client);
  if (!ledger_) return;
  if (!std::isfinite(distance)) distance = std::numeric_limits<double>::max();
  ledger_record_.checks.push_back(
      {client, static_cast<int>(segment), result, distance, options_.verification.threshold});
}

Result<sec::SpotCheck> RoundController::CheckCommitment(std::int64_t round, std::int64_t client,
                                                        const std::string& blob,
                                                        const algorithms::ClientUpdate& update,
                                                        const std::string& sha256,
                                                        sec::TrainingCommitment& commitment,
                                                        RoundMetrics& metrics) {
  const VerificationOptions& v = options_.verification;
  const std::uint64_t seed = TaskSeed(options_.random_seed, round, client);
  auto decoded = sec::DecodeCommitment(core::Bytes(blob.begin(), blob.end()));
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

void RoundController::ReportExclusions(std::int64_t round) {
  for (std::int64_t client : newly_excluded_) {
    const algorithms::ClientAccount a = accounts_->Account(client);
    std::fprintf(stderr,
                 "warning: round %lld: client %lld is excluded from later rounds (reputation "
                 "%.3g, stake %.3g)\n",
                 static_cast<long long>(round) + 1, static_cast<long long>(client), a.reputation,
                 a.stake);
  }
  newly_excluded_.clear();
}

Status RoundController::RunSpotChecks(std::int64_t round, std::vector<PendingCheck>& pending,
                                      RoundMetrics& metrics) {
  const VerificationOptions& v = options_.verification;
  const int n = static_cast<int>(pending.size());
  const auto t0 = core::Clock::now();
  double replay_seconds = 0.0;
  FEDML_RETURN_IF_ERROR(Dispatch(
      round, n, MessageType::kProtocol, core::Clock::now() + options_.round_timeout,
      [&](int i) { return pending[i].rank; },
      [&](int i) {
        Message m;
        m.type = MessageType::kProtocol;
        m.client_ids = {pending[i].update.client_id};
        m.attrs["stage"] = kVerifyStageReveal;
        m.attrs[kVerifySegmentAttr] = std::to_string(pending[i].segment);
        return m;
      },
      [&](int i) {
        return "the spot check of client " + std::to_string(pending[i].update.client_id);
      },
      [&](int i, Message&& msg) {
        PendingCheck& p = pending[i];
        const std::int64_t client = p.update.client_id;
        const std::int64_t k = p.segment;
        const sec::TrainingCommitment& c = p.commitment;
        // distance: what the ledger records (the largest double where nothing was measured).
        auto refuse = [&](const char* result, const std::string& why,
                          double distance = std::numeric_limits<double>::max()) {
          std::fprintf(stderr,
                       "warning: round %lld: client %lld failed its spot check of segment "
                       "%lld: %s\n",
                       static_cast<long long>(round) + 1, static_cast<long long>(client),
                       static_cast<long long>(k), why.c_str());
          RecordCheck(client, k, result, distance, metrics);
        };
        if (msg.type == MessageType::kInvalid || msg.attrs.count("error") ||
            msg.attrs["stage"] != kVerifyStageReveal ||
            msg.client_ids != std::vector<std::int64_t>{client}) {
          refuse("fail",
                 "it did not reveal its checkpoints: " +
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
        auto replayed = v.replay(task);
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
        p.passed = sec::SegmentPasses(relative, v.threshold);
        if (!p.passed) {
          char why[128];
          std::snprintf(why, sizeof(why),
                        "its replay ends %.3g (relative) from its committed "
                        "checkpoint, above verify_threshold %.3g",
                        relative, v.threshold);
          refuse("fail", why, relative);
          return;
        }
        RecordCheck(client, k, "pass", relative, metrics);
      },
      metrics));
  metrics.extra["verify_seconds"] += replay_seconds;
  metrics.extra["verify_phase_seconds"] +=
      std::chrono::duration<double>(core::Clock::now() - t0).count();
  return Status::Ok();
}

}  // namespace fedml::api
