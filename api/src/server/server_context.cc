#include "server/server_context.h"

#include <algorithm>
#include <cmath>

#include "fedml/core/log.h"
#include "verification/server_gate.h"

namespace fedml::api::server {

using core::Message;
using core::MessageType;

double ServerContext::ClientWork(std::int64_t id) const {
  return options.client_work ? options.client_work(id) : 1.0;
}

int ServerContext::SelectionSize() const {
  // The product is rounded up: 100 x 1.3 selects 130, never 129 through float error.
  const double wanted = std::ceil(options.client_num_per_round * options.over_selection - 1e-9);
  return static_cast<int>(std::min<double>(wanted, options.client_num_in_total));
}

Result<std::vector<std::int64_t>> ServerContext::SampleRound(std::int64_t round) {
  const int total = options.client_num_in_total;
  const int per_round = SelectionSize();
  // Clients whose accounts are excluded (verification) are not sampled again.
  const bool excludes = gate && gate->any_excluded();
  // Central DP in deployment draws from OpenSSL, not from the seed every client knows.
  const auto draw = [&](const std::vector<std::int64_t>& candidates) {
    return options.secret_sampling ? SampleClientsSecretly(candidates, per_round)
                                   : Result<std::vector<std::int64_t>>(SampleClientsAmong(
                                         options.random_seed, round, candidates, per_round));
  };
  // Deployment: a round selects among the clients connected now (cross-device selection), so a
  // client that is offline is not picked only to be dropped. With all of them connected the
  // candidates are every client and the sample is the one a simulation draws.
  std::vector<bool> offline(static_cast<std::size_t>(total), false);
  bool any_offline = false;
  // With an aggregation tier the ranks are aggregators: which clients they serve is theirs to
  // know, so every client is a candidate (the simulation's sample) and an absent one is dropped.
  if (options.fixed_clients && options.is_connected && options.aggregators == 0) {
    for (std::int64_t c = 0; c < total; ++c) {
      offline[static_cast<std::size_t>(c)] = !options.is_connected(static_cast<int>(c) + 1);
      any_offline = any_offline || offline[static_cast<std::size_t>(c)];
    }
  }
  const auto eligible = [&](std::int64_t c) {
    return (!excludes || !gate->excluded(c)) && !offline[static_cast<std::size_t>(c)];
  };
  if (!options.system || !options.system->has_offline_periods()) {
    if (!excludes && !options.secret_sampling && !any_offline) {
      return SampleClients(options.random_seed, round, total, per_round);
    }
    std::vector<std::int64_t> candidates;
    for (std::int64_t c = 0; c < total; ++c) {
      if (eligible(c)) candidates.push_back(c);
    }
    if (candidates.empty() && any_offline) {
      // Nobody to select now: the round runs empty and keeps the model (min_clients), and the
      // next one waits for clients (wait_for_clients) before selecting again.
      FEDML_LOG_WARNING("round %lld: no connected client to select",
                        static_cast<long long>(round) + 1);
      return std::vector<std::int64_t>();
    }
    if (candidates.empty()) {
      return Status::FailedPrecondition("round " + std::to_string(round + 1) +
                                        ": every client has been excluded by verification");
    }
    return draw(candidates);
  }
  const SystemModel& sys = *options.system;
  std::vector<std::int64_t> online;
  for (std::int64_t c = 0; c < total; ++c) {
    if (sys.AvailableAt(c, virtual_now) && eligible(c)) online.push_back(c);
  }
  if (online.empty()) {  // nobody online: the round starts when the first client comes back
    double next = SystemModel::kNever;
    for (std::int64_t c = 0; c < total; ++c) next = std::min(next, sys.NextOnline(c, virtual_now));
    if (next == SystemModel::kNever) {
      return Status::FailedPrecondition(
          "round " + std::to_string(round + 1) + ": no client is online after virtual time " +
          std::to_string(virtual_now) + " s (the trace's online windows have all ended)");
    }
    virtual_now = next;
    for (std::int64_t c = 0; c < total; ++c) {
      if (sys.AvailableAt(c, virtual_now) && eligible(c)) online.push_back(c);
    }
  }
  return draw(online);
}

algorithms::ClientUpdate ServerContext::UpdateFromReply(std::int64_t client_id, Message&& reply) {
  algorithms::ClientUpdate update;
  update.client_id = client_id;
  update.round = reply.round;
  update.base_version = reply.model_version;
  update.num_samples = reply.num_samples;
  update.state = std::move(reply.model);
  update.metrics = std::move(reply.metrics);
  update.extras = std::move(reply.extras);
  return update;
}

Result<std::optional<ExpectedWork>> KnownWork(const ServerOptions& options, std::int64_t client) {
  if (!options.expected_work) return std::optional<ExpectedWork>();
  auto known = options.expected_work(client);
  if (known.ok()) return std::optional<ExpectedWork>(*known);
  if (known.status().code() == StatusCode::kUnimplemented) return std::optional<ExpectedWork>();
  return known.status();
}

Status CheckClaim(const ServerOptions& options, std::int64_t client, std::int64_t claimed) {
  if (claimed < 1) {
    return Status::InvalidArgument("it claims " + std::to_string(claimed) +
                                   " samples; an update needs at least 1");
  }
  FEDML_ASSIGN_OR_RETURN(std::optional<ExpectedWork> known, KnownWork(options, client));
  if (known && claimed != known->num_samples) {
    return Status::InvalidArgument("it claims " + std::to_string(claimed) +
                                   " samples; the server's copy of its partition has " +
                                   std::to_string(known->num_samples));
  }
  if (!known && options.max_claimed_samples > 0 && claimed > options.max_claimed_samples) {
    return Status::InvalidArgument("it claims " + std::to_string(claimed) +
                                   " samples, above max_claimed_samples " +
                                   std::to_string(options.max_claimed_samples));
  }
  return Status::Ok();
}

Result<std::optional<ExpectedWork>> ServerContext::KnownWork(std::int64_t client) const {
  return server::KnownWork(options, client);
}

Status ServerContext::CheckClaim(std::int64_t client, std::int64_t claimed) const {
  return server::CheckClaim(options, client, claimed);
}

void ServerContext::OverSelect(WorkerPool::Batch& batch, int selected,
                               RoundMetrics& metrics) const {
  if (options.over_selection <= 1.0) return;
  batch.target = options.client_num_per_round;
  metrics.extra["selected"] += selected;
  metrics.extra["over_selected_cut"] += 0;  // every row has the column
}

void ServerContext::TagTask(Message& task) const {
  if (!ledger.head_line().empty()) task.attrs[kLedgerHeadAttr] = ledger.head_line();
}

void ServerContext::RecordOutcome(std::int64_t client, std::int64_t samples,
                                  const std::string& sha256, bool accepted) {
  // With verification the accounts pay for accepted work (their reward_per_sample); without it
  // the reward is the sample count the client claims.
  double reward = static_cast<double>(samples);
  if (gate && accepted) reward = gate->Reward(client, samples);
  ledger.Outcome(client, samples, sha256, accepted, reward);
  if (on_outcome) on_outcome(client, accepted);
}

void ServerContext::Refuse(std::int64_t round, std::int64_t client, const char* what,
                           const Status& why, RoundMetrics& metrics) const {
  ++metrics.refused;
  FEDML_LOG_WARNING("round %lld: %s of client %lld refused: %s", static_cast<long long>(round) + 1,
                    what, static_cast<long long>(client), why.ToString().c_str());
}

Status ServerContext::EndTraining(std::int64_t round, int accepted, core::ModelState& global,
                                  RoundMetrics& metrics, core::Clock::time_point train_start) {
  const auto t_agg = core::Clock::now();
  if (accepted < std::max(1, options.min_clients)) {
    // Too few updates: the global model stays as it was (and keeps its version).
    FEDML_LOG_WARNING(
        "round %lld: %d update(s) accepted, fewer than min_clients=%d; the global model is kept",
        static_cast<long long>(round) + 1, accepted, std::max(1, options.min_clients));
  } else {
    FEDML_ASSIGN_OR_RETURN(global, aggregator.Finalize());
    ++model_version;
    for (const auto& [name, value] : aggregator.RoundFigures()) metrics.extra[name] = value;
  }
  metrics.extra["train_phase_seconds"] = std::chrono::duration<double>(t_agg - train_start).count();
  return Status::Ok();
}

Status ServerContext::EvaluateIfDue(std::int64_t round, const core::ModelState& global,
                                    RoundMetrics& metrics) {
  const bool last = round + 1 == options.comm_round;
  if (!last && (round + 1) % options.frequency_of_the_test != 0) return Status::Ok();
  const auto t_eval = core::Clock::now();
  pool.RefreshConnected();
  auto eval = evaluator ? evaluator(global) : EvaluateOnWorkers(round, global, metrics);
  metrics.extra["eval_seconds"] =
      std::chrono::duration<double>(core::Clock::now() - t_eval).count();
  if (!eval.ok() && pool.placement().survives_failures() && !evaluator) {
    // Deployment: no client to evaluate on (or none answered) is a round without a test
    // figure, not the end of the run.
    FEDML_LOG_WARNING("round %lld: not evaluated: %s", static_cast<long long>(round) + 1,
                      eval.status().message().c_str());
    return Status::Ok();
  }
  if (!eval.ok()) {
    return eval.status().WithContext("evaluating the global model after round " +
                                     std::to_string(round + 1));
  }
  metrics.evaluated = true;
  metrics.test_accuracy = eval->accuracy;
  metrics.test_loss = eval->loss;
  return Status::Ok();
}

Result<Evaluation> ServerContext::EvaluateOnWorkers(std::int64_t round,
                                                    const core::ModelState& global,
                                                    RoundMetrics& metrics) {
  FEDML_RETURN_IF_ERROR(pool.SyncModel(round, model_version, global, &metrics.bytes_down));
  int shards = pool.alive_count();
  if (shards == 0) return Status::Unavailable("no worker is connected to evaluate the model");
  WorkerPool::Batch batch;
  if (pool.placement().survives_failures()) {
    // Deployment: as many shards as a round selects clients, not one per connected client (with
    // thousands connected, sending each the model would dwarf the round), and with
    // over-selection the evaluation closes at client_num_per_round answers too.
    shards = std::min(shards, SelectionSize());
    if (options.over_selection > 1.0) {
      batch.target = std::min(shards, options.client_num_per_round);
      batch.cut_metric = "eval_over_selected_cut";
    }
  }
  double loss_sum = 0.0;
  double correct = 0.0;
  std::int64_t samples = 0;
  batch.round = round;
  batch.model_version = model_version;
  batch.n = shards;
  batch.reply_type = MessageType::kEvalResult;
  batch.deadline = core::Clock::now() + options.round_timeout;
  batch.owner = [](int) { return -1; };
  batch.make_task = [&](int shard) {
    Message task;
    task.type = MessageType::kEvalTask;
    if (pool.placement().model_in_task()) task.model = global;
    task.attrs["shard"] = std::to_string(shard);
    task.attrs["num_shards"] = std::to_string(shards);
    return task;
  };
  batch.describe = [](int shard) { return "evaluation shard " + std::to_string(shard); };
  batch.on_result = [&](int shard, Message&& msg) {
    if (msg.type == MessageType::kInvalid) {
      ++metrics.refused;
      FEDML_LOG_WARNING("evaluation shard %d refused: %s", shard, msg.attrs["error"].c_str());
      return;
    }
    const double n = static_cast<double>(msg.num_samples);
    loss_sum += msg.metrics["test_loss"] * n;
    correct += msg.metrics["test_accuracy"] * n;
    samples += msg.num_samples;
  };
  FEDML_RETURN_IF_ERROR(pool.Dispatch(batch, metrics));
  if (samples <= 0) return Status::FailedPrecondition("the workers hold no test samples");
  return Evaluation{loss_sum / static_cast<double>(samples), correct / static_cast<double>(samples),
                    samples};
}

std::map<std::string, core::ModelState> ServerContext::SavedState() const {
  std::map<std::string, core::ModelState> state = aggregator.SaveState();
  if (gate) state.merge(gate->SaveState());
  return state;
}

Status ServerContext::EndRow(std::int64_t rounds_done, const core::ModelState& global,
                             RoundMetrics& metrics) {
  if (options.system) metrics.extra["virtual_seconds"] = virtual_now;
  std::function<double(std::int64_t)> stake_of;
  if (gate) stake_of = [this](std::int64_t client) { return gate->Stake(client); };
  const std::string note =
      aggregator.name() + ", model version " + std::to_string(model_version) + ", " +
      std::to_string(metrics.clients) + " accepted, " + std::to_string(metrics.dropped) +
      " dropped; rewards: " +
      (gate ? "reward_per_sample x samples of updates whose commitment held and whose spot check "
              "(if any) passed"
            : "claimed samples (unverified)");
  FEDML_RETURN_IF_ERROR(ledger.Append(rounds_done, note, stake_of));
  if (!options.checkpoint_dir.empty()) {
    FEDML_RETURN_IF_ERROR(WriteCheckpoint(options.checkpoint_dir, rounds_done, model_version,
                                          global, SavedState(), virtual_now));
  }
  history.push_back(metrics);
  if (on_round) on_round(metrics);
  return Status::Ok();
}

}  // namespace fedml::api::server
