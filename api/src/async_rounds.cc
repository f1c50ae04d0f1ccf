// Asynchronous aggregation (FedAsync, FedBuff) on the round controller: clients train from
// whatever model version is current when they start, and every buffer_size accepted updates make
// one new version.
//
// Simulation (a system model): each task's virtual finish time is known when it starts (the
// client's download, compute and upload time), so updates are applied in (finish time, task
// number) order whatever order the workers return them in, and the run is a function of the
// config and the seed on every backend and for any number of workers. Workers train tasks in
// finish-time order, at most kWorkerDepth outstanding each, so the one the server waits for next
// is never stuck behind later ones for long, and the tasks still open at the end cost little.
//
// Deployment (fixed clients, no system model): a connected client that is free gets a task with
// the current model at once and its update is applied when it arrives.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "fedml/api/round_controller.h"
#include "fedml/core/random.h"

namespace fedml::api {

using core::Message;
using core::MessageType;

namespace {

// Tasks a simulation worker holds at once: one training, one waiting, so it never idles while
// the server handles its reply.
constexpr int kWorkerDepth = 2;

struct AsyncTask {
  std::int64_t seq = 0;  // task number: the seed's "round", and the order of equal finish times
  std::int64_t client = 0;
  std::int64_t base_version = 0;
  std::shared_ptr<const core::ModelState> base;
  double finish = 0.0;  // virtual time it ends (simulation)
  bool lost = false;    // the client goes offline first: never trained, its slot frees at finish
  int rank = -1;        // where it was sent, -1 = not yet
  std::optional<Message> reply;
};

}  // namespace

Status RoundController::RunAsync(core::ModelState& global) {
  if (!evaluator_) {
    return Status::FailedPrecondition(
        "asynchronous aggregation evaluates on the server: the controller needs a "
        "GlobalEvaluator");
  }
  const ServerOptions::Async& opt = options_.async;
  const bool simulated = options_.system != nullptr;
  const SystemModel* sys = options_.system.get();
  const auto model_bytes = static_cast<std::uint64_t>(global.numel() * sizeof(float));
  const int max_concurrency =
      std::max(1, std::min(opt.max_concurrency, options_.client_num_in_total));
  const auto worker_wait =
      options_.worker_timeout.count() > 0 ? options_.worker_timeout : options_.round_timeout;

  std::map<std::int64_t, AsyncTask> tasks;  // in flight, by seq
  std::set<std::int64_t> busy_clients;
  std::vector<int> outstanding(static_cast<std::size_t>(comm_.world_size()),
                               0);              // sent, unanswered
  std::map<int, core::Deadline> rank_deadline;  // a rank with work must answer by then
  std::int64_t next_seq = 0;
  std::int64_t versions = options_.start_round;  // versions made (what comm_round counts)
  auto current = std::make_shared<const core::ModelState>(global);
  std::optional<std::pair<std::int64_t, core::Bytes>> sync_frame;  // a version, encoded once

  RoundMetrics row;
  double loss_weighted = 0.0;
  double loss_weight = 0.0;
  auto row_t0 = core::Clock::now();
  auto begin_version = [&]() -> Status {
    row = RoundMetrics{};
    row.round = versions + 1;
    loss_weighted = loss_weight = 0.0;
    row_t0 = core::Clock::now();
    return aggregator_->Begin(global, {versions, model_version_, opt.buffer_size});
  };
  FEDML_RETURN_IF_ERROR(begin_version());

  auto round_no = [&] { return static_cast<long long>(versions) + 1; };

  // Picks a free client (online, not training) for task `seq`, uniformly with the seed.
  auto pick_client = [&](std::int64_t seq) -> std::optional<std::int64_t> {
    std::vector<std::int64_t> candidates;
    for (std::int64_t c = 0; c < options_.client_num_in_total; ++c) {
      if (busy_clients.count(c)) continue;
      if (simulated && !sys->AvailableAt(c, virtual_now_)) continue;
      if (options_.fixed_clients && !worker_alive_[static_cast<std::size_t>(c + 1)]) continue;
      candidates.push_back(c);
    }
    if (candidates.empty()) return std::nullopt;
    core::Rng rng(core::DeriveSeed(
        options_.random_seed, {0x6173796e63ULL /* "async" */, static_cast<std::uint64_t>(seq)}));
    return candidates[static_cast<std::size_t>(rng.UniformInt(candidates.size()))];
  };

  auto send_task = [&](AsyncTask& t, int rank) -> Status {
    if (!options_.fixed_clients &&
        worker_version_[static_cast<std::size_t>(rank)] != t.base_version) {
      // The worker trains from the last model it was sent: send it the task's base version
      // (which may be older than the current one when the task waited for a free worker).
      if (!sync_frame || sync_frame->first != t.base_version) {
        Message sync;
        sync.type = MessageType::kSyncModel;
        sync.sender = 0;
        sync.round = t.seq;
        sync.model_version = t.base_version;
        sync.model = *t.base;
        FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(sync, options_.encode));
        sync_frame.emplace(t.base_version, std::move(frame));
      }
      row.bytes_down += sync_frame->second.size();
      FEDML_RETURN_IF_ERROR(comm_.Send(rank, sync_frame->second));
      worker_version_[static_cast<std::size_t>(rank)] = t.base_version;
    }
    Message task;
    task.type = MessageType::kTrainTask;
    task.sender = 0;
    task.receiver = rank;
    task.round = t.seq;
    task.model_version = t.base_version;
    task.client_ids = {t.client};
    task.extras = aggregator_->TaskExtras(t.client);
    if (options_.fixed_clients) task.model = *t.base;
    FEDML_RETURN_IF_ERROR(SendFrame(rank, task, &row.bytes_down));
    t.rank = rank;
    if (outstanding[static_cast<std::size_t>(rank)]++ == 0) {
      rank_deadline[rank] = core::Clock::now() + worker_wait;
    }
    return Status::Ok();
  };

