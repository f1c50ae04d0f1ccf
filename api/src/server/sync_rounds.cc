#include "server/sync_rounds.h"

#include <algorithm>

#include "fedml/core/security/commitment.h"
#include "verification/server_gate.h"

namespace fedml::api::server {

using core::Message;
using core::MessageType;

Status SyncRounds::Run(core::ModelState& global) {
  const ServerOptions& options = ctx_.options;
  for (std::int64_t round = options.start_round; round < options.comm_round; ++round) {
    RoundMetrics metrics;
    metrics.round = round + 1;
    if (options.wait_for_clients) {
      FEDML_RETURN_IF_ERROR(options.wait_for_clients(core::Clock::now() + options.round_timeout));
    }
    ctx_.pool.RefreshConnected();
    const auto t0 = core::Clock::now();
    Status status = RunRound(round, global, metrics);
    if (status.ok()) status = ctx_.EvaluateIfDue(round, global, metrics);
    metrics.wall_seconds = std::chrono::duration<double>(core::Clock::now() - t0).count();
    if (status.ok()) status = ctx_.EndRow(round + 1, global, metrics);
    FEDML_RETURN_IF_ERROR(status);
  }
  return Status::Ok();
}

Status SyncRounds::RunRound(std::int64_t round, core::ModelState& global, RoundMetrics& metrics) {
  FEDML_ASSIGN_OR_RETURN(std::vector<std::int64_t> sampled, ctx_.SampleRound(round));
  if (ctx_.options.system) {
    // The round lasts as long as its slowest client, up to round_timeout_s of virtual time;
    // clients that would miss it, or go offline before they finish, are dropped from the round
    // (and spared the training), as a deployed server would drop them.
    const SystemModel& sys = *ctx_.options.system;
    const auto bytes = static_cast<std::uint64_t>(global.numel() * sizeof(float));
    const double deadline_s = std::chrono::duration<double>(ctx_.options.round_timeout).count();
    double longest = 0.0;
    std::vector<std::int64_t> kept;
    for (std::int64_t c : sampled) {
      const double d = sys.TaskSeconds(c, ctx_.ClientWork(c), bytes, bytes);
      const double offline_at = sys.OnlineUntil(c, ctx_.virtual_now) - ctx_.virtual_now;
      if (d > deadline_s || d > offline_at) {
        ++metrics.dropped;
        longest = std::max(longest, std::min(deadline_s, offline_at));
        continue;
      }
      longest = std::max(longest, d);
      kept.push_back(c);
    }
    ctx_.virtual_now += longest;
    sampled = std::move(kept);
  }
  const int k = static_cast<int>(sampled.size());
  ctx_.ledger.Participants(sampled);
  FEDML_RETURN_IF_ERROR(
      ctx_.aggregator.Begin(global, {round, ctx_.model_version, fit_.Summands(k)}));
  FEDML_RETURN_IF_ERROR(
      ctx_.pool.SyncModel(round, ctx_.model_version, global, &metrics.bytes_down));
  return fit_.Run(round, sampled, global, metrics);
}

Status PlainFit::Run(std::int64_t round, const std::vector<std::int64_t>& sampled,
                     core::ModelState& global, RoundMetrics& metrics) {
  const int k = static_cast<int>(sampled.size());
  double loss_weighted = 0.0;
  double loss_weight = 0.0;
  const core::Deadline deadline = core::Clock::now() + ctx_.options.round_timeout;
  verification::ServerGate* gate = ctx_.gate;
  if (gate) FEDML_RETURN_IF_ERROR(gate->BeginRound(global));
  std::vector<verification::PendingCheck> pending;  // updates held back for a spot check
  auto accept = [&](algorithms::ClientUpdate&& update, const std::string& sha, double loss) {
    const std::int64_t client = update.client_id;
    const std::int64_t samples = update.num_samples;
    Status st = ctx_.aggregator.Accumulate(std::move(update));
    if (!st.ok()) return st;
    ctx_.RecordOutcome(client, samples, sha, true);
    ++metrics.clients;
    loss_weighted += loss * static_cast<double>(samples);
    loss_weight += static_cast<double>(samples);
    return st;
  };
  // Settles one reply: refused, held for a spot check, or accepted.
  auto settle = [&](int pos, Message&& msg) {
    // What decides the update's fate is read before its payload moves on.
    const bool invalid = msg.type == MessageType::kInvalid;
    const std::string error = invalid ? msg.attrs["error"] : std::string();
    const bool other_client = msg.client_ids != std::vector<std::int64_t>{sampled[pos]};
    const int rank = msg.sender;
    const std::string commitment_blob = std::move(msg.blob);
    algorithms::ClientUpdate update = ServerContext::UpdateFromReply(sampled[pos], std::move(msg));
    const auto secs = update.metrics.find("train_seconds");
    if (secs != update.metrics.end()) metrics.extra["client_train_seconds"] += secs->second;
    const auto loss = update.metrics.find("train_loss");
    const double client_loss = loss == update.metrics.end() ? 0.0 : loss->second;
    // Simulation ground truth for the verification experiment (the attack harness's flag).
    const bool attacker = gate && update.metrics.count("attacker") > 0;
    if (attacker) metrics.extra["attacker_updates"] += 1;
    Status st;
    if (invalid) {
      st = Status::InvalidArgument(error);
    } else if (other_client) {
      st = Status::InvalidArgument("the update names another client");
    } else if (Status claim = ctx_.CheckClaim(sampled[pos], update.num_samples); !claim.ok()) {
      st = claim;
      if (gate) gate->RecordMismatch(sampled[pos], metrics);  // a false claim is a failed check
    } else {
      // Verification compares hashes, so it needs one with or without a ledger.
      std::string sha = ctx_.ledger.Hash(update);
      if (gate && sha.empty()) {
        auto computed = core::security::CheckpointSha256(update.state);
        if (computed.ok()) sha = std::move(computed).value();
      }
      core::security::TrainingCommitment commitment;
      Result<core::security::SpotCheck> spot = core::security::SpotCheck{};
      if (gate) {
        auto known = ctx_.KnownWork(sampled[pos]);
        spot = known.ok() ? gate->Check(round, sampled[pos], commitment_blob, update, sha, *known,
                                        commitment, metrics)
                          : Result<core::security::SpotCheck>(known.status());
      }
      if (!spot.ok()) {
        st = spot.status();
      } else if (spot->check) {
        verification::PendingCheck p;
        p.pos = pos;
        p.rank = rank;
        p.update = std::move(update);
        p.sha256 = sha;
        p.loss = client_loss;
        p.commitment = std::move(commitment);
        p.segment = spot->segment;
        pending.push_back(std::move(p));
      } else {
        st = accept(std::move(update), sha, client_loss);
      }
    }
    if (!st.ok()) {
      ctx_.RecordOutcome(sampled[pos], 0, "", false);
      ctx_.Refuse(round, sampled[pos], "update", st, metrics);
      if (attacker) metrics.extra["attackers_caught"] += 1;
    }
    if (ctx_.on_progress) ctx_.on_progress(round + 1, pos + 1, k);
  };
  WorkerPool::Batch batch;
  batch.round = round;
  batch.model_version = ctx_.model_version;
  batch.n = k;
  ctx_.OverSelect(batch, k, metrics);
  batch.reply_type = MessageType::kClientUpdate;
  batch.deadline = deadline;
  batch.owner = [&](int pos) { return ctx_.pool.placement().OwnerOf(sampled[pos]); };
  batch.make_task = [&](int pos) {
    Message task;
    task.type = MessageType::kTrainTask;
    task.client_ids = {sampled[pos]};
    task.extras = ctx_.aggregator.TaskExtras(sampled[pos]);
    if (ctx_.pool.placement().model_in_task()) task.model = global;
    if (gate) gate->AddTaskAttrs(round, sampled[pos], task.attrs);
    ctx_.TagTask(task);
    return task;
  };
  batch.describe = [&](int pos) { return "client " + std::to_string(sampled[pos]); };
  batch.on_result = settle;
  FEDML_RETURN_IF_ERROR(ctx_.pool.Dispatch(batch, metrics));
  if (!pending.empty()) {
    FEDML_RETURN_IF_ERROR(
        gate->RunSpotChecks(ctx_.pool, round, ctx_.model_version, pending, metrics));
    for (verification::PendingCheck& p : pending) {
      const std::int64_t client = p.update.client_id;
      const bool attacker = p.update.metrics.count("attacker") > 0;
      Status st = p.passed ? accept(std::move(p.update), p.sha256, p.loss)
                           : Status::FailedPrecondition("its spot check did not pass");
      if (!st.ok()) {
        ctx_.RecordOutcome(client, 0, "", false);
        if (p.passed) ctx_.Refuse(round, client, "update", st, metrics);
        if (!p.passed) ++metrics.refused;
        if (attacker) metrics.extra["attackers_caught"] += 1;
      }
    }
  }
  if (gate) {  // every row has the verification figures, zeros included
    gate->ReportExclusions(round);
    for (const char* name : {"attacker_updates", "attackers_caught", "verify_passed",
                             "verify_failed", "verify_seconds"}) {
      metrics.extra[name] += 0;
    }
  }
  metrics.train_loss = loss_weight > 0 ? loss_weighted / loss_weight : 0.0;
  return ctx_.EndTraining(round, ctx_.aggregator.accepted(), global, metrics,
                          deadline - ctx_.options.round_timeout);
}

}  // namespace fedml::api::server
