#include "fedml/api/round_controller.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "fedml/core/random.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/crypto.h"

namespace fedml::api {

using core::Message;
using core::MessageType;

std::vector<std::int64_t> SampleClientsAmong(std::uint64_t seed, std::int64_t round,
                                             const std::vector<std::int64_t>& candidates,
                                             int per_round) {
  const auto n = static_cast<std::int64_t>(candidates.size());
  if (per_round >= n) return candidates;
  core::Rng rng(core::DeriveSeed(
      seed, {0x73616d706c65ULL /* "sample" */, static_cast<std::uint64_t>(round)}));
  std::vector<std::int64_t> out;
  for (std::int64_t pos : rng.SampleWithoutReplacement(n, per_round)) {
    out.push_back(candidates[static_cast<std::size_t>(pos)]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::int64_t> SampleClients(std::uint64_t seed, std::int64_t round, int total,
                                        int per_round) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(std::max(0, total)));
  std::iota(all.begin(), all.end(), 0);
  return SampleClientsAmong(seed, round, all, per_round);
}

RoundController::RoundController(core::Communicator& comm,
                                 std::unique_ptr<algorithms::Aggregator> aggregator,
                                 ServerOptions options, GlobalEvaluator evaluator)
    : comm_(comm),
      aggregator_(std::move(aggregator)),
      options_(std::move(options)),
      evaluator_(std::move(evaluator)),
      worker_alive_(static_cast<std::size_t>(comm.world_size()), true),
      worker_version_(static_cast<std::size_t>(comm.world_size()), -1) {
  if (!worker_alive_.empty()) worker_alive_[0] = false;  // rank 0 is this server
  model_version_ = options_.start_model_version;
  virtual_now_ = options_.start_virtual_seconds;
}

Status RoundController::SendFrame(int dst, const Message& msg, std::uint64_t* bytes) {
  FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(msg, options_.encode));
  if (bytes) *bytes += frame.size();
  return comm_.Send(dst, std::move(frame));
}

void RoundController::FinishWorkers() {
  Message fin;
  fin.type = MessageType::kFinish;
  fin.sender = 0;
  for (int r = 1; r < comm_.world_size(); ++r) {
    // Workers dropped for not answering are told too: they may only be slow, and a worker left
    // waiting would hold up the end of an MPI job.
    fin.receiver = r;
    (void)SendFrame(r, fin, nullptr);  // a worker already gone needs no FINISH
  }
}

Result<core::ModelState> RoundController::Run(core::ModelState initial) {
  core::ModelState global = std::move(initial);
  Status status;
  if (comm_.world_size() < 2) {
    status = Status::InvalidArgument("the server needs at least one worker rank (world size " +
                                     std::to_string(comm_.world_size()) + ")");
  }
  if (status.ok() && !options_.ledger_file.empty()) {
    const auto parent = std::filesystem::path(options_.ledger_file).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    auto ledger = core::security::LedgerWriter::Open(options_.ledger_file);
    if (ledger.ok()) {
      ledger_.emplace(std::move(ledger).value());
    } else {
      status = ledger.status().WithContext("opening ledger_file " + options_.ledger_file);
    }
  }
  if (status.ok() && !options_.start_strategy_state.empty()) {
    status = aggregator_->RestoreState(options_.start_strategy_state)
                 .WithContext("restoring the strategy's state from the checkpoint");
  }
  if (status.ok() && options_.secure.enabled()) {
    if (options_.async.enabled) {
      status =
          Status::InvalidArgument("secure aggregation sums the updates of a round; asynchronous " +
                                  aggregator_->name() + " has no rounds");
    } else if (!aggregator_->is_linear()) {
      status = Status::InvalidArgument(
          "secure aggregation (" + options_.secure.protocol +
          ") reveals only the sum of the "
          "updates, so it needs a linear aggregator (FedAvg, FedProx, FedAvgM, the FedOpt "
          "family); " +
          aggregator_->name() + " is not linear");
    }
  }
  if (status.ok()) status = StartVerification();
  if (status.ok() && options_.async.enabled) {
    status = RunAsync(global);
  }
  for (std::int64_t round = options_.start_round;
       status.ok() && !options_.async.enabled && round < options_.comm_round; ++round) {
    RoundMetrics metrics;
    metrics.round = round + 1;
    if (options_.wait_for_clients) {
      status = options_.wait_for_clients(core::Clock::now() + options_.round_timeout);
      if (!status.ok()) break;
    }
    RefreshConnected();
    const auto t0 = core::Clock::now();
    status = RunRound(round, global, metrics);
    if (status.ok()) status = EvaluateIfDue(round, global, metrics);
    metrics.wall_seconds = std::chrono::duration<double>(core::Clock::now() - t0).count();
    if (status.ok()) status = EndRow(round + 1, global, metrics);
  }
  FinishWorkers();
  if (!status.ok()) return status;
  return global;
}

Status RoundController::EvaluateIfDue(std::int64_t round, const core::ModelState& global,
                                      RoundMetrics& metrics) {
  const bool last = round + 1 == options_.comm_round;
  if (!last && (round + 1) % options_.frequency_of_the_test != 0) return Status::Ok();
  const auto t_eval = core::Clock::now();
  RefreshConnected();
  auto eval = evaluator_ ? evaluator_(global) : EvaluateOnWorkers(round, global, metrics);
  metrics.extra["eval_seconds"] =
      std::chrono::duration<double>(core::Clock::now() - t_eval).count();
  if (!eval.ok() && options_.fixed_clients && !evaluator_) {
    // Deployment: no client to evaluate on (or none answered) is a round without a test
    // figure, not the end of the run.
    std::fprintf(stderr, "warning: round %lld: not evaluated: %s\n",
                 static_cast<long long>(round) + 1, eval.status().message().c_str());
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

Status RoundController::EndRow(std::int64_t rounds_done, const core::ModelState& global,
                               RoundMetrics& metrics) {
  if (options_.system) metrics.extra["virtual_seconds"] = virtual_now_;
  FEDML_RETURN_IF_ERROR(LedgerAppend(rounds_done, metrics));
  if (!options_.checkpoint_dir.empty()) {
    FEDML_RETURN_IF_ERROR(WriteCheckpoint(options_.checkpoint_dir, rounds_done, model_version_,
                                          global, SavedState(), virtual_now_));
  }
  history_.push_back(metrics);
  if (on_round_) on_round_(metrics);
  return Status::Ok();
}

algorithms::ClientUpdate RoundController::UpdateFromReply(std::int64_t client_id, Message&& reply) {
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

std::string RoundController::LedgerHash(const algorithms::ClientUpdate& update) const {
  if (!ledger_) return "";
  auto sha = StateSha256(update.state);
  return sha.ok() ? *sha : "";  // recorded as no hash; the append then refuses the record
}

void RoundController::LedgerOutcome(std::int64_t client, std::int64_t samples,
                                    const std::string& sha256, bool accepted) {
  // With verification the accounts pay for accepted work (their reward_per_sample); without it
  // the reward is the sample count the client claims.
  double reward = static_cast<double>(samples);
  if (accounts_ && accepted) {
    auto paid = accounts_->Reward(client, samples);
    reward = paid.ok() ? *paid : 0.0;
  }
  if (!ledger_) return;
  core::security::LedgerRecord& r = ledger_record_;
  if (std::find(r.participants.begin(), r.participants.end(), client) == r.participants.end()) {
    r.participants.push_back(client);
  }
  if (!accepted) {
    r.excluded.push_back(client);
    return;
  }
  r.updates.push_back({client, sha256, samples});
  r.rewards.push_back({client, reward});
}

Status RoundController::LedgerAppend(std::int64_t round, const RoundMetrics& metrics) {
  if (!ledger_) return Status::Ok();
  core::security::LedgerRecord record = std::move(ledger_record_);
  ledger_record_ = {};
  record.round = round;
  std::sort(record.participants.begin(), record.participants.end());
  if (accounts_) {
    for (std::int64_t client : record.participants) {
      record.stakes.push_back({client, accounts_->Account(client).stake});
    }
  }
  record.note = aggregator_->name() + ", model version " + std::to_string(model_version_) + ", " +
                std::to_string(metrics.clients) + " accepted, " + std::to_string(metrics.dropped) +
                " dropped; rewards: " +
                (accounts_ ? "reward_per_sample x samples of updates whose commitment held and "
                             "whose spot check (if any) passed"
                           : "claimed samples (unverified)");
  return ledger_->Append(std::move(record))
      .WithContext("appending round " + std::to_string(round) + " to the ledger");
}

Result<std::string> StateSha256(const core::ModelState& state) {
  return core::security::CheckpointSha256(state);  // one definition of a model's hash
}

double RoundController::ClientWork(std::int64_t id) const {
  return options_.client_work ? options_.client_work(id) : 1.0;
}

Result<std::vector<std::int64_t>> RoundController::SampleRound(std::int64_t round) {
  const int total = options_.client_num_in_total;
  const int per_round = options_.client_num_per_round;
  // Clients whose accounts are excluded (verification) are not sampled again.
  const bool excludes = accounts_ && !accounts_->Excluded().empty();
  const auto eligible = [&](std::int64_t c) { return !excludes || !accounts_->excluded(c); };
  if (!options_.system || !options_.system->has_offline_periods()) {
    if (!excludes) return SampleClients(options_.random_seed, round, total, per_round);
    std::vector<std::int64_t> candidates;
    for (std::int64_t c = 0; c < total; ++c) {
      if (eligible(c)) candidates.push_back(c);
    }
    if (candidates.empty()) {
      return Status::FailedPrecondition("round " + std::to_string(round + 1) +
                                        ": every client has been excluded by verification");
    }
    return SampleClientsAmong(options_.random_seed, round, candidates, per_round);
  }
  const SystemModel& sys = *options_.system;
  std::vector<std::int64_t> online;
  for (std::int64_t c = 0; c < total; ++c) {
    if (sys.AvailableAt(c, virtual_now_) && eligible(c)) online.push_back(c);
  }
  if (online.empty()) {  // nobody online: the round starts when the first client comes back
    double next = SystemModel::kNever;
    for (std::int64_t c = 0; c < total; ++c) next = std::min(next, sys.NextOnline(c, virtual_now_));
    if (next == SystemModel::kNever) {
      return Status::FailedPrecondition(
          "round " + std::to_string(round + 1) + ": no client is online after virtual time " +
          std::to_string(virtual_now_) + " s (the trace's online windows have all ended)");
    }
    virtual_now_ = next;
    for (std::int64_t c = 0; c < total; ++c) {
      if (sys.AvailableAt(c, virtual_now_) && eligible(c)) online.push_back(c);
    }
  }
  return SampleClientsAmong(options_.random_seed, round, online, per_round);
}

void RoundController::RefreshConnected() {
  if (!options_.fixed_clients) return;
  // Clients come and go: every connected rank is tried again (Send also tells who is gone).
  for (int r = 1; r < comm_.world_size(); ++r) {
    worker_alive_[r] = !options_.is_connected || options_.is_connected(r);
  }
}

int RoundController::alive_workers() const {
  return static_cast<int>(std::count(worker_alive_.begin(), worker_alive_.end(), true));
}

Status RoundController::SyncWorkers(std::int64_t round, const core::ModelState& global,
                                    RoundMetrics& metrics) {
  if (options_.fixed_clients) return Status::Ok();  // the model travels in each task
  std::optional<core::Bytes> frame;                 // encoded once, copied per worker
  for (int r = 1; r < comm_.world_size(); ++r) {
    if (!worker_alive_[r] || worker_version_[r] == model_version_) continue;
    if (!frame) {
      Message sync;
      sync.type = MessageType::kSyncModel;
      sync.sender = 0;
      sync.round = round;
      sync.model_version = model_version_;
      sync.model = global;
      FEDML_ASSIGN_OR_RETURN(frame, core::Encode(sync, options_.encode));
    }
    metrics.bytes_down += frame->size();
    Status st = comm_.Send(r, *frame);
    if (st.ok()) {
      worker_version_[r] = model_version_;
    } else if (st.code() == StatusCode::kUnavailable) {
      worker_alive_[r] = false;
    } else {
      return st;
    }
  }
  if (alive_workers() == 0) return Status::Unavailable("no worker is reachable");
  return Status::Ok();
}

Status RoundController::Dispatch(std::int64_t round, int n, MessageType reply_type,
                                 core::Deadline deadline, const std::function<int(int)>& owner,
                                 const std::function<Message(int)>& make_task,
                                 const std::function<std::string(int)>& describe_task,
                                 const std::function<void(int, Message&&)>& on_result,
                                 RoundMetrics& metrics) {
  std::deque<int> queue;
  for (int i = 0; i < n; ++i) queue.push_back(i);
  std::map<int, int> in_flight;                 // rank -> task
  std::map<int, core::Deadline> task_deadline;  // rank -> when its task is overdue
  std::map<int, Message> ready;                 // finished tasks waiting for an earlier one
  std::set<int> dropped;                        // tasks given up for this round (fixed_clients)
  int next = 0;

  // A task with an owner that cannot run it is dropped: with fixed clients nobody else holds
  // that client's data. Tasks without an owner go back to the queue for another worker.
  auto drop = [&](int task, const std::string& why) {
    dropped.insert(task);
    ++metrics.dropped;
    std::fprintf(stderr, "warning: round %lld: %s dropped from the round: %s\n",
                 static_cast<long long>(round) + 1, describe_task(task).c_str(), why.c_str());
  };
  auto drain = [&] {
    bool drained = false;
    for (;;) {
      if (dropped.count(next)) {
        ++next;
      } else if (!ready.empty() && ready.begin()->first == next) {
        on_result(next, std::move(ready.begin()->second));
        ready.erase(ready.begin());
        ++next;
        drained = true;
      } else {
        return drained;
      }
    }
  };
  // Replies that wait for an earlier task are capped at one per live worker: a worker that
  // finishes while the buffer is full idles until the slow task's reply drains it, so memory
  // stays O(workers x model) however many tasks the round has.
  // The task every buffered reply waits for (position `next`, at the queue's front when it was
  // handed back by a lost worker) is always dispatched, or the round could not finish. With fixed
  // clients every client has one task, so there is nothing to cap.
  auto buffer_full = [&] {
    return !options_.fixed_clients &&
           static_cast<int>(ready.size()) >= std::max(1, alive_workers()) &&
           !(!queue.empty() && queue.front() == next);
  };
  auto dispatch = [&](int rank) -> Status {
    while (worker_alive_[rank] && !buffer_full()) {
      auto pick = std::find_if(queue.begin(), queue.end(), [&](int t) {
        const int o = owner(t);
        return o < 0 || o == rank;
      });
      if (pick == queue.end()) return Status::Ok();
      const int task_index = *pick;
      Message task = make_task(task_index);
      task.sender = 0;
      task.receiver = rank;
      task.round = round;
      task.model_version = model_version_;
      Status st = SendFrame(rank, task, &metrics.bytes_down);
      if (st.ok()) {
        in_flight[rank] = task_index;
        if (options_.worker_timeout.count() > 0) {
          task_deadline[rank] = core::Clock::now() + options_.worker_timeout;
        }
        queue.erase(pick);
        return st;
      }
      if (st.code() != StatusCode::kUnavailable) return st;
      worker_alive_[rank] = false;
    }
    return Status::Ok();
  };
  // Owned tasks whose owner is gone can never run.
  auto drop_orphans = [&] {
    for (auto it = queue.begin(); it != queue.end();) {
      const int o = owner(*it);
      if (o >= 0 && !worker_alive_[o]) {
        drop(*it, "rank " + std::to_string(o) + " is not connected");
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  };
  auto dispatch_idle = [&]() -> Status {
    for (int r = 1; r < comm_.world_size(); ++r) {
      if (worker_alive_[r] && !in_flight.count(r)) FEDML_RETURN_IF_ERROR(dispatch(r));
    }
    drop_orphans();
    return Status::Ok();
  };
  auto lose_worker = [&](int rank, const std::string& why) -> Status {
    worker_alive_[rank] = false;
    auto it = in_flight.find(rank);
    if (it != in_flight.end()) {
      if (owner(it->second) >= 0) {
        drop(it->second, why);
      } else {
        queue.push_front(it->second);  // its task goes to a living worker
      }
      in_flight.erase(it);
    }
    if (alive_workers() == 0 && !options_.fixed_clients) {
      return Status::Unavailable("round " + std::to_string(round + 1) +
                                 ": every worker is gone (last lost: rank " + std::to_string(rank) +
                                 ")");
    }
    return dispatch_idle();
  };

  FEDML_RETURN_IF_ERROR(dispatch_idle());
  drain();
  while (next < n) {
    if (options_.fixed_clients && in_flight.empty() && queue.empty()) break;  // nothing can come
    if (in_flight.empty() && alive_workers() == 0) {
      for (int task : queue) drop(task, "no client is connected");
      queue.clear();
      break;
    }
    // Wake for the earliest overdue task as well as for the round's deadline.
    core::Deadline wake = deadline;
    int overdue_rank = -1;
    for (const auto& [rank, due] : task_deadline) {
      if (in_flight.count(rank) && due < wake) {
        wake = due;
        overdue_rank = rank;
      }
    }
    auto env = comm_.Recv(core::kAnySource, wake);
    if (!env.ok() && env.status().code() == StatusCode::kDeadlineExceeded && overdue_rank >= 0 &&
        wake < deadline) {
      const int task = in_flight[overdue_rank];
      std::fprintf(stderr,
                   "warning: round %lld: rank %d did not answer %s within worker_timeout_s=%.3g; "
                   "handing it to another worker\n",
                   static_cast<long long>(round) + 1, overdue_rank, describe_task(task).c_str(),
                   options_.worker_timeout.count() / 1000.0);
      task_deadline.erase(overdue_rank);
      FEDML_RETURN_IF_ERROR(lose_worker(overdue_rank, "it did not answer within worker_timeout_s"));
      drain();
      continue;
    }
    if (!env.ok()) {
      if (env.status().code() != StatusCode::kDeadlineExceeded) return env.status();
      if (options_.fixed_clients) {  // stragglers lose this round; they are asked again next one
        for (const auto& [rank, task] : in_flight) drop(task, "it missed the round deadline");
        for (int task : queue) drop(task, "it never started");
        in_flight.clear();
        queue.clear();
        drain();
        break;
      }
      std::string missing;
      for (const auto& [rank, task] : in_flight) {
        missing += (missing.empty() ? "" : ", ") + describe_task(task) + " on rank " +
                   std::to_string(rank);
      }
      for (int task : queue) {
        missing += (missing.empty() ? "" : ", ") + describe_task(task) + " (not started)";
      }
      return Status::DeadlineExceeded(
          "round " + std::to_string(round + 1) + ": replies missing after round_timeout_s=" +
          std::to_string(options_.round_timeout.count() / 1000.0) + ": " + missing);
    }
    metrics.bytes_up += env->payload.size();
    const int src = env->source;
    auto decoded = core::Decode(env->payload, options_.decode);
    Message msg;
    if (decoded.ok()) {
      msg = std::move(decoded).value();
      msg.sender = src;  // the transport's word for who sent it, not the frame's
    } else if (in_flight.count(src)) {
      // A malformed reply (truncated, non-finite values, ...) answers the sender's task: the
      // task ends refused, so one bad client costs the round its update, not the deadline.
      msg.type = MessageType::kInvalid;
      msg.round = round;
      msg.attrs["error"] = decoded.status().ToString();
    } else {
      ++metrics.refused;
      std::fprintf(stderr, "warning: refused a frame from rank %d: %s\n", src,
                   decoded.status().ToString().c_str());
      continue;
    }
    if (msg.type == MessageType::kError) {
      const auto it = msg.attrs.find("error");
      const std::string error = it == msg.attrs.end() ? "unknown error" : it->second;
      const auto task = in_flight.find(src);
      if (options_.fixed_clients && msg.attrs.count("refused_update")) {
        // The transport refused this client's update (too large, malformed): its task ends
        // refused and the client stays in the run.
        if (task == in_flight.end()) {
          ++metrics.refused;  // an update nobody asked for
          continue;
        }
        msg.type = MessageType::kInvalid;
        msg.round = round;
      } else if (options_.fixed_clients) {  // one client's failure is not the run's
        FEDML_RETURN_IF_ERROR(lose_worker(src, "it failed: " + error));
        drain();
        continue;
      } else {
        return Status::Aborted(
            "worker rank " + std::to_string(src) + " failed" +
            (task == in_flight.end() ? std::string() : " on " + describe_task(task->second)) +
            ": " + error);
      }
    }
    if (msg.type == MessageType::kHeartbeat) continue;
    if (msg.type == MessageType::kFinish) {  // a worker leaving of its own accord, or lost
      FEDML_RETURN_IF_ERROR(lose_worker(src, "its rank left"));
      drain();
      continue;
    }
    auto it = in_flight.find(src);
    const bool refused_reply = msg.type == MessageType::kInvalid;
    if ((msg.type != reply_type && !refused_reply) || msg.round != round || it == in_flight.end()) {
      ++metrics.refused;  // a late reply for an earlier round, or one nobody asked for
      continue;
    }
    const int task = it->second;
    in_flight.erase(it);
    task_deadline.erase(src);
    ready.emplace(task, std::move(msg));
    FEDML_RETURN_IF_ERROR(dispatch(src));
    if (drain()) FEDML_RETURN_IF_ERROR(dispatch_idle());  // workers idled by a full buffer
  }
  return Status::Ok();
}

Status RoundController::RunRound(std::int64_t round, core::ModelState& global,
                                 RoundMetrics& metrics) {
  FEDML_ASSIGN_OR_RETURN(std::vector<std::int64_t> sampled, SampleRound(round));
  if (options_.system) {
    // The round lasts as long as its slowest client, up to round_timeout_s of virtual time;
    // clients that would miss it, or go offline before they finish, are dropped from the round
    // (and spared the training), as a deployed server would drop them.
    const SystemModel& sys = *options_.system;
    const auto bytes = static_cast<std::uint64_t>(global.numel() * sizeof(float));
    const double deadline_s = std::chrono::duration<double>(options_.round_timeout).count();
    double longest = 0.0;
    std::vector<std::int64_t> kept;
    for (std::int64_t c : sampled) {
      const double d = sys.TaskSeconds(c, ClientWork(c), bytes, bytes);
      const double offline_at = sys.OnlineUntil(c, virtual_now_) - virtual_now_;
      if (d > deadline_s || d > offline_at) {
        ++metrics.dropped;
        longest = std::max(longest, std::min(deadline_s, offline_at));
        continue;
      }
      longest = std::max(longest, d);
      kept.push_back(c);
    }
    virtual_now_ += longest;
    sampled = std::move(kept);
  }
  const int k = static_cast<int>(sampled.size());
  if (ledger_) ledger_record_.participants = sampled;
  // With secure aggregation the aggregator sees one update: the survivors' secure mean.
  FEDML_RETURN_IF_ERROR(
      aggregator_->Begin(global, {round, model_version_, options_.secure.enabled() ? 1 : k}));
  FEDML_RETURN_IF_ERROR(SyncWorkers(round, global, metrics));
  if (options_.secure.enabled()) return RunSecureRound(round, sampled, global, metrics);

  // Updates reach the aggregator in the order of `sampled`, whatever order they arrive in, so
  // the result is the same for any number of workers and on every backend.
  double loss_weighted = 0.0;
  double loss_weight = 0.0;
  const core::Deadline deadline = core::Clock::now() + options_.round_timeout;
  const auto client_rank = [&](int pos) {
    return options_.fixed_clients ? static_cast<int>(sampled[pos]) + 1 : -1;
  };
  const bool verify = options_.verification.enabled;
  if (verify) {
    FEDML_ASSIGN_OR_RETURN(global_sha256_, core::security::CheckpointSha256(global));
  }
  std::vector<PendingCheck> pending;  // updates held back for a spot check
  auto accept = [&](algorithms::ClientUpdate&& update, const std::string& sha, double loss) {
    const std::int64_t client = update.client_id;
    const std::int64_t samples = update.num_samples;
    Status st = aggregator_->Accumulate(std::move(update));
    if (!st.ok()) return st;
    LedgerOutcome(client, samples, sha, true);
    ++metrics.clients;
    loss_weighted += loss * static_cast<double>(samples);
    loss_weight += static_cast<double>(samples);
    return st;
  };
  FEDML_RETURN_IF_ERROR(Dispatch(
      round, k, MessageType::kClientUpdate, deadline, client_rank,
      [&](int pos) {
        Message task;
        task.type = MessageType::kTrainTask;
        task.client_ids = {sampled[pos]};
        task.extras = aggregator_->TaskExtras(sampled[pos]);
        if (options_.fixed_clients) task.model = global;
        if (verify) {
          task.attrs[kVerifyIntervalAttr] =
              std::to_string(options_.verification.checkpoint_interval);
          task.attrs[kVerifySeedAttr] =
              std::to_string(TaskSeed(options_.random_seed, round, sampled[pos]));
        }
        return task;
      },
      [&](int pos) { return "client " + std::to_string(sampled[pos]); },
      [&](int pos, Message&& msg) {
        // What decides the update's fate is read before its payload moves on.
        const bool invalid = msg.type == MessageType::kInvalid;
        const std::string error = invalid ? msg.attrs["error"] : std::string();
        const bool other_client = msg.client_ids != std::vector<std::int64_t>{sampled[pos]};
        const int rank = msg.sender;
        const std::string commitment_blob = std::move(msg.blob);
        algorithms::ClientUpdate update = UpdateFromReply(sampled[pos], std::move(msg));
        const auto secs = update.metrics.find("train_seconds");
        if (secs != update.metrics.end()) metrics.extra["client_train_seconds"] += secs->second;
        const auto loss = update.metrics.find("train_loss");
        const double client_loss = loss == update.metrics.end() ? 0.0 : loss->second;
        // Simulation ground truth for the verification experiment (the attack harness's flag).
        const bool attacker = verify && update.metrics.count("attacker") > 0;
        if (attacker) metrics.extra["attacker_updates"] += 1;
        Status st;
        if (invalid) {
          st = Status::InvalidArgument(error);
        } else if (other_client) {
          st = Status::InvalidArgument("the update names another client");
        } else {
          // Verification compares hashes, so it needs one with or without a ledger.
          std::string sha = LedgerHash(update);
          if (verify && sha.empty()) {
            auto computed = core::security::CheckpointSha256(update.state);
            if (computed.ok()) sha = std::move(computed).value();
          }
          core::security::TrainingCommitment commitment;
          auto spot = verify ? CheckCommitment(round, sampled[pos], commitment_blob, update, sha,
                                               commitment, metrics)
                             : Result<core::security::SpotCheck>(core::security::SpotCheck{});
          if (!spot.ok()) {
            st = spot.status();
          } else if (spot->check) {
            PendingCheck p;
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
          LedgerOutcome(sampled[pos], 0, "", false);
          Refuse(round, sampled[pos], "update", st, metrics);
          if (attacker) metrics.extra["attackers_caught"] += 1;
        }
        if (on_progress_) on_progress_(round + 1, pos + 1, k);
      },
      metrics));
  if (!pending.empty()) {
    FEDML_RETURN_IF_ERROR(RunSpotChecks(round, pending, metrics));
    for (PendingCheck& p : pending) {
      const std::int64_t client = p.update.client_id;
      const bool attacker = p.update.metrics.count("attacker") > 0;
      Status st = p.passed ? accept(std::move(p.update), p.sha256, p.loss)
                           : Status::FailedPrecondition("its spot check did not pass");
      if (!st.ok()) {
        LedgerOutcome(client, 0, "", false);
        if (p.passed) Refuse(round, client, "update", st, metrics);
        if (!p.passed) ++metrics.refused;
        if (attacker) metrics.extra["attackers_caught"] += 1;
      }
    }
  }
  if (verify) {  // every row has the verification figures, zeros included
    ReportExclusions(round);
    for (const char* name : {"attacker_updates", "attackers_caught", "verify_passed",
                             "verify_failed", "verify_seconds"}) {
      metrics.extra[name] += 0;
    }
  }
  metrics.train_loss = loss_weight > 0 ? loss_weighted / loss_weight : 0.0;
  return EndTraining(round, aggregator_->accepted(), global, metrics,
                     deadline - options_.round_timeout);
}

void RoundController::Refuse(std::int64_t round, std::int64_t client, const char* what,
                             const Status& why, RoundMetrics& metrics) const {
  ++metrics.refused;
  std::fprintf(stderr, "warning: round %lld: %s of client %lld refused: %s\n",
               static_cast<long long>(round) + 1, what, static_cast<long long>(client),
               why.ToString().c_str());
}

Status RoundController::EndTraining(std::int64_t round, int accepted, core::ModelState& global,
                                    RoundMetrics& metrics, core::Clock::time_point train_start) {
  const auto t_agg = core::Clock::now();
  if (accepted < std::max(1, options_.min_clients)) {
    // Too few updates: the global model stays as it was (and keeps its version).
    std::fprintf(stderr,
                 "warning: round %lld: %d update(s) accepted, fewer than min_clients=%d; the "
                 "global model is kept\n",
                 static_cast<long long>(round) + 1, accepted, std::max(1, options_.min_clients));
  } else {
    FEDML_ASSIGN_OR_RETURN(global, aggregator_->Finalize());
    ++model_version_;
    for (const auto& [name, value] : aggregator_->RoundFigures()) metrics.extra[name] = value;
  }
  metrics.extra["train_phase_seconds"] = std::chrono::duration<double>(t_agg - train_start).count();
  return Status::Ok();
}

Result<Evaluation> RoundController::EvaluateOnWorkers(std::int64_t round,
                                                      const core::ModelState& global,
                                                      RoundMetrics& metrics) {
  FEDML_RETURN_IF_ERROR(SyncWorkers(round, global, metrics));
  const int shards = alive_workers();
  if (shards == 0) return Status::Unavailable("no worker is connected to evaluate the model");
  double loss_sum = 0.0;
  double correct = 0.0;
  std::int64_t samples = 0;
  FEDML_RETURN_IF_ERROR(Dispatch(
      round, shards, MessageType::kEvalResult, core::Clock::now() + options_.round_timeout,
      [](int) { return -1; },
      [&](int shard) {
        Message task;
        task.type = MessageType::kEvalTask;
        if (options_.fixed_clients) task.model = global;
        task.attrs["shard"] = std::to_string(shard);
        task.attrs["num_shards"] = std::to_string(shards);
        return task;
      },
      [&](int shard) { return "evaluation shard " + std::to_string(shard); },
      [&](int shard, Message&& msg) {
        if (msg.type == MessageType::kInvalid) {
          ++metrics.refused;
          std::fprintf(stderr, "warning: evaluation shard %d refused: %s\n", shard,
                       msg.attrs["error"].c_str());
          return;
        }
        const double n = static_cast<double>(msg.num_samples);
        loss_sum += msg.metrics["test_loss"] * n;
        correct += msg.metrics["test_accuracy"] * n;
        samples += msg.num_samples;
      },
      metrics));
  if (samples <= 0) return Status::FailedPrecondition("the workers hold no test samples");
  return Evaluation{loss_sum / static_cast<double>(samples), correct / static_cast<double>(samples),
                    samples};
}

Result<Checkpoint> ReadCheckpoint(const std::string& dir) {
  const std::string path = dir + "/checkpoint.fedml";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("no checkpoint at " + path);
  core::Bytes frame((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto msg = core::Decode(frame);
  if (!msg.ok() || msg->type != MessageType::kSyncModel) {
    return Status::DataLoss("checkpoint " + path + " is damaged: " +
                            (msg.ok() ? std::string("not a model frame") : msg.status().message()));
  }
  Checkpoint ckpt{msg->round, msg->model_version, std::move(msg->model), std::move(msg->extras)};
  const auto clock = msg->attrs.find("virtual_seconds");
  if (clock != msg->attrs.end()) {
    char* end = nullptr;
    ckpt.virtual_seconds = std::strtod(clock->second.c_str(), &end);
    if (end == clock->second.c_str() || *end != '\0' || !std::isfinite(ckpt.virtual_seconds)) {
      return Status::DataLoss("checkpoint " + path + " is damaged: virtual_seconds is '" +
                              clock->second + "'");
    }
  }
  return ckpt;
}

Status WriteCheckpoint(const std::string& dir, std::int64_t round, std::int64_t model_version,
                       const core::ModelState& global,
                       const std::map<std::string, core::ModelState>& strategy_state,
                       double virtual_seconds) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::NotFound("cannot create checkpoint_dir '" + dir + "': " + ec.message());
  Message ckpt;
  ckpt.type = MessageType::kSyncModel;
  ckpt.round = round;
  ckpt.model_version = model_version;
  ckpt.model = global;
  ckpt.extras = strategy_state;
  if (virtual_seconds != 0.0) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.17g", virtual_seconds);  // reads back exactly
    ckpt.attrs["virtual_seconds"] = text;
  }
  FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(ckpt));
  const std::string path = dir + "/checkpoint.fedml";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(frame.data()),
              static_cast<std::streamsize>(frame.size()));
    out.flush();
    if (!out) return Status::DataLoss("writing checkpoint '" + tmp + "' failed (disk full?)");
  }
  // rename() replaces the old checkpoint atomically: a crash leaves either the old or the new.
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::DataLoss("cannot rename '" + tmp + "' to '" + path + "'");
  }
  return Status::Ok();
}

}  // namespace fedml::api
