#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "comm/mailbox.h"
#include "comm/mpi/shared_memory.h"
#include "fedml/core/comm/mpi.h"
#include "fedml/core/log.h"

namespace fedml::core::mpi {

namespace {

constexpr int kTagHeader = 7101;  // 16 bytes: u64 frame size, u64 chunk count
constexpr int kTagData = 7102;    // one chunk of a frame, in order
constexpr std::size_t kMaxRingBytes = std::size_t{1} << 30;
// How long a caller in Recv keeps moving shared-memory frames itself after the last byte moved.
constexpr auto kCallerSpin = std::chrono::milliseconds(2);

std::string MpiErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<std::size_t>(len));
}

struct Outgoing {
  int dst;
  std::vector<std::uint8_t> payload;
};

// A send whose MPI requests are posted; its buffers live here until every request completes.
struct InFlightSend {
  std::vector<std::uint8_t> payload;
  std::uint64_t header[2] = {0, 0};
  std::vector<MPI_Request> requests;
};

// A frame for a rank on this node, going into their shared ring: an 8-byte size, then the bytes.
struct ShmOutgoing {
  std::vector<std::uint8_t> payload;
  std::uint8_t header[8] = {};
  std::size_t sent = 0;  // bytes of header + payload in the ring so far
};

// A frame coming out of the ring from a rank on this node.
struct ShmIncoming {
  std::uint8_t header[8] = {};
  std::size_t header_got = 0;  // the body follows once all 8 are in
  std::vector<std::uint8_t> data;
  std::size_t got = 0;
};