  // Starts tasks until max_concurrency are in flight or no client is free.
  auto fill = [&]() -> Status {
    while (static_cast<int>(tasks.size()) < max_concurrency) {
      const std::int64_t seq = next_seq;
      const auto client = pick_client(seq);
      if (!client) return Status::Ok();
      ++next_seq;
      AsyncTask t;
      t.seq = seq;
      t.client = *client;
      t.base_version = model_version_;
      t.base = current;
      if (simulated) {
        const double d = sys->TaskSeconds(t.client, ClientWork(t.client), model_bytes, model_bytes);
        const double offline = sys->OnlineUntil(t.client, virtual_now_);
        t.finish = virtual_now_ + d;
        if (offline < t.finish) {
          t.lost = true;
          t.finish = offline;
        }
      }
      busy_clients.insert(t.client);
      auto [it, inserted] = tasks.emplace(seq, std::move(t));
      if (options_.fixed_clients) {
        Status st = send_task(it->second, static_cast<int>(it->second.client) + 1);
        if (!st.ok()) {
          busy_clients.erase(it->second.client);
          tasks.erase(it);
          if (st.code() != StatusCode::kUnavailable) return st;
          worker_alive_[static_cast<std::size_t>(*client + 1)] = false;
          ++row.dropped;
        }
      }
    }
    return Status::Ok();
  };

  // Simulation: hands unsent tasks to workers with room, earliest finish first.
  auto feed_workers = [&]() -> Status {
    if (options_.fixed_clients) return Status::Ok();
    for (;;) {
      AsyncTask* next = nullptr;
      for (auto& [seq, t] : tasks) {
        if (t.rank >= 0 || t.lost) continue;
        if (!next || t.finish < next->finish) next = &t;  // ties: lower seq (map order)
      }
      if (!next) return Status::Ok();
      int best = -1;
      for (int r = 1; r < comm_.world_size(); ++r) {
        if (!worker_alive_[static_cast<std::size_t>(r)] ||
            outstanding[static_cast<std::size_t>(r)] >= kWorkerDepth) {
          continue;
        }
        if (best < 0 || outstanding[static_cast<std::size_t>(r)] <
                            outstanding[static_cast<std::size_t>(best)]) {
          best = r;
        }
      }
      if (best < 0) return Status::Ok();
      Status st = send_task(*next, best);
      if (st.code() == StatusCode::kUnavailable) {
        worker_alive_[static_cast<std::size_t>(best)] = false;
        if (alive_workers() == 0) return Status::Unavailable("every worker is gone");
        continue;
      }
      FEDML_RETURN_IF_ERROR(st);
    }
  };

