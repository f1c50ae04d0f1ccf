#include "server/worker_pool.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "fedml/core/log.h"

namespace fedml::api::server {

using core::Message;
using core::MessageType;

WorkerPool::WorkerPool(core::Communicator& comm, WorkerPoolOptions options)
    : comm_(comm),
      options_(std::move(options)),
      alive_(static_cast<std::size_t>(comm.world_size()), true),
      version_(static_cast<std::size_t>(comm.world_size()), -1) {
  if (!alive_.empty()) alive_[0] = false;  // rank 0 is this server
}

int WorkerPool::alive_count() const {
  return static_cast<int>(std::count(alive_.begin(), alive_.end(), true));
}

void WorkerPool::RefreshConnected() {
  if (!options_.placement.clients_own_ranks) return;
  // Clients come and go: every connected rank is tried again (Send also tells who is gone).
  for (int r = 1; r < comm_.world_size(); ++r) {
    alive_[static_cast<std::size_t>(r)] = !options_.is_connected || options_.is_connected(r);
  }
}

Status WorkerPool::Deliver(int rank, core::Bytes frame, std::uint64_t* bytes) {
  if (bytes) *bytes += frame.size();
  Status st = comm_.Send(rank, std::move(frame));
  if (st.code() == StatusCode::kUnavailable) MarkLost(rank);
  return st;
}

Status WorkerPool::SendFrame(int rank, const core::Bytes& frame, std::uint64_t* bytes) {
  return Deliver(rank, frame, bytes);  // a copy: the frame goes to other ranks too
}

Status WorkerPool::Send(int rank, const Message& msg, std::uint64_t* bytes) {
  FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(msg, options_.encode));
  return Deliver(rank, std::move(frame), bytes);
}

Status WorkerPool::SyncModel(std::int64_t round, std::int64_t version,
                             const core::ModelState& global, std::uint64_t* bytes) {
  if (options_.placement.model_in_task()) return Status::Ok();
  std::optional<core::Bytes> frame;  // encoded once, copied per worker
  for (int r = 1; r < comm_.world_size(); ++r) {
    if (!alive(r) || held_version(r) == version) continue;
    if (!frame) {
      Message sync;
      sync.type = MessageType::kSyncModel;
      sync.sender = 0;
      sync.round = round;
      sync.model_version = version;
      sync.model = global;
      FEDML_ASSIGN_OR_RETURN(frame, core::Encode(sync, options_.encode));
    }
    Status st = SendFrame(r, *frame, bytes);
    if (st.ok()) {
      set_held_version(r, version);
    } else if (st.code() != StatusCode::kUnavailable) {
      return st;
    }
  }
  if (alive_count() == 0) return Status::Unavailable("no worker is reachable");
  return Status::Ok();
}

void WorkerPool::Finish() {
  Message fin;
  fin.type = MessageType::kFinish;
  fin.sender = 0;
  for (int r = 1; r < comm_.world_size(); ++r) {
    fin.receiver = r;
    (void)Send(r, fin, nullptr);  // a worker already gone needs no FINISH
  }
}

Result<Inbound> WorkerPool::Receive(core::Deadline deadline, std::uint64_t* bytes_up,
                                    bool return_on_rejoin) {
  for (;;) {
    FEDML_ASSIGN_OR_RETURN(core::Envelope env, comm_.Recv(core::kAnySource, deadline));
    if (bytes_up) *bytes_up += env.payload.size();
    Inbound in;
    in.source = env.source;
    auto decoded = core::Decode(env.payload, options_.decode);
    if (!decoded.ok()) {
      in.decode_error = decoded.status();
      return in;
    }
    if (decoded->type == MessageType::kHeartbeat) continue;
    if (decoded->type == MessageType::kRegister) {  // the transport: it registered again
      if (std::find(rejoined_.begin(), rejoined_.end(), in.source) == rejoined_.end()) {
        rejoined_.push_back(in.source);
      }
      if (!return_on_rejoin) continue;
      in.rejoined = true;
      return in;
    }
    in.decoded = true;
    in.msg = std::move(decoded).value();
    in.msg.sender = in.source;  // the transport's word for who sent it, not the frame's
    return in;
  }
}

