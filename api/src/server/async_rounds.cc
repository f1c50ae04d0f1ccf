#include "server/async_rounds.h"

#include <algorithm>

#include "fedml/core/log.h"
#include "fedml/core/random.h"

namespace fedml::api::server {

using core::Message;
using core::MessageType;

namespace {

// Tasks a simulation worker holds at once: one training, one waiting, so it never idles while
// the server handles its reply.
constexpr int kWorkerDepth = 2;

}  // namespace

AsyncRounds::AsyncRounds(ServerContext& ctx)
    : ctx_(ctx),
      opt_(ctx.options.async),
      pool_(ctx.pool),
      sys_(ctx.options.system.get()),
      max_concurrency_(
          std::max(1, std::min(opt_.max_concurrency, ctx.options.client_num_in_total))),
      worker_wait_(ctx.options.worker_timeout.count() > 0 ? ctx.options.worker_timeout
                                                          : ctx.options.round_timeout),
      outstanding_(static_cast<std::size_t>(ctx.pool.world_size()), 0),
      versions_(ctx.options.start_round) {}

Status AsyncRounds::BeginVersion() {
  row_ = RoundMetrics{};
  row_.round = versions_ + 1;
  loss_weighted_ = loss_weight_ = 0.0;
  row_t0_ = core::Clock::now();
  return ctx_.aggregator.Begin(*global_, {versions_, ctx_.model_version, opt_.buffer_size});
}

std::optional<std::int64_t> AsyncRounds::PickClient(std::int64_t seq) const {
  std::vector<std::int64_t> candidates;
  for (std::int64_t c = 0; c < ctx_.options.client_num_in_total; ++c) {
    if (busy_clients_.count(c)) continue;
    if (sys_ && !sys_->AvailableAt(c, ctx_.virtual_now)) continue;
    const int owner = pool_.placement().OwnerOf(c);
    if (owner >= 0 && !pool_.alive(owner)) continue;
    candidates.push_back(c);
  }
  if (candidates.empty()) return std::nullopt;
  core::Rng rng(core::DeriveSeed(ctx_.options.random_seed,
                                 {0x6173796e63ULL /* "async" */, static_cast<std::uint64_t>(seq)}));
  return candidates[static_cast<std::size_t>(rng.UniformInt(candidates.size()))];
}

Status AsyncRounds::SendTask(Task& t, int rank) {
  if (!pool_.placement().model_in_task() && pool_.held_version(rank) != t.base_version) {
    // The worker trains from the last model it was sent: send it the task's base version (which
    // may be older than the current one when the task waited for a free worker).
    if (!sync_frame_ || sync_frame_->first != t.base_version) {
      Message sync;
      sync.type = MessageType::kSyncModel;
      sync.sender = 0;
      sync.round = t.seq;
      sync.model_version = t.base_version;
      sync.model = *t.base;
      FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(sync, ctx_.options.encode));
      sync_frame_.emplace(t.base_version, std::move(frame));
    }
    FEDML_RETURN_IF_ERROR(pool_.SendFrame(rank, sync_frame_->second, &row_.bytes_down));
    pool_.set_held_version(rank, t.base_version);
  }
  Message task;
  task.type = MessageType::kTrainTask;
  task.sender = 0;
  task.receiver = rank;
  task.round = t.seq;
  task.model_version = t.base_version;
  task.client_ids = {t.client};
  task.extras = ctx_.aggregator.TaskExtras(t.client);
  ctx_.TagTask(task);
  if (pool_.placement().model_in_task()) task.model = *t.base;
  FEDML_RETURN_IF_ERROR(pool_.Send(rank, task, &row_.bytes_down));
  t.rank = rank;
  if (outstanding_[static_cast<std::size_t>(rank)]++ == 0) {
    rank_deadline_[rank] = core::Clock::now() + worker_wait_;
  }
  return Status::Ok();
}

Status AsyncRounds::Fill() {
  while (static_cast<int>(tasks_.size()) < max_concurrency_) {
    const std::int64_t seq = next_seq_;
    const auto client = PickClient(seq);
    if (!client) return Status::Ok();
    ++next_seq_;
    Task t;
    t.seq = seq;
    t.client = *client;
    t.base_version = ctx_.model_version;
    t.base = current_;
    if (sys_) {
      const double d =
          sys_->TaskSeconds(t.client, ctx_.ClientWork(t.client), model_bytes_, model_bytes_);
      const double offline = sys_->OnlineUntil(t.client, ctx_.virtual_now);
      t.finish = ctx_.virtual_now + d;
      if (offline < t.finish) {
        t.lost = true;
        t.finish = offline;
      }
    }
    busy_clients_.insert(t.client);
    auto [it, inserted] = tasks_.emplace(seq, std::move(t));
    const int owner = pool_.placement().OwnerOf(*client);
    if (owner >= 0) {  // deployment: the client's own rank, at once
      Status st = SendTask(it->second, owner);
      if (!st.ok()) {
        busy_clients_.erase(it->second.client);
        tasks_.erase(it);
        if (st.code() != StatusCode::kUnavailable) return st;  // else marked lost by the pool
        ++row_.dropped;
      }
    }
  }
  return Status::Ok();
}