  // A rank that is gone: simulation hands its tasks to the others (the result does not depend
  // on who trains), deployment drops its client's task.
  auto lose_rank = [&](int rank, const std::string& why) -> Status {
    worker_alive_[static_cast<std::size_t>(rank)] = false;
    outstanding[static_cast<std::size_t>(rank)] = 0;
    rank_deadline.erase(rank);
    for (auto it = tasks.begin(); it != tasks.end();) {
      AsyncTask& t = it->second;
      if (t.rank != rank || t.reply) {
        ++it;
        continue;
      }
      if (options_.fixed_clients) {
        std::fprintf(stderr, "warning: version %lld: client %lld dropped: %s\n", round_no(),
                     static_cast<long long>(t.client), why.c_str());
        ++row.dropped;
        busy_clients.erase(t.client);
        it = tasks.erase(it);
      } else {
        t.rank = -1;
        ++it;
      }
    }
    if (!options_.fixed_clients && alive_workers() == 0) {
      return Status::Unavailable("every worker is gone (last lost: rank " + std::to_string(rank) +
                                 ": " + why + ")");
    }
    return Status::Ok();
  };

  // Applies one finished task; makes a new version when the buffer is full.
  auto apply = [&](AsyncTask t) -> Status {
    busy_clients.erase(t.client);
    if (t.lost) {
      ++row.dropped;  // went offline before it finished
      return Status::Ok();
    }
    Message msg = std::move(*t.reply);
    const std::int64_t staleness = model_version_ - t.base_version;
    Status st;
    if (msg.type == MessageType::kInvalid) {
      st = Status::InvalidArgument(msg.attrs["error"]);
    } else if (msg.client_ids != std::vector<std::int64_t>{t.client}) {
      st = Status::InvalidArgument("the update names another client");
    } else if (staleness > opt.max_staleness) {
      ++row.refused;
      row.extra["refused_stale"] += 1;
      LedgerOutcome(t.client, 0, "", false);
      return Status::Ok();
    } else {
      algorithms::ClientUpdate update = UpdateFromReply(t.client, std::move(msg));
      update.base_version = t.base_version;  // the server's record of what it sent
      if (staleness > 0) update.base = t.base;
      const auto loss = update.metrics.find("train_loss");
      const double client_loss = loss == update.metrics.end() ? 0.0 : loss->second;
      const double n = static_cast<double>(update.num_samples);
      const auto secs = update.metrics.find("train_seconds");
      if (secs != update.metrics.end()) row.extra["client_train_seconds"] += secs->second;
      const std::string sha = LedgerHash(update);
      const std::int64_t samples = update.num_samples;
      st = aggregator_->Accumulate(std::move(update));
      if (st.ok()) {
        LedgerOutcome(t.client, samples, sha, true);
        ++row.clients;
        loss_weighted += client_loss * n;
        loss_weight += n;
      }
    }
    if (!st.ok()) {
      ++row.refused;
      LedgerOutcome(t.client, 0, "", false);
      std::fprintf(stderr, "warning: version %lld: update of client %lld refused: %s\n", round_no(),
                   static_cast<long long>(t.client), st.ToString().c_str());
      return Status::Ok();
    }
    if (aggregator_->accepted() < opt.buffer_size) return Status::Ok();
    FEDML_ASSIGN_OR_RETURN(global, aggregator_->Finalize());
    ++model_version_;
    current = std::make_shared<const core::ModelState>(global);
    for (const auto& [name, value] : aggregator_->RoundFigures()) row.extra[name] = value;
    row.train_loss = loss_weight > 0 ? loss_weighted / loss_weight : 0.0;
    FEDML_RETURN_IF_ERROR(EvaluateIfDue(versions, global, row));
    row.wall_seconds = std::chrono::duration<double>(core::Clock::now() - row_t0).count();
    ++versions;
    FEDML_RETURN_IF_ERROR(EndRow(versions, global, row));
    if (versions < options_.comm_round) FEDML_RETURN_IF_ERROR(begin_version());
    return Status::Ok();
  };