namespace {

// One Dispatch call's bookkeeping: the queue of tasks not yet handed out, the task each rank
// holds, replies waiting for an earlier task, and the tasks given up.
class DispatchRun {
 public:
  DispatchRun(WorkerPool& pool, const WorkerPool::Batch& batch, RoundMetrics& metrics,
              std::chrono::milliseconds worker_timeout, std::chrono::milliseconds round_timeout)
      : pool_(pool),
        b_(batch),
        metrics_(metrics),
        worker_timeout_(worker_timeout),
        round_timeout_(round_timeout) {
    for (int i = 0; i < b_.n; ++i) queue_.push_back(i);
  }

  Status Run();

 private:
  bool own_ranks() const { return pool_.placement().clients_own_ranks; }
  void Drop(int task, const std::string& why);
  bool Drain();
  bool BufferFull() const;
  Status Feed(int rank);
  void DropOrphans();
  Status FeedIdle();
  Status LoseWorker(int rank, const std::string& why);
  Status OnDeadline();
  /// Ranks that registered again while holding a task get it again (once per task).
  Status ResendToRejoined();
  /// Over-selection: the batch has its target of replies; the tasks still out are abandoned.
  void CloseAtTarget();
  /// Files one inbound frame; kOk with nothing filed for frames that answer nothing.
  Status OnInbound(Inbound&& in);