// A frame being received from one source: its header has arrived, chunks are still coming.
struct PartialFrame {
  std::vector<std::uint8_t> data;
  std::uint64_t size = 0;
  std::uint64_t chunks_left = 0;
  std::size_t offset = 0;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, Options options,
                  std::unique_ptr<shm::NodeLinks> links)
      : comm_(comm), rank_(rank), size_(size), options_(options), links_(std::move(links)) {
    if (links_ != nullptr) {
      shm_out_.resize(static_cast<std::size_t>(size_));
      shm_in_.resize(static_cast<std::size_t>(size_));
      has_mpi_peers_ = static_cast<int>(links_->peers().size()) + 1 < size_;
    }
    progress_ = std::thread([this] { ProgressLoop(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    progress_.join();
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    if (dst < 0 || dst >= size_) {
      return Status::InvalidArgument("destination rank " + std::to_string(dst) +
                                     " is outside [0, " + std::to_string(size_) + ")");
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (!abort_.ok()) return abort_;
    if (dst == rank_) {  // to self: no MPI needed
      inbox_.push_back(Envelope{rank_, std::move(payload)});
      inbox_cv_.notify_all();
      return Status::Ok();
    }
    if (links_ != nullptr && links_->IsLinked(dst)) {
      lock.unlock();
      return SendThroughSharedMemory(dst, std::move(payload));
    }
    outbox_.push_back(Outgoing{dst, std::move(payload)});
    wake_.notify_all();
    return Status::Ok();
  }

  Result<Envelope> Recv(int source, Deadline deadline) override {
    if (links_ != nullptr) {
      // The caller moves shared-memory frames itself for a while: a reply that is on its way
      // arrives without waking another thread, and the copy lands in this core's cache.
      // Spinning stops kCallerSpin after the last byte moved, then the progress thread takes
      // over, so a server that waits seconds for training does not hold a core.
      struct Spinning {
        std::atomic<int>& count;
        explicit Spinning(std::atomic<int>& c) : count(c) { count.fetch_add(1); }
        ~Spinning() { count.fetch_sub(1); }
      } spinning(shm_spinners_);
      auto spin_until = std::min(Clock::now() + kCallerSpin, deadline);
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!abort_.ok()) return abort_;
          if (auto e = comm_detail::TakeFirstFrom(inbox_, source)) return std::move(*e);
        }
        if (Clock::now() >= spin_until) break;
        bool moved = false;
        {
          std::unique_lock<std::mutex> shm_lock(shm_mu_, std::try_to_lock);
          if (shm_lock.owns_lock()) moved = ShmProgress();
        }
        if (moved) {
          spin_until = std::min(Clock::now() + kCallerSpin, deadline);
        } else {
          std::this_thread::yield();
        }
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!abort_.ok()) return abort_;
      if (auto e = comm_detail::TakeFirstFrom(inbox_, source)) return std::move(*e);
      ++waiting_receivers_;
      wake_.notify_all();  // the progress thread polls faster while someone waits
      const bool timed_out = inbox_cv_.wait_until(lock, deadline) == std::cv_status::timeout;
      --waiting_receivers_;
      if (timed_out && Clock::now() >= deadline) {
        return comm_detail::RecvDeadlineExceeded(source);
      }
    }
  }

  void Abort(const Status& reason) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abort_.ok()) {
        abort_ = Status::Aborted(reason.ok() ? "communicator aborted" : reason.message());
      }
    }
    inbox_cv_.notify_all();
    wake_.notify_all();
  }

 private:
  // Frames to a rank on this node go into its ring from the caller's thread, as far as the ring
  // has room now (never waiting for the reader); the progress thread, or a caller spinning in
  // Recv, writes the rest.
  Status SendThroughSharedMemory(int dst, std::vector<std::uint8_t> payload) {
    std::lock_guard<std::mutex> shm_lock(shm_mu_);
    auto& queue = shm_out_[static_cast<std::size_t>(dst)];
    ShmOutgoing frame;
    const std::uint64_t size = payload.size();
    std::memcpy(frame.header, &size, sizeof size);
    frame.payload = std::move(payload);
    if (queue.empty() && PushShm(links_->WriterTo(dst), frame)) {
      Recycle(std::move(frame.payload));
      return Status::Ok();
    }
    queue.push_back(std::move(frame));
    shm_sending_.store(true);
    {
      std::lock_guard<std::mutex> lock(mu_);
      shm_kick_ = true;
    }
    wake_.notify_all();
    return Status::Ok();
  }

  // Writes as much of `frame` as `ring` takes now; true once all of it is in. shm_mu_ held.
  static bool PushShm(shm::RingWriter& ring, ShmOutgoing& frame) {
    constexpr std::size_t kHeader = sizeof frame.header;
    if (frame.sent < kHeader)
      frame.sent += ring.Write(frame.header + frame.sent, kHeader - frame.sent);
    if (frame.sent < kHeader) return false;
    const std::size_t body = frame.sent - kHeader;
    frame.sent += ring.Write(frame.payload.data() + body, frame.payload.size() - body);
    return frame.sent == kHeader + frame.payload.size();
  }

  // Reads what `src` has put in its ring, delivering every frame completed; returns whether any
  // byte moved. shm_mu_ held.
  bool PullShm(int src) {
    shm::RingReader& ring = links_->ReaderFrom(src);
    ShmIncoming& in = shm_in_[static_cast<std::size_t>(src)];
    bool moved = false;
    for (;;) {
      if (in.header_got < sizeof in.header) {
        const std::size_t k =
            ring.Read(in.header + in.header_got, sizeof in.header - in.header_got);
        moved |= k > 0;
        in.header_got += k;
        if (in.header_got < sizeof in.header) return moved;
        std::uint64_t size = 0;
        std::memcpy(&size, in.header, sizeof size);
        try {
          in.data = TakeBuffer(static_cast<std::size_t>(size));
        } catch (const std::exception& e) {
          Abort(Status::DataLoss(
              "rank " + std::to_string(src) + " announced a " + std::to_string(size) +
              "-byte frame, which this rank cannot allocate (" + e.what() + ")"));
          return moved;
        }
      }
      const std::size_t k = ring.Read(in.data.data() + in.got, in.data.size() - in.got);
      moved |= k > 0;
      in.got += k;
      if (in.got < in.data.size()) return moved;
      Deliver(src, std::move(in.data));
      in = ShmIncoming{};
    }
  }

  // One pass over every ring: queued frames out, arrived bytes in. shm_mu_ held.
  bool ShmProgress() {
    bool moved = false, sending = false, receiving = false;
    for (const int peer : links_->peers()) {
      auto& queue = shm_out_[static_cast<std::size_t>(peer)];
      while (!queue.empty()) {
        const std::size_t before = queue.front().sent;
        const bool complete = PushShm(links_->WriterTo(peer), queue.front());
        moved |= queue.front().sent != before;
        if (!complete) break;
        Recycle(std::move(queue.front().payload));
        queue.pop_front();
      }
      sending |= !queue.empty();
      moved |= PullShm(peer);
      receiving |= shm_in_[static_cast<std::size_t>(peer)].header_got > 0;
    }
    shm_sending_.store(sending);
    shm_receiving_.store(receiving);
    return moved;
  }

  void Fail(const std::string& what, int code) {
    Abort(Status::Internal("MPI " + what + " failed on rank " + std::to_string(rank_) + ": " +
                           MpiErrorString(code)));
  }

  // Posts the header and every chunk of one frame.
  void PostSend(Outgoing out) {
    sends_.emplace_back();
    InFlightSend& s = sends_.back();
    s.payload = std::move(out.payload);
    const std::size_t chunk = options_.chunk_bytes;
    const std::uint64_t chunks = (s.payload.size() + chunk - 1) / chunk;
    s.header[0] = s.payload.size();
    s.header[1] = chunks;
    s.requests.resize(1 + chunks);
    int rc = MPI_Isend(s.header, 2, MPI_UINT64_T, out.dst, kTagHeader, comm_, &s.requests[0]);
    if (rc != MPI_SUCCESS) return Fail("Isend", rc);
    for (std::uint64_t c = 0; c < chunks; ++c) {
      const std::size_t begin = c * chunk;
      const int len = static_cast<int>(std::min(chunk, s.payload.size() - begin));
      rc = MPI_Isend(s.payload.data() + begin, len, MPI_BYTE, out.dst, kTagData, comm_,
                     &s.requests[1 + c]);
      if (rc != MPI_SUCCESS) return Fail("Isend", rc);
    }
  }

  // Completes finished sends; true if any finished.
  bool TestSends() {
    bool progressed = false;
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      const int rc = MPI_Testall(static_cast<int>(it->requests.size()), it->requests.data(), &done,
                                 MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) {
        Fail("Testall", rc);
        return progressed;
      }
      if (done) {
        Recycle(std::move(it->payload));
        it = sends_.erase(it);
        progressed = true;
      } else {
        ++it;
      }
    }
    return progressed;
  }

  // Buffers of completed sends are kept for later receives: a fresh model-sized buffer costs a
  // page fault per 4 KiB (measured: receives ran at a fifth of memcpy speed), while a recycled
  // one is already mapped. The pool holds at most options_.recycled_buffers buffers.
  void Recycle(std::vector<std::uint8_t> buffer) {
    if (buffer.capacity() < (std::size_t{1} << 16) || options_.recycled_buffers == 0) return;
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (pool_.size() >= options_.recycled_buffers) pool_.erase(pool_.begin());
    buffer.resize(buffer.capacity());
    pool_.push_back(std::move(buffer));
  }

  std::vector<std::uint8_t> TakeBuffer(std::size_t size) {
    // The smallest pooled buffer that fits, so a small frame does not take a model-sized one.
    std::unique_lock<std::mutex> lock(pool_mu_);
    auto best = pool_.end();
    for (auto it = pool_.begin(); it != pool_.end(); ++it) {
      if (it->size() >= size && (best == pool_.end() || it->size() < best->size())) best = it;
    }
    if (best == pool_.end()) {
      lock.unlock();
      return std::vector<std::uint8_t>(size);
    }
    std::vector<std::uint8_t> out = std::move(*best);
    pool_.erase(best);
    lock.unlock();
    out.resize(size);  // shrinking keeps the mapped pages and writes nothing
    return out;
  }

  void Deliver(int source, std::vector<std::uint8_t> data) {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(Envelope{source, std::move(data)});
    inbox_cv_.notify_all();
  }

  // Receives what has arrived: new headers from anyone, then chunks of frames under way.
  bool PollReceives() {
    bool progressed = false;
    for (;;) {
      int flag = 0;
      MPI_Status st;
      int rc = MPI_Iprobe(MPI_ANY_SOURCE, kTagHeader, comm_, &flag, &st);
      if (rc != MPI_SUCCESS) return Fail("Iprobe", rc), progressed;
      if (!flag) break;
      std::uint64_t header[2];
      rc = MPI_Recv(header, 2, MPI_UINT64_T, st.MPI_SOURCE, kTagHeader, comm_, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return Fail("Recv", rc), progressed;
      progressed = true;
      const std::uint64_t chunk = options_.chunk_bytes;
      if (header[1] != (header[0] + chunk - 1) / chunk && header[1] != 0) {
        Abort(Status::DataLoss("rank " + std::to_string(st.MPI_SOURCE) + " announced a " +
                               std::to_string(header[0]) + "-byte frame in " +
                               std::to_string(header[1]) +
                               " chunks, which does not match this rank's chunk_bytes (" +
                               std::to_string(chunk) + "); every rank must use the same"));
        return progressed;
      }
      if (header[1] == 0) {
        Deliver(st.MPI_SOURCE, {});
        continue;
      }
      PartialFrame p;
      p.size = header[0];
      p.chunks_left = header[1];
      p.data = TakeBuffer(static_cast<std::size_t>(header[0]));
      partial_[st.MPI_SOURCE].push_back(std::move(p));
    }
    for (auto it = partial_.begin(); it != partial_.end();) {
      const int src = it->first;
      auto& frames = it->second;
      while (!frames.empty()) {
        PartialFrame& p = frames.front();
        int flag = 0;
        MPI_Status st;
        int rc = MPI_Iprobe(src, kTagData, comm_, &flag, &st);
        if (rc != MPI_SUCCESS) return Fail("Iprobe", rc), progressed;
        if (!flag) break;
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        if (count < 0 || static_cast<std::uint64_t>(count) > p.size - p.offset) {
          Abort(Status::DataLoss("rank " + std::to_string(src) + " sent a " +
                                 std::to_string(count) + "-byte chunk where at most " +
                                 std::to_string(p.size - p.offset) + " bytes were left"));
          return progressed;
        }
        rc = MPI_Recv(p.data.data() + p.offset, count, MPI_BYTE, src, kTagData, comm_,
                      MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return Fail("Recv", rc), progressed;
        progressed = true;
        p.offset += static_cast<std::size_t>(count);
        if (--p.chunks_left == 0) {
          Deliver(src, std::move(p.data));
          frames.pop_front();
        }
      }
      it = frames.empty() ? partial_.erase(it) : std::next(it);
    }
    return progressed;
  }

  void ProgressLoop() {
    // Idle back-off: OpenMPI's own blocking calls spin, which would take a core from training;
    // polling with a wait that grows to 1 ms keeps an idle rank near 0% CPU. A Send wakes the
    // loop at once. The loop spins (yielding the core) instead of sleeping while there is
    // transfer work: a send under way needs this thread to push its fragments (OpenMPI's
    // shared-memory pipeline only moves while the sender calls into MPI; sleeping between
    // fragments cut 100 MB transfers to a third of memcpy speed), a frame whose header has
    // arrived needs its chunks received, and a caller blocked in Recv wants the reply at once.
    // Spinning stops kTransferSpin after the last event, so a send to a peer that never receives
    // (a dead rank) costs a core for no longer than that, and a waiting receiver alone spins for
    // kReplySpin only: a server waiting for workers that train for seconds must not take a core
    // from them.
    constexpr auto kTransferSpin = std::chrono::milliseconds(200);
    constexpr auto kReplySpin = std::chrono::milliseconds(2);
    auto idle = std::chrono::microseconds(20);
    Deadline flush_deadline{};
    Deadline last_event = Clock::now();
    for (;;) {
      std::deque<Outgoing> batch;
      bool stopping = false;
      bool receiver_waiting = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        batch.swap(outbox_);
        shm_kick_ = false;
        stopping = stopping_;
        receiver_waiting = waiting_receivers_ > 0;
        if (!abort_.ok()) break;
      }
      bool progressed = !batch.empty();
      for (auto& out : batch) PostSend(std::move(out));
      progressed |= TestSends();
      progressed |= PollReceives();
      // Shared memory is left to a caller spinning in Recv while there is one (two threads
      // copying for one process would only contend for the rings and for the cores).
      if (links_ != nullptr && (shm_spinners_.load() == 0 || stopping)) {
        std::unique_lock<std::mutex> shm_lock(shm_mu_, std::try_to_lock);
        if (shm_lock.owns_lock()) progressed |= ShmProgress();
      }
      if (stopping) {
        if (flush_deadline == Deadline{}) flush_deadline = Clock::now() + options_.flush_timeout;
        if ((sends_.empty() && !shm_sending_.load()) || Clock::now() >= flush_deadline) break;
      }
      const Deadline now = Clock::now();
      if (progressed) {
        idle = std::chrono::microseconds(20);
        last_event = now;
        continue;
      }
      const bool shm_transferring =
          (shm_sending_.load() || shm_receiving_.load()) && shm_spinners_.load() == 0;
      const bool transferring = !sends_.empty() || !partial_.empty() || shm_transferring;
      if ((transferring && now - last_event < kTransferSpin) ||
          (receiver_waiting && has_mpi_peers_ && now - last_event < kReplySpin)) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, idle,
                     [this] { return !outbox_.empty() || shm_kick_ || stopping_ || !abort_.ok(); });
      const std::chrono::microseconds cap(waiting_receivers_ > 0 ? 50 : 1000);
      idle = std::min<std::chrono::microseconds>(idle * 2, cap);
    }
    // Sends that could not complete (peer gone, abort) are cancelled so their buffers can go.
    for (auto& s : sends_) {
      for (auto& r : s.requests) {
        if (r != MPI_REQUEST_NULL) {
          MPI_Cancel(&r);
          MPI_Request_free(&r);
        }
      }
    }
    sends_.clear();
  }

  MPI_Comm comm_;
  const int rank_;
  const int size_;
  const Options options_;

  std::mutex mu_;
  std::condition_variable inbox_cv_;  // Recv waits here
  std::condition_variable wake_;      // the progress thread idles here
  std::deque<Envelope> inbox_;
  std::deque<Outgoing> outbox_;
  Status abort_;
  bool stopping_ = false;
  int waiting_receivers_ = 0;  // callers blocked in Recv
  bool shm_kick_ = false;      // a shared-memory frame was queued for the progress thread

  // Ranks on this node (null when none): rings in shared memory instead of MPI.
  const std::unique_ptr<shm::NodeLinks> links_;
  bool has_mpi_peers_ = true;                     // some rank is reached through MPI
  std::mutex shm_mu_;                             // the rings' ends and the two vectors below
  std::vector<std::deque<ShmOutgoing>> shm_out_;  // by destination rank
  std::vector<ShmIncoming> shm_in_;               // by source rank
  std::atomic<int> shm_spinners_{0};              // callers in Recv's spinning phase
  std::atomic<bool> shm_sending_{false};          // frames wait for ring space
  std::atomic<bool> shm_receiving_{false};        // a frame is partly read
  std::mutex pool_mu_;                            // pool_

  // Owned by the progress thread.
  std::list<InFlightSend> sends_;
  std::map<int, std::deque<PartialFrame>> partial_;
  std::vector<std::vector<std::uint8_t>> pool_;  // under pool_mu_
  std::thread progress_;
};

}  // namespace