Status AsyncRounds::FeedWorkers() {
  if (pool_.placement().clients_own_ranks) return Status::Ok();
  for (;;) {
    Task* next = nullptr;
    for (auto& [seq, t] : tasks_) {
      if (t.rank >= 0 || t.lost) continue;
      if (!next || t.finish < next->finish) next = &t;  // ties: lower seq (map order)
    }
    if (!next) return Status::Ok();
    int best = -1;
    for (int r = 1; r < pool_.world_size(); ++r) {
      const int load = outstanding_[static_cast<std::size_t>(r)];
      if (!pool_.alive(r) || load >= kWorkerDepth) continue;
      if (best < 0 || load < outstanding_[static_cast<std::size_t>(best)]) best = r;
    }
    if (best < 0) return Status::Ok();
    Status st = SendTask(*next, best);
    if (st.code() == StatusCode::kUnavailable) {  // marked lost by the pool
      if (pool_.alive_count() == 0) return Status::Unavailable("every worker is gone");
      continue;
    }
    FEDML_RETURN_IF_ERROR(st);
  }
}

Status AsyncRounds::LoseRank(int rank, const std::string& why) {
  pool_.MarkLost(rank);
  outstanding_[static_cast<std::size_t>(rank)] = 0;
  rank_deadline_.erase(rank);
  const bool own_ranks = pool_.placement().clients_own_ranks;
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    Task& t = it->second;
    if (t.rank != rank || t.reply) {
      ++it;
      continue;
    }
    if (own_ranks) {
      FEDML_LOG_WARNING("version %lld: client %lld dropped: %s", version_no(),
                        static_cast<long long>(t.client), why.c_str());
      ++row_.dropped;
      busy_clients_.erase(t.client);
      it = tasks_.erase(it);
    } else {
      t.rank = -1;
      ++it;
    }
  }
  if (!pool_.placement().survives_failures() && pool_.alive_count() == 0) {
    return Status::Unavailable("every worker is gone (last lost: rank " + std::to_string(rank) +
                               ": " + why + ")");
  }
  return Status::Ok();
}

Status AsyncRounds::Apply(Task t) {
  busy_clients_.erase(t.client);
  if (t.lost) {
    ++row_.dropped;  // went offline before it finished
    return Status::Ok();
  }
  Message msg = std::move(*t.reply);
  const std::int64_t staleness = ctx_.model_version - t.base_version;
  Status st;
  if (msg.type == MessageType::kInvalid) {
    st = Status::InvalidArgument(msg.attrs["error"]);
  } else if (msg.client_ids != std::vector<std::int64_t>{t.client}) {
    st = Status::InvalidArgument("the update names another client");
  } else if (staleness > opt_.max_staleness) {
    ++row_.refused;
    row_.extra["refused_stale"] += 1;
    ctx_.RecordOutcome(t.client, 0, "", false);
    return Status::Ok();
  } else {
    algorithms::ClientUpdate update = ServerContext::UpdateFromReply(t.client, std::move(msg));
    update.base_version = t.base_version;  // the server's record of what it sent
    if (staleness > 0) update.base = t.base;
    const auto loss = update.metrics.find("train_loss");
    const double client_loss = loss == update.metrics.end() ? 0.0 : loss->second;
    const double n = static_cast<double>(update.num_samples);
    const auto secs = update.metrics.find("train_seconds");
    if (secs != update.metrics.end()) row_.extra["client_train_seconds"] += secs->second;
    const std::string sha = ctx_.ledger.Hash(update);
    const std::int64_t samples = update.num_samples;
    st = ctx_.CheckClaim(t.client, samples);
    if (st.ok()) st = ctx_.aggregator.Accumulate(std::move(update));
    if (st.ok()) {
      ctx_.RecordOutcome(t.client, samples, sha, true);
      ++row_.clients;
      loss_weighted_ += client_loss * n;
      loss_weight_ += n;
    }
  }
  if (!st.ok()) {
    ++row_.refused;
    ctx_.RecordOutcome(t.client, 0, "", false);
    FEDML_LOG_WARNING("version %lld: update of client %lld refused: %s", version_no(),
                      static_cast<long long>(t.client), st.ToString().c_str());
    return Status::Ok();
  }
  if (ctx_.aggregator.accepted() < opt_.buffer_size) return Status::Ok();
  FEDML_ASSIGN_OR_RETURN(*global_, ctx_.aggregator.Finalize());
  ++ctx_.model_version;
  current_ = std::make_shared<const core::ModelState>(*global_);
  for (const auto& [name, value] : ctx_.aggregator.RoundFigures()) row_.extra[name] = value;
  row_.train_loss = loss_weight_ > 0 ? loss_weighted_ / loss_weight_ : 0.0;
  FEDML_RETURN_IF_ERROR(ctx_.EvaluateIfDue(versions_, *global_, row_));
  row_.wall_seconds = std::chrono::duration<double>(core::Clock::now() - row_t0_).count();
  ++versions_;
  FEDML_RETURN_IF_ERROR(ctx_.EndRow(versions_, *global_, row_));
  if (versions_ < ctx_.options.comm_round) FEDML_RETURN_IF_ERROR(BeginVersion());
  return Status::Ok();
}