  WorkerPool& pool_;
  const WorkerPool::Batch& b_;
  RoundMetrics& metrics_;
  std::chrono::milliseconds worker_timeout_;
  std::chrono::milliseconds round_timeout_;  // named in the deadline's error
  std::deque<int> queue_;
  std::map<int, int> in_flight_;                 // rank -> task
  std::map<int, core::Deadline> task_deadline_;  // rank -> when its task is overdue
  std::map<int, Message> ready_;                 // finished tasks waiting for an earlier one
  std::set<int> dropped_;                        // tasks given up for this round (own ranks)
  int next_ = 0;
  int replied_ = 0;       // replies of reply_type filed (toward batch.target)
  std::set<int> resent_;  // tasks sent again to a rank that registered again
  // Ranks sent a task again whose one extra reply (the first copy's, from a process that went on
  // training it) is still to come: it is late, not a refusal.
  std::set<int> resent_ranks_;
  bool stop_ = false;  // deployment: the deadline passed or the target was met
};

// A task with an owner that cannot run it is dropped: nobody else holds that client's data.
// Tasks without an owner go back to the queue for another worker.
void DispatchRun::Drop(int task, const std::string& why) {
  dropped_.insert(task);
  ++metrics_.dropped;
  FEDML_LOG_WARNING("round %lld: %s dropped from the round: %s",
                    static_cast<long long>(b_.round) + 1, b_.describe(task).c_str(), why.c_str());
}

bool DispatchRun::Drain() {
  bool drained = false;
  for (;;) {
    if (dropped_.count(next_)) {
      ++next_;
    } else if (!ready_.empty() && ready_.begin()->first == next_) {
      b_.on_result(next_, std::move(ready_.begin()->second));
      ready_.erase(ready_.begin());
      ++next_;
      drained = true;
    } else {
      return drained;
    }
  }
}

// Replies that wait for an earlier task are capped at one per live worker: a worker that
// finishes while the buffer is full idles until the slow task's reply drains it, so memory stays
// O(workers x model) however many tasks the round has. The task every buffered reply waits for
// (position next_, at the queue's front when it was handed back by a lost worker) is always
// dispatched, or the round could not finish. With clients on their own ranks every client has one
// task, so there is nothing to cap.
bool DispatchRun::BufferFull() const {
  return !own_ranks() && static_cast<int>(ready_.size()) >= std::max(1, pool_.alive_count()) &&
         !(!queue_.empty() && queue_.front() == next_);
}

Status DispatchRun::Feed(int rank) {
  while (pool_.alive(rank) && !BufferFull()) {
    auto pick = std::find_if(queue_.begin(), queue_.end(), [&](int t) {
      const int o = b_.owner(t);
      return o < 0 || o == rank;
    });
    if (pick == queue_.end()) return Status::Ok();
    const int task_index = *pick;
    Message task = b_.make_task(task_index);
    task.sender = 0;
    task.receiver = rank;
    task.round = b_.round;
    task.model_version = b_.model_version;
    Status st = pool_.Send(rank, task, &metrics_.bytes_down);
    if (st.ok()) {
      in_flight_[rank] = task_index;
      if (worker_timeout_.count() > 0) {
        task_deadline_[rank] = core::Clock::now() + worker_timeout_;
      }
      queue_.erase(pick);
      return st;
    }
    if (st.code() != StatusCode::kUnavailable) return st;  // else: marked lost, loop ends
  }
  return Status::Ok();
}

// Owned tasks whose owner is gone can never run.
void DispatchRun::DropOrphans() {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const int o = b_.owner(*it);
    if (o >= 0 && !pool_.alive(o)) {
      Drop(*it, "rank " + std::to_string(o) + " is not connected");
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

Status DispatchRun::FeedIdle() {
  const bool all_owned =
      std::all_of(queue_.begin(), queue_.end(), [&](int task) { return b_.owner(task) >= 0; });
  if (all_owned) {
    // Only a queued task's owner can take it: asking those (not every rank) keeps a round's cost
    // in its tasks, not in the thousands of connected clients it did not select.
    const std::vector<int> waiting(queue_.begin(), queue_.end());
    for (int task : waiting) {
      const int r = b_.owner(task);
      if (pool_.alive(r) && !in_flight_.count(r)) FEDML_RETURN_IF_ERROR(Feed(r));
    }
  } else {
    for (int r = 1; r < pool_.world_size(); ++r) {
      if (pool_.alive(r) && !in_flight_.count(r)) FEDML_RETURN_IF_ERROR(Feed(r));
    }
  }
  DropOrphans();
  return Status::Ok();
}

Status DispatchRun::LoseWorker(int rank, const std::string& why) {
  pool_.MarkLost(rank);
  auto it = in_flight_.find(rank);
  if (it != in_flight_.end()) {
    if (b_.owner(it->second) >= 0) {
      Drop(it->second, why);
    } else {
      queue_.push_front(it->second);  // its task goes to a living worker
    }
    in_flight_.erase(it);
  }
  if (pool_.alive_count() == 0 && !pool_.placement().survives_failures()) {
    return Status::Unavailable("round " + std::to_string(b_.round + 1) +
                               ": every worker is gone (last lost: rank " + std::to_string(rank) +
                               ")");
  }
  FEDML_RETURN_IF_ERROR(FeedIdle());
  Drain();
  return Status::Ok();
}

Status DispatchRun::OnDeadline() {
  if (pool_.placement().survives_failures()) {  // stragglers lose this round, asked again next
    for (const auto& [rank, task] : in_flight_) Drop(task, "it missed the round deadline");
    for (int task : queue_) Drop(task, "it never started");
    in_flight_.clear();
    queue_.clear();
    Drain();
    stop_ = true;
    return Status::Ok();
  }
  std::string missing;
  for (const auto& [rank, task] : in_flight_) {
    missing +=
        (missing.empty() ? "" : ", ") + b_.describe(task) + " on rank " + std::to_string(rank);
  }
  for (int task : queue_) {
    missing += (missing.empty() ? "" : ", ") + b_.describe(task) + " (not started)";
  }
  return Status::DeadlineExceeded(
      "round " + std::to_string(b_.round + 1) + ": replies missing after round_timeout_s=" +
      std::to_string(static_cast<double>(round_timeout_.count()) / 1000.0) + ": " + missing);
}

// A client that registered again lost what was sent to its earlier connection (the transport
// cleared its queue): its task goes out again instead of being waited for until the deadline.
// Once per task, so a client that keeps registering costs one more send per round at most (which
// registering again would cost anyway). The same process may have been training it already; the
// second of its two replies is then counted late (resent_ranks_), not refused: it is honest.
Status DispatchRun::ResendToRejoined() {
  for (int rank : pool_.TakeRejoined()) {
    const auto it = in_flight_.find(rank);
    if (it == in_flight_.end() || !own_ranks() || resent_.count(it->second)) continue;
    const int task = it->second;
    resent_.insert(task);
    resent_ranks_.insert(rank);
    in_flight_.erase(it);
    task_deadline_.erase(rank);
    queue_.push_front(task);
    FEDML_LOG_INFO("round %lld: rank %d registered again; %s sent again",
                   static_cast<long long>(b_.round) + 1, rank, b_.describe(task).c_str());
    FEDML_RETURN_IF_ERROR(Feed(rank));
  }
  return Status::Ok();
}

void DispatchRun::CloseAtTarget() {
  const auto cut = static_cast<double>(in_flight_.size() + queue_.size());
  for (const auto& [rank, task] : in_flight_) dropped_.insert(task);
  for (int task : queue_) dropped_.insert(task);
  in_flight_.clear();
  task_deadline_.clear();
  queue_.clear();
  metrics_.extra[b_.cut_metric] += cut;
  FEDML_LOG_INFO("round %lld: %d replies in (the round's target); %.0f selected client(s) cut",
                 static_cast<long long>(b_.round) + 1, replied_, cut);
  Drain();
  stop_ = true;
}

Status DispatchRun::OnInbound(Inbound&& in) {
  const int src = in.source;
  Message msg;
  if (in.decoded) {
    msg = std::move(in.msg);
  } else if (in_flight_.count(src)) {
    // A malformed reply (truncated, non-finite values, ...) answers the sender's task: the task
    // ends refused, so one bad client costs the round its update, not the deadline.
    msg.type = MessageType::kInvalid;
    msg.round = b_.round;
    msg.sender = src;
    msg.attrs["error"] = in.decode_error.ToString();
  } else {
    ++metrics_.refused;
    FEDML_LOG_WARNING("refused a frame from rank %d: %s", src, in.decode_error.ToString().c_str());
    return Status::Ok();
  }
  if (msg.type == MessageType::kError) {
    const auto it = msg.attrs.find("error");
    const std::string error = it == msg.attrs.end() ? "unknown error" : it->second;
    const auto task = in_flight_.find(src);
    if (pool_.placement().survives_failures() && msg.attrs.count("refused_update")) {
      // The transport refused this client's update (too large, malformed): its task ends
      // refused and the client stays in the run.
      if (task == in_flight_.end()) {
        ++metrics_.refused;  // an update nobody asked for
        return Status::Ok();
      }
      msg.type = MessageType::kInvalid;
      msg.round = b_.round;
    } else if (pool_.placement().survives_failures()) {  // one client's failure is not the run's
      return LoseWorker(src, "it failed: " + error);
    } else {
      return Status::Aborted(
          "worker rank " + std::to_string(src) + " failed" +
          (task == in_flight_.end() ? std::string() : " on " + b_.describe(task->second)) + ": " +
          error);
    }
  }
  if (msg.type == MessageType::kFinish) {  // a worker leaving of its own accord, or lost
    return LoseWorker(src, "its rank left");
  }
  auto it = in_flight_.find(src);
  const bool refused_reply = msg.type == MessageType::kInvalid;
  const bool task_reply =
      msg.type == MessageType::kClientUpdate || msg.type == MessageType::kEvalResult;
  if ((task_reply || refused_reply) &&
      (msg.round < b_.round ||
       (msg.round == b_.round && msg.type != b_.reply_type && !refused_reply))) {
    // A reply to an earlier batch (a straggler past its deadline, a client cut by
    // over-selection, answering after its round closed or during its evaluation): ignored, and
    // counted apart from refusals, which name misbehaviour.
    metrics_.extra["late_replies"] += 1;
    return Status::Ok();
  }
  if (it == in_flight_.end() && msg.type == b_.reply_type && msg.round == b_.round &&
      resent_ranks_.erase(src) > 0) {
    // The second answer to a task sent twice (the client registered again while training it,
    // and both copies were trained): honest, and one at most per resend.
    metrics_.extra["late_replies"] += 1;
    return Status::Ok();
  }
  if ((msg.type != b_.reply_type && !refused_reply) || msg.round != b_.round ||
      it == in_flight_.end()) {
    ++metrics_.refused;  // a reply nobody asked for
    return Status::Ok();
  }
  const int task = it->second;
  in_flight_.erase(it);
  task_deadline_.erase(src);
  ready_.emplace(task, std::move(msg));
  if (!refused_reply && b_.target > 0 && ++replied_ >= b_.target) {
    CloseAtTarget();
    return Status::Ok();
  }
  FEDML_RETURN_IF_ERROR(Feed(src));
  if (Drain()) FEDML_RETURN_IF_ERROR(FeedIdle());  // workers idled by a full buffer
  return Status::Ok();
}

Status DispatchRun::Run() {
  FEDML_RETURN_IF_ERROR(FeedIdle());
  Drain();
  while (next_ < b_.n && !stop_) {
    if (own_ranks() && in_flight_.empty() && queue_.empty()) break;  // nothing can come
    if (in_flight_.empty() && pool_.alive_count() == 0) {
      for (int task : queue_) Drop(task, "no client is connected");
      queue_.clear();
      break;
    }
    // Wake for the earliest overdue task as well as for the round's deadline.
    core::Deadline wake = b_.deadline;
    int overdue_rank = -1;
    for (const auto& [rank, due] : task_deadline_) {
      if (in_flight_.count(rank) && due < wake) {
        wake = due;
        overdue_rank = rank;
      }
    }
    auto in = pool_.Receive(wake, &metrics_.bytes_up, /*return_on_rejoin=*/true);
    FEDML_RETURN_IF_ERROR(ResendToRejoined());
    if (in.ok() && in->rejoined) continue;
    if (!in.ok() && in.status().code() == StatusCode::kDeadlineExceeded && overdue_rank >= 0 &&
        wake < b_.deadline) {
      const int task = in_flight_[overdue_rank];
      FEDML_LOG_WARNING(
          "round %lld: rank %d did not answer %s within worker_timeout_s=%.3g; handing it to "
          "another worker",
          static_cast<long long>(b_.round) + 1, overdue_rank, b_.describe(task).c_str(),
          static_cast<double>(worker_timeout_.count()) / 1000.0);
      task_deadline_.erase(overdue_rank);
      FEDML_RETURN_IF_ERROR(LoseWorker(overdue_rank, "it did not answer within worker_timeout_s"));
      continue;
    }
    if (!in.ok()) {
      if (in.status().code() != StatusCode::kDeadlineExceeded) return in.status();
      FEDML_RETURN_IF_ERROR(OnDeadline());
      continue;
    }
    FEDML_RETURN_IF_ERROR(OnInbound(std::move(in).value()));
  }
  return Status::Ok();
}

}  // namespace

Status WorkerPool::Dispatch(const Batch& batch, RoundMetrics& metrics) {
  return DispatchRun(*this, batch, metrics, options_.worker_timeout, options_.round_timeout).Run();
}

}  // namespace fedml::api::server