Result<std::unique_ptr<Environment>> Environment::Create(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = 0;
  bool owns = false;
  if (!initialized) {
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS)
      return Status::Unavailable("MPI_Init_thread failed: " + MpiErrorString(rc));
    owns = true;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    if (owns) MPI_Finalize();
    return Status::FailedPrecondition(
        "fedml's MPI backend needs MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE (one progress "
        "thread makes the MPI calls), but this MPI provides level " +
        std::to_string(provided) +
        (initialized ? "; initialise MPI with MPI_Init_thread(..., MPI_THREAD_SERIALIZED, ...)"
                     : ""));
  }
  return std::unique_ptr<Environment>(new Environment(owns));
}

Environment::~Environment() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // A watchdog, not a second MPI thread: MPI_Finalize stays on the thread that initialised MPI.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  const auto timeout = finalize_timeout;
  const int code = exit_code_if_stuck_;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) {
      FEDML_LOG_WARNING(
          "MPI_Finalize did not return within %.0f s (is a rank dead?); "
          "exiting without it",
          std::chrono::duration<double>(timeout).count());
      std::fflush(nullptr);
      std::_Exit(code);
    }
  });
  MPI_Finalize();
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
}

Result<std::unique_ptr<Communicator>> CreateCommunicator(MPI_Comm comm, Options options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    return Status::FailedPrecondition("MPI is not initialised; create an mpi::Environment first");
  }
  int provided = 0;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_SERIALIZED) {
    return Status::FailedPrecondition(
        "fedml's MPI backend needs MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE; MPI was "
        "initialised with level " +
        std::to_string(provided));
  }
  if (options.shared_memory_ring_bytes > kMaxRingBytes) {
    return Status::InvalidArgument("mpi shared_memory_ring_bytes must be 0 (off) or at most " +
                                   std::to_string(kMaxRingBytes) + ", got " +
                                   std::to_string(options.shared_memory_ring_bytes));
  }
  if (options.chunk_bytes == 0 || options.chunk_bytes > static_cast<std::size_t>(INT_MAX)) {
    return Status::InvalidArgument("mpi chunk_bytes must be in [1, " + std::to_string(INT_MAX) +
                                   "], got " + std::to_string(options.chunk_bytes));
  }
  MPI_Comm dup;
  int rc = MPI_Comm_dup(comm, &dup);
  if (rc != MPI_SUCCESS) return Status::Internal("MPI_Comm_dup failed: " + MpiErrorString(rc));
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(dup, &rank);
  MPI_Comm_size(dup, &size);
  std::string why_not;
  auto links = shm::SetUpNodeLinks(dup, options.shared_memory_ring_bytes, &why_not);
  if (links == nullptr && options.shared_memory_ring_bytes != 0 && !why_not.empty()) {
    FEDML_LOG_WARNING(
        "rank %d: no shared memory with the ranks on its node (%s); frames to "
        "them go through MPI",
        rank, why_not.c_str());
  }
  return std::unique_ptr<Communicator>(
      std::make_unique<MpiCommunicator>(dup, rank, size, options, std::move(links)));
}

}  // namespace fedml::core::mpi