Result<bool> AsyncRounds::Receive(core::Deadline wake) {
  auto inbound = pool_.Receive(wake, &row_.bytes_up);
  if (!inbound.ok()) {
    if (inbound.status().code() == StatusCode::kDeadlineExceeded) return false;
    return inbound.status();
  }
  const int src = inbound->source;
  Message msg;
  if (inbound->decoded) {
    msg = std::move(inbound->msg);
  } else {
    msg.type = MessageType::kInvalid;  // answers the sender's oldest task, refused
    msg.attrs["error"] = inbound->decode_error.ToString();
  }
  if (msg.type == MessageType::kFinish) {
    FEDML_RETURN_IF_ERROR(LoseRank(src, "its rank left"));
    return true;
  }
  // The task it answers: by task number, or the sender's oldest open one for a frame that did
  // not decode.
  Task* task = nullptr;
  for (auto& [seq, t] : tasks_) {
    if (t.rank != src || t.reply) continue;
    if (msg.type == MessageType::kInvalid || seq == msg.round) {
      task = &t;
      break;
    }
  }
  if (!task) {
    ++row_.refused;  // nobody asked for it
    return true;
  }
  if (msg.type == MessageType::kError) {
    const std::string error = msg.attrs.count("error") ? msg.attrs["error"] : "unknown error";
    if (pool_.placement().survives_failures() && msg.attrs.count("refused_update")) {
      msg.type = MessageType::kInvalid;  // the transport refused the update; the client stays
    } else if (pool_.placement().survives_failures()) {
      FEDML_RETURN_IF_ERROR(LoseRank(src, "it failed: " + error));
      return true;
    } else {
      return Status::Internal("rank " + std::to_string(src) + " failed on client " +
                              std::to_string(task->client) + ": " + error);
    }
  }
  if (msg.type != MessageType::kClientUpdate && msg.type != MessageType::kInvalid) {
    ++row_.refused;
    return true;
  }
  task->reply = std::move(msg);
  if (--outstanding_[static_cast<std::size_t>(src)] > 0) {
    rank_deadline_[src] = core::Clock::now() + worker_wait_;
  } else {
    rank_deadline_.erase(src);
  }
  return true;
}

Status AsyncRounds::Expire() {
  const auto now = core::Clock::now();
  std::vector<int> late;
  for (const auto& [rank, due] : rank_deadline_) {
    if (due <= now) late.push_back(rank);
  }
  for (int rank : late) {
    if (!pool_.placement().survives_failures() && ctx_.options.worker_timeout.count() == 0) {
      std::string open;
      for (const auto& [seq, t] : tasks_) {
        if (t.rank == rank && !t.reply) open += " " + std::to_string(t.client);
      }
      return Status::DeadlineExceeded("version " + std::to_string(version_no()) + ": rank " +
                                      std::to_string(rank) + " did not answer within " +
                                      "round_timeout_s (clients:" + open + ")");
    }
    FEDML_LOG_WARNING("version %lld: rank %d did not answer in time; %s", version_no(), rank,
                      pool_.placement().clients_own_ranks ? "its task is dropped"
                                                          : "its tasks go to another worker");
    FEDML_RETURN_IF_ERROR(LoseRank(rank, "it did not answer in time"));
  }
  return Status::Ok();
}

core::Deadline AsyncRounds::NextWake(core::Deadline latest) const {
  for (const auto& [rank, due] : rank_deadline_) latest = std::min(latest, due);
  return latest;
}

Status AsyncRounds::WaitForAClient() {
  if (sys_) {  // nobody is online: the clock jumps to the first to come back
    double next = SystemModel::kNever;
    for (std::int64_t c = 0; c < ctx_.options.client_num_in_total; ++c) {
      next = std::min(next, sys_->NextOnline(c, ctx_.virtual_now));
    }
    if (next == SystemModel::kNever || next <= ctx_.virtual_now) {
      return Status::FailedPrecondition(
          "version " + std::to_string(version_no()) + ": no client is online after virtual " +
          "time " + std::to_string(ctx_.virtual_now) + " s (the trace's online windows ended)");
    }
    ctx_.virtual_now = next;
    return Status::Ok();
  }
  if (ctx_.options.wait_for_clients) {
    return ctx_.options.wait_for_clients(core::Clock::now() + ctx_.options.round_timeout);
  }
  return Status::Unavailable("no client is connected to train");
}

