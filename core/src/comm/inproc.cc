#include "fedml/core/comm/inproc.h"

#include "comm/mailbox.h"

#include <condition_variable>
#include <deque>
#include <mutex>

namespace fedml::core::inproc {

// One mutex guards every mailbox: in-process traffic is a handful of frames per round, and one
// lock keeps Abort/MarkGone trivially consistent.
class Hub {
 public:
  explicit Hub(int n) : boxes_(n), gone_(n, false) {}

  Status Send(int src, int dst, std::vector<std::uint8_t> payload) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!abort_.ok()) return abort_;
    if (dst < 0 || dst >= static_cast<int>(boxes_.size())) {
      return Status::InvalidArgument("destination rank " + std::to_string(dst) +
                                     " is outside [0, " + std::to_string(boxes_.size()) + ")");
    }
    if (gone_[dst]) return Status::Unavailable("rank " + std::to_string(dst) + " is gone");
    boxes_[dst].push_back(Envelope{src, std::move(payload)});
    cv_.notify_all();
    return Status::Ok();
  }

  Result<Envelope> Recv(int self, int source, Deadline deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    auto& box = boxes_[self];
    for (;;) {
      if (!abort_.ok()) return abort_;
      if (auto e = comm_detail::TakeFirstFrom(box, source)) return std::move(*e);
      if (source >= 0 && source < static_cast<int>(gone_.size()) && gone_[source]) {
        return Status::Unavailable("rank " + std::to_string(source) + " is gone");
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
        return comm_detail::RecvDeadlineExceeded(source);
      }
    }
  }

  void Abort(const Status& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (abort_.ok()) {
      abort_ = Status::Aborted(reason.ok() ? "communicator aborted" : reason.message());
    }
    cv_.notify_all();
  }

  void MarkGone(int rank) {
    std::lock_guard<std::mutex> lock(mu_);
    if (rank >= 0 && rank < static_cast<int>(gone_.size())) {
      gone_[rank] = true;
      boxes_[rank].clear();
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<Envelope>> boxes_;
  std::vector<bool> gone_;
  Status abort_;
};

namespace {

class InProcCommunicator final : public Communicator {
 public:
  InProcCommunicator(std::shared_ptr<Hub> hub, int rank, int size)
      : hub_(std::move(hub)), rank_(rank), size_(size) {}
  ~InProcCommunicator() override { hub_->MarkGone(rank_); }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "inproc"; }
  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    return hub_->Send(rank_, dst, std::move(payload));
  }
  Result<Envelope> Recv(int source, Deadline deadline) override {
    return hub_->Recv(rank_, source, deadline);
  }
  void Abort(const Status& reason) override { hub_->Abort(reason); }
  Hub& hub() { return *hub_; }

 private:
  std::shared_ptr<Hub> hub_;
  int rank_;
  int size_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> CreateGroup(int world_size) {
  std::vector<std::unique_ptr<Communicator>> out;
  if (world_size <= 0) return out;
  auto hub = std::make_shared<Hub>(world_size);
  for (int r = 0; r < world_size; ++r) {
    out.push_back(std::make_unique<InProcCommunicator>(hub, r, world_size));
  }
  return out;
}

void MarkGone(Communicator& any_member, int rank) {
  if (auto* c = dynamic_cast<InProcCommunicator*>(&any_member)) c->hub().MarkGone(rank);
}

}  // namespace fedml::core::inproc