  // Receives one frame (until `wake`) and files it with its task. False when none came.
  auto receive = [&](core::Deadline wake) -> Result<bool> {
    auto env = comm_.Recv(core::kAnySource, wake);
    if (!env.ok()) {
      if (env.status().code() == StatusCode::kDeadlineExceeded) return false;
      return env.status();
    }
    row.bytes_up += env->payload.size();
    const int src = env->source;
    auto decoded = core::Decode(env->payload, options_.decode);
    Message msg;
    if (decoded.ok()) {
      msg = std::move(decoded).value();
    } else {
      msg.type = MessageType::kInvalid;  // answers the sender's oldest task, refused
      msg.attrs["error"] = decoded.status().ToString();
    }
    if (msg.type == MessageType::kHeartbeat) return true;
    if (msg.type == MessageType::kFinish) {
      FEDML_RETURN_IF_ERROR(lose_rank(src, "its rank left"));
      return true;
    }
    // The task it answers: by task number, or the sender's oldest open one for a frame that
    // did not decode.
    AsyncTask* task = nullptr;
    for (auto& [seq, t] : tasks) {
      if (t.rank != src || t.reply) continue;
      if (msg.type == MessageType::kInvalid || seq == msg.round) {
        task = &t;
        break;
      }
    }
    if (!task) {
      ++row.refused;  // nobody asked for it
      return true;
    }
    if (msg.type == MessageType::kError) {
      const std::string error = msg.attrs.count("error") ? msg.attrs["error"] : "unknown error";
      if (options_.fixed_clients && msg.attrs.count("refused_update")) {
        msg.type = MessageType::kInvalid;  // the transport refused the update; the client stays
      } else if (options_.fixed_clients) {
        FEDML_RETURN_IF_ERROR(lose_rank(src, "it failed: " + error));
        return true;
      } else {
        return Status::Internal("rank " + std::to_string(src) + " failed on client " +
                                std::to_string(task->client) + ": " + error);
      }
    }
    if (msg.type != MessageType::kClientUpdate && msg.type != MessageType::kInvalid) {
      ++row.refused;
      return true;
    }
    task->reply = std::move(msg);
    if (--outstanding[static_cast<std::size_t>(src)] > 0) {
      rank_deadline[src] = core::Clock::now() + worker_wait;
    } else {
      rank_deadline.erase(src);
    }
    return true;
  };

  // Gives up on ranks that did not answer in time.
  auto expire = [&]() -> Status {
    const auto now = core::Clock::now();
    std::vector<int> late;
    for (const auto& [rank, due] : rank_deadline) {
      if (due <= now) late.push_back(rank);
    }
    for (int rank : late) {
      if (!options_.fixed_clients && options_.worker_timeout.count() == 0) {
        std::string open;
        for (const auto& [seq, t] : tasks) {
          if (t.rank == rank && !t.reply) open += " " + std::to_string(t.client);
        }
        return Status::DeadlineExceeded("version " + std::to_string(round_no()) + ": rank " +
                                        std::to_string(rank) + " did not answer within " +
                                        "round_timeout_s (clients:" + open + ")");
      }
      std::fprintf(
          stderr, "warning: version %lld: rank %d did not answer in time; %s\n", round_no(), rank,
          options_.fixed_clients ? "its task is dropped" : "its tasks go to another worker");
      FEDML_RETURN_IF_ERROR(lose_rank(rank, "it did not answer in time"));
    }
    return Status::Ok();
  };