Status AsyncRounds::StepSimulated() {
  // The next event in virtual time; its reply is awaited, later ones are kept.
  auto head = tasks_.begin();
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->second.finish < head->second.finish) head = it;
  }
  if (static_cast<int>(tasks_.size()) < max_concurrency_ && sys_->has_offline_periods()) {
    // A free slot and an offline client that comes back before the next finish: that is the
    // next event (the client starts then).
    double back = SystemModel::kNever;
    for (std::int64_t c = 0; c < ctx_.options.client_num_in_total; ++c) {
      if (!busy_clients_.count(c)) back = std::min(back, sys_->NextOnline(c, ctx_.virtual_now));
    }
    if (back > ctx_.virtual_now && back < head->second.finish) {
      ctx_.virtual_now = back;
      return Status::Ok();
    }
  }
  while (!head->second.lost && !head->second.reply) {
    FEDML_ASSIGN_OR_RETURN(bool got, Receive(NextWake(core::Clock::now() + worker_wait_)));
    if (!got) FEDML_RETURN_IF_ERROR(Expire());
    FEDML_RETURN_IF_ERROR(FeedWorkers());
  }
  ctx_.virtual_now = std::max(ctx_.virtual_now, head->second.finish);
  Task done = std::move(head->second);
  tasks_.erase(head);
  return Apply(std::move(done));
}

Status AsyncRounds::StepDeployed() {
  // Whatever arrives first. Wake at least every second to hand newly connected clients a task.
  FEDML_ASSIGN_OR_RETURN(bool got, Receive(NextWake(core::Clock::now() + std::chrono::seconds(1))));
  if (!got) return Expire();
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (!it->second.reply) {
      ++it;
      continue;
    }
    Task done = std::move(it->second);
    it = tasks_.erase(it);
    FEDML_RETURN_IF_ERROR(Apply(std::move(done)));
    if (versions_ >= ctx_.options.comm_round) break;
    it = tasks_.begin();  // Apply may have changed the set
  }
  return Status::Ok();
}

// Tasks still out answer first (simulation: at most kWorkerDepth per worker): their replies are
// received and discarded, so that every client is idle when FINISH comes, as after a synchronous
// round (a worker left blocked in a send could hold up the end of an MPI job, and a gRPC client
// still training could miss FINISH). Ranks that miss their deadline are given up.
void AsyncRounds::DrainOpenTasks() {
  auto sent_open = [&] {
    return std::any_of(tasks_.begin(), tasks_.end(), [&](const auto& kv) {
      return kv.second.rank >= 0 && !kv.second.reply && pool_.alive(kv.second.rank);
    });
  };
  while (sent_open()) {
    auto got = Receive(NextWake(core::Clock::now() + worker_wait_));
    if (!got.ok()) break;  // the run's result stands; the workers are told FINISH all the same
    if (*got) continue;
    for (auto it = rank_deadline_.begin(); it != rank_deadline_.end();) {
      if (it->second > core::Clock::now()) {
        ++it;
        continue;
      }
      pool_.MarkLost(it->first);
      it = rank_deadline_.erase(it);
    }
  }
}

Status AsyncRounds::Run(core::ModelState& global) {
  if (!ctx_.evaluator) {
    return Status::FailedPrecondition(
        "asynchronous aggregation evaluates on the server: the controller needs a "
        "GlobalEvaluator");
  }
  global_ = &global;
  model_bytes_ = static_cast<std::uint64_t>(global.numel() * sizeof(float));
  current_ = std::make_shared<const core::ModelState>(global);
  FEDML_RETURN_IF_ERROR(BeginVersion());
  while (versions_ < ctx_.options.comm_round) {
    if (pool_.placement().clients_own_ranks) {
      pool_.RefreshConnected();
      std::set<int> gone;
      for (const auto& [seq, t] : tasks_) {
        if (!t.reply && !pool_.alive(t.rank)) gone.insert(t.rank);
      }
      for (int rank : gone) FEDML_RETURN_IF_ERROR(LoseRank(rank, "it disconnected"));
    }
    FEDML_RETURN_IF_ERROR(Fill());
    if (tasks_.empty()) {
      FEDML_RETURN_IF_ERROR(WaitForAClient());
      continue;
    }
    FEDML_RETURN_IF_ERROR(FeedWorkers());
    FEDML_RETURN_IF_ERROR(sys_ ? StepSimulated() : StepDeployed());
  }
  DrainOpenTasks();
  return Status::Ok();
}

}  // namespace fedml::api::server