  while (versions < options_.comm_round) {
    if (options_.fixed_clients) {
      RefreshConnected();
      std::set<int> gone;
      for (const auto& [seq, t] : tasks) {
        if (!t.reply && !worker_alive_[static_cast<std::size_t>(t.rank)]) gone.insert(t.rank);
      }
      for (int rank : gone) FEDML_RETURN_IF_ERROR(lose_rank(rank, "it disconnected"));
    }
    FEDML_RETURN_IF_ERROR(fill());
    if (tasks.empty()) {
      if (simulated) {  // nobody is online: the clock jumps to the first to come back
        double next = SystemModel::kNever;
        for (std::int64_t c = 0; c < options_.client_num_in_total; ++c) {
          next = std::min(next, sys->NextOnline(c, virtual_now_));
        }
        if (next == SystemModel::kNever || next <= virtual_now_) {
          return Status::FailedPrecondition(
              "version " + std::to_string(round_no()) + ": no client is online after virtual " +
              "time " + std::to_string(virtual_now_) + " s (the trace's online windows ended)");
        }
        virtual_now_ = next;
        continue;
      }
      if (options_.wait_for_clients) {
        FEDML_RETURN_IF_ERROR(
            options_.wait_for_clients(core::Clock::now() + options_.round_timeout));
        continue;
      }
      return Status::Unavailable("no client is connected to train");
    }
    FEDML_RETURN_IF_ERROR(feed_workers());

    if (simulated) {
      // The next event in virtual time; its reply is awaited, later ones are kept.
      auto head = tasks.begin();
      for (auto it = tasks.begin(); it != tasks.end(); ++it) {
        if (it->second.finish < head->second.finish) head = it;
      }
      if (static_cast<int>(tasks.size()) < max_concurrency && sys->has_offline_periods()) {
        // A free slot and an offline client that comes back before the next finish: that is
        // the next event (the client starts then).
        double back = SystemModel::kNever;
        for (std::int64_t c = 0; c < options_.client_num_in_total; ++c) {
          if (!busy_clients.count(c)) back = std::min(back, sys->NextOnline(c, virtual_now_));
        }
        if (back > virtual_now_ && back < head->second.finish) {
          virtual_now_ = back;
          continue;
        }
      }
      while (!head->second.lost && !head->second.reply) {
        core::Deadline wake = core::Clock::now() + worker_wait;
        for (const auto& [rank, due] : rank_deadline) wake = std::min(wake, due);
        FEDML_ASSIGN_OR_RETURN(bool got, receive(wake));
        if (!got) FEDML_RETURN_IF_ERROR(expire());
        FEDML_RETURN_IF_ERROR(feed_workers());
      }
      virtual_now_ = std::max(virtual_now_, head->second.finish);
      AsyncTask done = std::move(head->second);
      tasks.erase(head);
      FEDML_RETURN_IF_ERROR(apply(std::move(done)));
      continue;
    }

    // Deployment: whatever arrives first. Wake at least every second to hand newly connected
    // clients a task.
    core::Deadline wake = core::Clock::now() + std::chrono::seconds(1);
    for (const auto& [rank, due] : rank_deadline) wake = std::min(wake, due);
    FEDML_ASSIGN_OR_RETURN(bool got, receive(wake));
    if (!got) {
      FEDML_RETURN_IF_ERROR(expire());
      continue;
    }
    for (auto it = tasks.begin(); it != tasks.end();) {
      if (!it->second.reply) {
        ++it;
        continue;
      }
      AsyncTask done = std::move(it->second);
      it = tasks.erase(it);
      FEDML_RETURN_IF_ERROR(apply(std::move(done)));
      if (versions >= options_.comm_round) break;
      it = tasks.begin();  // apply may have changed the set
    }
  }
  // Tasks still out answer first (simulation: at most kWorkerDepth per worker): their replies
  // are received and discarded, so that every client is idle when FINISH comes, as after a
  // synchronous round (a worker left blocked in a send could hold up the end of an MPI job, and
  // a gRPC client still training could miss FINISH). Ranks that miss their deadline are given up.
  auto sent_open = [&] {
    return std::any_of(tasks.begin(), tasks.end(), [&](const auto& kv) {
      return kv.second.rank >= 0 && !kv.second.reply &&
             worker_alive_[static_cast<std::size_t>(kv.second.rank)];
    });
  };
  while (sent_open()) {
    core::Deadline wake = core::Clock::now() + worker_wait;
    for (const auto& [rank, due] : rank_deadline) wake = std::min(wake, due);
    auto got = receive(wake);
    if (!got.ok()) break;  // the run's result stands; the workers are told FINISH all the same
    if (!*got) {
      for (auto it = rank_deadline.begin(); it != rank_deadline.end();) {
        if (it->second > core::Clock::now()) {
          ++it;
          continue;
        }
        worker_alive_[static_cast<std::size_t>(it->first)] = false;
        it = rank_deadline.erase(it);
      }
    }
  }
  return Status::Ok();
}

}  // namespace fedml::api
