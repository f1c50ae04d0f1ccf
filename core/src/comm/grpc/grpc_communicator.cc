// The gRPC communicators (fedml/core/comm/grpc.h): the server's FederatedLearning service and the
// edge client. Why one file of this size: both ends of the chunked frame protocol (FrameChunk
// offsets, size limits, reassembly) are checked against each other here (their shared frame
// reader and writer are in frames.h).
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "comm/grpc/frames.h"
#include "comm/mailbox.h"
#include "fedml/core/comm/grpc.h"
#include "fedml/core/log.h"
#include "fedml/core/message.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/wire.h"
#include "fedml_service.grpc.pb.h"

namespace fedml::core::grpc_comm {

namespace {

using fedml::service::FederatedLearning;
using fedml::service::FetchRequest;
using fedml::service::FrameChunk;

constexpr const char* kClientIdKey = "x-fedml-client-id";

Status FromGrpc(const grpc::Status& st, const std::string& what) {
  const std::string msg = what + ": " + st.error_message();
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      return Status::Ok();
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return Status::PermissionDenied(msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Status::InvalidArgument(msg);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Status::ResourceExhausted(msg);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Status::DeadlineExceeded(msg);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Status::FailedPrecondition(msg);
    default:
      return Status::Unavailable(msg);
  }
}

// gRPC takes deadlines on the system clock; ours are steady_clock points.
std::chrono::system_clock::time_point SystemDeadline(Deadline d) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(d - Clock::now());
}

Status CheckChunkBytes(std::size_t chunk_bytes) {
  if (chunk_bytes == 0 || chunk_bytes > kMaxChunkBytes) {
    return Status::InvalidArgument("chunk_bytes " + std::to_string(chunk_bytes) +
                                   " is outside [1, " + std::to_string(kMaxChunkBytes) + "]");
  }
  return Status::Ok();
}

// What the round controller reads when a client's push was refused: an ERROR from its rank, so
// the client's task ends now (with the reason) instead of at the round deadline.
Bytes RefusedFrameFrom(int rank, const std::string& why) {
  Message err;
  err.type = MessageType::kError;
  err.sender = rank;
  err.attrs["error"] = "its update was refused by the server: " + why;
  err.attrs["refused_update"] = "1";  // the client is fine; only this update is not
  auto frame = Encode(err);
  return frame.ok() ? std::move(frame).value() : Bytes{};
}

// A notice from the transport itself, filed as if rank had sent it: `type` with attrs["reason"].
Bytes TransportNotice(MessageType type, int rank, const char* reason) {
  Message notice;
  notice.type = type;
  notice.sender = rank;
  notice.attrs["reason"] = reason;
  auto frame = Encode(notice);
  return frame.ok() ? std::move(frame).value() : Bytes{};
}

// What the round controller reads when a client is gone: a FINISH from its rank.
Bytes FinishFrameFrom(int rank) {
  return TransportNotice(MessageType::kFinish, rank, "connection lost");
}

// What the round controller reads when a client registers again: a REGISTER from its rank.
// Whatever was sent to its earlier connection is lost (its queue was cleared), so a task it held
// must be sent again rather than waited for until the round's deadline.
Bytes RejoinFrameFrom(int rank) {
  return TransportNotice(MessageType::kRegister, rank, "registered again");
}

// ---- Server ------------------------------------------------------------------------------
//
// The service runs on gRPC's callback API: a waiting FetchTask is a parked reactor in its
// client's slot (a few hundred bytes), not a blocked thread, so the server's threads do not grow
// with the clients connected. Who ends a call: exactly one party calls Finish on each reactor,
// the one that took it out of its slot under mu_ (a Send that hands it a frame, the monitor at
// its wait's end, OnCancel) or the reactor itself once its frame is written; Finish is never
// called with mu_ held, because gRPC may run OnDone (which takes mu_) inline.

class GrpcServer;

// One FetchTask call: parked in its client's slot until a frame is sent to the client or its wait
// ends, then writes the frame as chunks (or nothing) and finishes.
class FetchCall final : public grpc::ServerWriteReactor<FrameChunk> {
 public:
  FetchCall(GrpcServer& server, grpc::CallbackServerContext* ctx) : server_(server), ctx_(ctx) {}
  /// Writes `frame` and finishes; called once, by the party that took the call from its slot.
  void Deliver(Bytes frame, std::size_t chunk_bytes) {
    frame_ = std::move(frame);
    chunk_bytes_ = chunk_bytes;
    WriteNext();
  }
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  grpc::CallbackServerContext* ctx() const { return ctx_; }
  std::size_t rank = 0;     // the client's rank once identified and counted (0: never counted)
  Clock::time_point until;  // when a parked call returns empty

 private:
  void WriteNext() {
    FillChunk(frame_, chunk_bytes_, &offset_, &chunk_);
    StartWrite(&chunk_);
  }

  GrpcServer& server_;
  grpc::CallbackServerContext* ctx_;
  Bytes frame_;
  std::size_t chunk_bytes_ = 1;
  std::size_t offset_ = 0;
  FrameChunk chunk_;
};

// One PushUpdate stream: reads chunks into a frame until the client closes its side, then hands
// the frame (or a refusal notice) to the server's mailbox and finishes.
class PushCall final : public grpc::ServerReadReactor<FrameChunk> {
 public:
  PushCall(GrpcServer& server, grpc::CallbackServerContext* ctx, std::uint64_t max_frame_bytes)
      : server_(server), ctx_(ctx), frame_(max_frame_bytes) {}
  void Begin(int id);
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  GrpcServer& server_;
  grpc::CallbackServerContext* ctx_;
  int id_ = -1;
  FrameReader frame_;
  FrameChunk chunk_;
};

class ServiceImpl final : public FederatedLearning::CallbackService {
 public:
  explicit ServiceImpl(GrpcServer& server) : server_(server) {}
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const fedml::service::RegisterRequest* req,
                                     fedml::service::RegisterReply* reply) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const fedml::service::HeartbeatRequest*,
                                      fedml::service::HeartbeatReply*) override;
  grpc::ServerWriteReactor<FrameChunk>* FetchTask(grpc::CallbackServerContext* ctx,
                                                  const FetchRequest* req) override;
  grpc::ServerReadReactor<FrameChunk>* PushUpdate(grpc::CallbackServerContext* ctx,
                                                  fedml::service::PushReply*) override;

 private:
  GrpcServer& server_;
};

// Lets this process hold one socket per connected client: the soft limit on open files (1024 on
// many systems) is raised to the hard one, which only an administrator can raise further.
void RaiseOpenFileLimit(int clients) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  }
  // A connection is a socket; files, the listener and gRPC's own pipes need some more.
  const rlim_t needed = static_cast<rlim_t>(clients) + 256;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < needed) {
    FEDML_LOG_WARNING(
        "this process may open %llu files, fewer than the %llu that %d connected clients need; "
        "raise the hard limit (ulimit -Hn, LimitNOFILE=) or clients past it will be refused",
        static_cast<unsigned long long>(lim.rlim_cur), static_cast<unsigned long long>(needed),
        clients);
  }
}

class GrpcServer final : public ServerCommunicator {
 public:
  GrpcServer(ServerOptions options, std::optional<security::ClientRegistry> registry)
      : options_(std::move(options)),
        registry_(std::move(registry)),
        clients_(static_cast<std::size_t>(options_.num_clients) + 1),
        service_(*this) {}

  Status Start() {
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (options_.security.insecure) {
      creds = grpc::InsecureServerCredentials();
    } else {
      const std::string& dir = options_.security.certs_dir;
      FEDML_ASSIGN_OR_RETURN(std::string ca, security::ReadTextFile(dir + "/ca.pem"));
      FEDML_ASSIGN_OR_RETURN(std::string cert, security::ReadTextFile(dir + "/server.pem"));
      FEDML_ASSIGN_OR_RETURN(std::string key, security::ReadTextFile(dir + "/server.key"));
      // Under mutual TLS a client without a certificate signed by ca.pem fails the handshake;
      // otherwise a certificate is optional but, when shown, must still verify.
      grpc::SslServerCredentialsOptions ssl(
          options_.security.mutual_tls ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                       : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
      ssl.pem_root_certs = ca;
      ssl.pem_key_cert_pairs.push_back({key, cert});
      creds = grpc::SslServerCredentials(ssl);
    }
    RaiseOpenFileLimit(options_.num_clients);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options_.address, creds, &port_);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(kMaxGrpcMessage);
    builder.SetMaxSendMessageSize(kMaxGrpcMessage);
    // Dead connections (a host that vanished without a FIN) are found by keepalive pings and
    // closed, which cancels their calls (OnCancel: the client is marked gone). Clients ping every
    // 30 s even between calls; the server must not count that as abuse (its default minimum
    // interval is 5 minutes, and strikes close the connection).
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return Status::Unavailable("cannot listen on " + options_.address +
                                 " (address in use, or not an address of this host)");
    }
    monitor_ = std::thread([this] { MonitorLiveness(); });
    return Status::Ok();
  }

  ~GrpcServer() override {
    // Let connected clients fetch what is queued for them (FINISH), within flush_timeout.
    std::vector<FetchCall*> parked;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, Clock::now() + options_.flush_timeout, [this] {
        for (std::size_t r = 1; r < clients_.size(); ++r) {
          if (clients_[r].live && (!clients_[r].outbox.empty() || clients_[r].writing())) {
            return false;
          }
        }
        return true;
      });
      stopping_ = true;
      for (ClientSlot& c : clients_) {
        if (c.poll != nullptr) parked.push_back(ReleaseFetchLocked(c.poll));
      }
    }
    cv_.notify_all();
    for (FetchCall* call : parked) call->Finish(grpc::Status::OK);
    // Calls still open after 2 s are cancelled; Shutdown returns when every reactor is done.
    if (server_) server_->Shutdown(SystemDeadline(Clock::now() + std::chrono::seconds(2)));
    if (monitor_.joinable()) monitor_.join();
    mailbox_.Abort(Status::Aborted("server stopped"));
  }

  int rank() const override { return 0; }
  int world_size() const override { return options_.num_clients + 1; }
  std::string backend() const override { return "grpc"; }
  int bound_port() const override { return port_; }

  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    if (dst <= 0 || dst > options_.num_clients) {
      return Status::InvalidArgument("destination rank " + std::to_string(dst) +
                                     " is outside [1, " + std::to_string(options_.num_clients) +
                                     "]");
    }
    FEDML_RETURN_IF_ERROR(mailbox_.aborted());
    FetchCall* waiting = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ClientSlot& c = clients_[static_cast<std::size_t>(dst)];
      if (!c.live) {
        return Status::Unavailable("client " + std::to_string(dst - 1) + " is not connected");
      }
      if (c.poll != nullptr && c.outbox.empty()) {
        waiting = std::exchange(c.poll, nullptr);
      } else if (c.outbox.size() >= options_.max_outbox_frames) {
        return Status::Unavailable(
            "client " + std::to_string(dst - 1) + " has " + std::to_string(c.outbox.size()) +
            " frames it has not fetched (max_outbox_frames " +
            std::to_string(options_.max_outbox_frames) + "); nothing more is queued for it");
      } else {
        c.outbox.push_back(std::move(payload));
        return Status::Ok();
      }
    }
    // A parked fetch took the frame: it is written now, outside the lock.
    waiting->Deliver(std::move(payload), options_.chunk_bytes);
    return Status::Ok();
  }

  Result<Envelope> Recv(int source, Deadline deadline) override {
    return mailbox_.Recv(source, deadline);
  }

  void Abort(const Status& reason) override {
    mailbox_.Abort(reason);
    cv_.notify_all();
  }

  Status WaitForClients(int n, Deadline deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, deadline, [&] { return LiveLocked() >= n || stopping_; })) {
      return Status::Ok();
    }
    return Status::DeadlineExceeded(std::to_string(LiveLocked()) + " of the " + std::to_string(n) +
                                    " clients needed are connected");
  }

  int live_clients() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return LiveLocked();
  }

  bool is_live(int rank) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return rank > 0 && rank <= options_.num_clients &&
           clients_[static_cast<std::size_t>(rank)].live;
  }

  // ---- called by the reactors on gRPC threads ----

  // The client id the call's credentials prove, or PERMISSION_DENIED/UNAUTHENTICATED.
  grpc::Status Identify(grpc::ServerContextBase* ctx, int* id) {
    Result<int> who = Status::PermissionDenied("no credentials");
    std::string serial_hex;  // of the client certificate, under mutual TLS
    const auto& md = ctx->client_metadata();
    const auto auth = ctx->auth_context();
    const auto cns =
        auth ? auth->FindPropertyValues("x509_common_name") : std::vector<grpc::string_ref>{};
    if (options_.security.insecure) {
      auto it = md.find(kClientIdKey);
      if (it == md.end()) {
        return {grpc::StatusCode::UNAUTHENTICATED, "no " + std::string(kClientIdKey) + " metadata"};
      }
      try {
        who = std::stoi(std::string(it->second.data(), it->second.size()));
      } catch (const std::exception&) {
        return {grpc::StatusCode::UNAUTHENTICATED, "a client id that is not a number"};
      }
    } else if (!cns.empty()) {
      // A certificate the TLS layer verified against ca.pem: its common name is the identity.
      who = security::ClientIdFromCommonName(std::string(cns[0].data(), cns[0].size()));
      const auto pem = auth->FindPropertyValues("x509_pem_cert");
      if (who.ok() && !pem.empty()) {
        auto serial = security::CertificateSerialHex(std::string(pem[0].data(), pem[0].size()));
        if (!serial.ok()) who = serial.status();
        if (serial.ok()) serial_hex = std::move(serial).value();
      }
    } else {
      auto it = md.find(kTokenKey);
      if (it == md.end()) {
        return {grpc::StatusCode::UNAUTHENTICATED,
                "no client certificate and no client token; give the client its certs folder"};
      }
      who = registry_->IdentifyByToken(std::string(it->second.data(), it->second.size()));
    }
    if (who.ok() && (*who < 0 || *who >= options_.num_clients)) {
      who = Status::PermissionDenied("client " + std::to_string(*who) +
                                     " is not one of this run's clients (0.." +
                                     std::to_string(options_.num_clients - 1) + ")");
    }
    if (who.ok() && !options_.security.insecure) {
      // revoked.txt is re-read when it changed: a revocation takes effect at the client's next
      // call, without a restart. A damaged file leaves the previous list in force.
      const Status refreshed = registry_->Refresh();
      if (!refreshed.ok()) {
        FEDML_LOG_ERROR("the revocation list was not reloaded, the previous one stays: %s",
                        refreshed.ToString().c_str());
      }
      const Status allowed = registry_->CheckAllowed(*who, serial_hex);
      if (!allowed.ok()) who = allowed;
    }
    if (!who.ok()) {
      LogRefusal(ctx, who.status().message());
      return {grpc::StatusCode::PERMISSION_DENIED, who.status().message()};
    }
    *id = *who;
    return grpc::Status::OK;
  }

  grpc::Status OnRegister(int id, std::uint32_t wire_version, int requested,
                          fedml::service::RegisterReply* reply) {
    if (requested != id) {
      return {grpc::StatusCode::PERMISSION_DENIED, "these credentials are client " +
                                                       std::to_string(id) + "'s, not client " +
                                                       std::to_string(requested) + "'s"};
    }
    if (wire_version != kWireVersion) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "client speaks wire version " + std::to_string(wire_version) + ", server " +
                  std::to_string(kWireVersion)};
    }
    FetchCall* stale_poll = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ClientSlot& c = clients_[static_cast<std::size_t>(id) + 1];
      c.live = true;
      c.outbox.clear();  // a reconnecting client starts afresh; what was queued is stale
      if (c.poll != nullptr) {
        // A fetch of the connection this one replaces (whose end the server has not seen yet)
        // ends now, so the new connection's first fetch is not refused as a second one.
        stale_poll = ReleaseFetchLocked(c.poll);
      }
      c.last_seen = Clock::now();
      // A "lost" notice the controller has not read yet is stale now: it would drop the task
      // this new connection is about to get.
      const Bytes lost = FinishFrameFrom(id + 1);
      const Bytes rejoined = RejoinFrameFrom(id + 1);
      mailbox_.EraseIf([&](const Envelope& e) {
        return e.source == id + 1 && (e.payload == lost || e.payload == rejoined);
      });
      // At most one unread notice per client, however often it registers.
      if (c.registered_before) mailbox_.Push(Envelope{id + 1, rejoined});
      c.registered_before = true;
    }
    if (stale_poll != nullptr) stale_poll->Finish(grpc::Status::OK);
    cv_.notify_all();
    reply->set_rank(id + 1);
    reply->set_world_size(world_size());
    return grpc::Status::OK;
  }

  void Touch(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    clients_[static_cast<std::size_t>(id) + 1].last_seen = Clock::now();
  }

  // A FetchTask call from client `id`: refused, answered at once with a queued frame, or parked
  // until a frame is sent or its wait ends. The call is counted as the client's one fetch.
  void OnFetch(FetchCall* call, int id, std::uint32_t wait_ms) {
    const std::size_t rank = static_cast<std::size_t>(id) + 1;
    enum class Then { kRefuse, kDeliver, kPark, kEmpty } then = Then::kPark;
    grpc::Status refused;
    Bytes frame;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ClientSlot& c = clients_[rank];
      if (!c.live) {
        then = Then::kRefuse;
        refused = {grpc::StatusCode::FAILED_PRECONDITION, "register first (the server lost track)"};
      } else if (c.fetch != nullptr) {
        // One long poll per client: each parked call holds memory and, on the way out, a
        // write; an honest client fetches one at a time (a reconnecting one retries after its
        // backoff).
        LogRefusal(call->ctx(), "client " + std::to_string(id) + " opened a second FetchTask call");
        then = Then::kRefuse;
        refused = {grpc::StatusCode::ABORTED, "client " + std::to_string(id) +
                                                  " already has a FetchTask call in flight; one "
                                                  "at a time per client"};
      } else {
        call->rank = rank;
        c.fetch = call;
        ++c.calls;
        c.last_seen = Clock::now();
        if (!c.outbox.empty()) {
          then = Then::kDeliver;
          frame = std::move(c.outbox.front());
          c.outbox.pop_front();
        } else if (stopping_) {
          then = Then::kEmpty;
        } else {
          call->until =
              Clock::now() + std::min(options_.fetch_wait, std::chrono::milliseconds(wait_ms));
          c.poll = call;
        }
      }
    }
    switch (then) {
      case Then::kRefuse:
        call->Finish(refused);
        break;
      case Then::kDeliver:
        cv_.notify_all();  // an outbox shrank (the destructor's flush waits on it)
        call->Deliver(std::move(frame), options_.chunk_bytes);
        break;
      case Then::kEmpty:
        EndFetch(call, grpc::Status::OK);
        break;
      case Then::kPark:
        break;  // Send, the monitor or OnCancel takes it from the slot and finishes it
    }
  }

  // The client hung up (or its connection died) while its call was parked: it is gone.
  void OnFetchCancelled(FetchCall* call) {
    bool mine = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (call->rank != 0 && clients_[call->rank].poll == call) {
        ReleaseFetchLocked(call);
        MarkGoneLocked(call->rank, "its connection closed");
        mine = true;
      }
    }
    if (mine) call->Finish(grpc::Status::CANCELLED);
  }

  // A frame could not be written: the client is taken for gone (the round controller sees it
  // leave) until it registers again.
  void OnFetchBroken(FetchCall* call) {
    std::lock_guard<std::mutex> lock(mu_);
    MarkGoneLocked(call->rank, "the connection broke while a frame was sent");
  }

  // Ends a counted fetch: the client may open its next one as soon as it sees this call's end,
  // which can be before gRPC runs the call's OnDone, so the slot lets go of it first.
  void EndFetch(FetchCall* call, const grpc::Status& st) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReleaseFetchLocked(call);
    }
    cv_.notify_all();
    call->Finish(st);
  }

  // A PushUpdate stream from client `id` may begin: OK, or why not. One push stream per client,
  // refused before it is read while the client's queue is full; the monitor thread cancels it at
  // push_idle_timeout / push_timeout (see ServerOptions).
  grpc::Status BeginPush(grpc::CallbackServerContext* ctx, int id) {
    const std::size_t rank = static_cast<std::size_t>(id) + 1;
    const std::string who = "client " + std::to_string(id);
    std::lock_guard<std::mutex> lock(mu_);
    ClientSlot& c = clients_[rank];
    if (c.push_ctx != nullptr) {
      LogRefusal(ctx, who + " opened a second PushUpdate stream");
      return {grpc::StatusCode::ABORTED,
              who + " already has a PushUpdate stream open; one push at a time per client"};
    }
    const std::size_t queued = mailbox_.queued_from(static_cast<int>(rank));
    if (queued >= options_.max_queued_frames) {
      LogRefusal(ctx, who + " pushed with a full queue");
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              who + " has " + std::to_string(queued) +
                  " frames the server has not read yet (max_queued_frames " +
                  std::to_string(options_.max_queued_frames) + "); push again later"};
    }
    c.push_ctx = ctx;
    c.push_started = c.push_last_chunk = Clock::now();
    c.push_cut.clear();
    ++c.calls;
    return grpc::Status::OK;
  }

  void PushChunkArrived(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    clients_[static_cast<std::size_t>(id) + 1].push_last_chunk = Clock::now();
  }

  // The push stream of client `id` is over (`st`: the reader's verdict so far): the frame goes to
  // the mailbox, or a refusal notice does; returns the status the client is told.
  grpc::Status EndPush(int id, grpc::Status st, FrameReader& frame) {
    const std::size_t rank = static_cast<std::size_t>(id) + 1;
    const std::string who = "client " + std::to_string(id);
    std::string cut;
    {
      // Cleared before the call finishes: the monitor may call TryCancel on push_ctx only
      // meanwhile.
      std::lock_guard<std::mutex> lock(mu_);
      ClientSlot& c = clients_[rank];
      cut = std::move(c.push_cut);
      c.push_cut.clear();
      c.push_ctx = nullptr;
      --c.calls;
      c.last_seen = Clock::now();
    }
    if (!cut.empty()) {
      st = {grpc::StatusCode::DEADLINE_EXCEEDED, cut + " after " + frame.progress()};
    } else if (st.ok() && !frame.done()) {
      st = {grpc::StatusCode::INVALID_ARGUMENT,
            frame.started() ? "the stream ended after " + frame.progress() + " (truncated)"
                            : std::string("an empty stream")};
    }
    if (!st.ok()) {
      FEDML_LOG_WARNING("refused a push from client %d: %s", id, st.error_message().c_str());
      // Counted against the client's queue like a frame: refusals cannot flood it either.
      mailbox_.PushIfBelow(
          Envelope{static_cast<int>(rank), RefusedFrameFrom(id + 1, st.error_message())},
          options_.max_queued_frames);
      return st;
    }
    if (!mailbox_.PushIfBelow(Envelope{static_cast<int>(rank), frame.Take()},
                              options_.max_queued_frames)) {
      // Only refusal notices could have filled the queue since BeginPush.
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              who + "'s queue filled while it pushed (max_queued_frames " +
                  std::to_string(options_.max_queued_frames) + ")"};
    }
    return grpc::Status::OK;
  }

  std::uint64_t max_frame_bytes() const { return options_.max_frame_bytes; }

 private:
  struct ClientSlot {
    bool live = false;
    bool registered_before = false;  // a later Register is a rejoin (see RejoinFrameFrom)
    int calls = 0;                   // RPCs in flight
    FetchCall* fetch = nullptr;      // the client's FetchTask call in flight (at most one)
    FetchCall* poll = nullptr;       // ... while parked, waiting for a frame (owned by gRPC)
    bool writing() const { return fetch != nullptr && poll == nullptr; }
    Clock::time_point last_seen{};
    std::deque<Bytes> outbox;
    // The client's push in flight (at most one): its context, for the monitor to cancel, when
    // it began and when its last chunk came; push_cut says why the monitor cancelled it.
    grpc::CallbackServerContext* push_ctx = nullptr;
    Clock::time_point push_started{};
    Clock::time_point push_last_chunk{};
    std::string push_cut;
  };

  // The slot forgets `call` (parked or writing) and stops counting it; returns it, for the
  // caller to Finish once mu_ is released.
  FetchCall* ReleaseFetchLocked(FetchCall* call) {
    ClientSlot& c = clients_[call->rank];
    --c.calls;
    if (c.fetch == call) c.fetch = nullptr;
    if (c.poll == call) c.poll = nullptr;
    c.last_seen = Clock::now();
    return call;
  }

  int LiveLocked() const {
    return static_cast<int>(std::count_if(clients_.begin(), clients_.end(),
                                          [](const ClientSlot& c) { return c.live; }));
  }

  // The round controller learns of a lost client as a FINISH from its rank.
  void MarkGoneLocked(std::size_t rank, const char* why) {
    ClientSlot& c = clients_[rank];
    if (!c.live) return;
    c.live = false;
    c.outbox.clear();
    FEDML_LOG_WARNING("client %zu disconnected (%s)", rank - 1, why);
    mailbox_.Push(Envelope{static_cast<int>(rank), FinishFrameFrom(static_cast<int>(rank))});
  }

  void MonitorLiveness() {
    std::unique_lock<std::mutex> lock(mu_);
    // Often enough to cut a push within a quarter of its deadlines past them, and to end a
    // parked fetch within 100 ms of its wait.
    const auto tick =
        std::max(std::chrono::milliseconds(10),
                 std::min({std::chrono::milliseconds(100), options_.push_idle_timeout / 4,
                           options_.push_timeout / 4}));
    std::vector<FetchCall*> expired;
    while (!stopping_) {
      cv_.wait_for(lock, tick);
      const auto now = Clock::now();
      for (std::size_t r = 1; r < clients_.size(); ++r) {
        ClientSlot& c = clients_[r];
        if (c.poll != nullptr && now >= c.poll->until) {
          expired.push_back(ReleaseFetchLocked(c.poll));
        }
        if (c.push_ctx != nullptr && c.push_cut.empty()) {
          if (now - c.push_last_chunk > options_.push_idle_timeout) {
            c.push_cut = "no chunk for " + std::to_string(options_.push_idle_timeout.count()) +
                         " ms (push_idle_timeout)";
          } else if (now - c.push_started > options_.push_timeout) {
            c.push_cut = "the push took longer than " +
                         std::to_string(options_.push_timeout.count()) + " ms (push_timeout)";
          }
          if (!c.push_cut.empty()) {
            FEDML_LOG_WARNING("cancelling client %zu's push: %s", r - 1, c.push_cut.c_str());
            c.push_ctx->TryCancel();
          }
        }
        if (c.live && c.calls == 0 && now - c.last_seen > options_.liveness_timeout) {
          MarkGoneLocked(r, "no call within liveness_timeout");
        }
      }
      if (!expired.empty()) {
        lock.unlock();
        for (FetchCall* call : expired) call->Finish(grpc::Status::OK);  // nothing this time
        expired.clear();
        lock.lock();
      }
    }
  }

  static void LogRefusal(grpc::ServerContextBase* ctx, const std::string& why) {
    FEDML_LOG_WARNING("refused a call from %s: %s", ctx->peer().c_str(), why.c_str());
  }

  const ServerOptions options_;
  const std::optional<security::ClientRegistry> registry_;  // empty when insecure
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ClientSlot> clients_;  // index = rank; [0] unused
  bool stopping_ = false;
  comm_detail::Mailbox mailbox_;
  ServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::thread monitor_;
};

void FetchCall::OnWriteDone(bool ok) {
  if (!ok) {
    server_.OnFetchBroken(this);
    server_.EndFetch(this, grpc::Status::CANCELLED);
  } else if (offset_ < frame_.size()) {
    WriteNext();
  } else {
    server_.EndFetch(this, grpc::Status::OK);
  }
}

void FetchCall::OnCancel() { server_.OnFetchCancelled(this); }

void FetchCall::OnDone() { delete this; }

void PushCall::Begin(int id) {
  id_ = id;
  const grpc::Status st = server_.BeginPush(ctx_, id);
  if (!st.ok()) {
    id_ = -1;
    Finish(st);
    return;
  }
  StartRead(&chunk_);
}

void PushCall::OnReadDone(bool ok) {
  // !ok: the client closed its side (the frame should be whole) or the call was cancelled.
  grpc::Status st = grpc::Status::OK;
  if (ok) {
    server_.PushChunkArrived(id_);
    st = frame_.Add(chunk_);
    if (st.ok()) {
      StartRead(&chunk_);
      return;
    }
  }
  Finish(server_.EndPush(id_, st, frame_));
}

grpc::ServerUnaryReactor* ServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                const fedml::service::RegisterRequest* req,
                                                fedml::service::RegisterReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  int id = -1;
  grpc::Status st = server_.Identify(ctx, &id);
  if (st.ok()) st = server_.OnRegister(id, req->wire_version(), req->client_id(), reply);
  reactor->Finish(st);
  return reactor;
}

grpc::ServerUnaryReactor* ServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                 const fedml::service::HeartbeatRequest*,
                                                 fedml::service::HeartbeatReply*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  int id = -1;
  const grpc::Status st = server_.Identify(ctx, &id);
  if (st.ok()) server_.Touch(id);
  reactor->Finish(st);
  return reactor;
}

grpc::ServerWriteReactor<FrameChunk>* ServiceImpl::FetchTask(grpc::CallbackServerContext* ctx,
                                                             const FetchRequest* req) {
  auto* call = new FetchCall(server_, ctx);  // deleted by its OnDone
  int id = -1;
  const grpc::Status st = server_.Identify(ctx, &id);
  if (!st.ok()) {
    call->Finish(st);
  } else {
    server_.OnFetch(call, id, req->wait_ms());
  }
  return call;
}

grpc::ServerReadReactor<FrameChunk>* ServiceImpl::PushUpdate(grpc::CallbackServerContext* ctx,
                                                             fedml::service::PushReply*) {
  auto* call = new PushCall(server_, ctx, server_.max_frame_bytes());  // deleted by its OnDone
  int id = -1;
  const grpc::Status st = server_.Identify(ctx, &id);
  if (!st.ok()) {
    call->Finish(st);
  } else {
    call->Begin(id);
  }
  return call;
}

// ---- Client ------------------------------------------------------------------------------

class GrpcClient final : public Communicator {
 public:
  explicit GrpcClient(ClientOptions options) : options_(std::move(options)) {
    addresses_.push_back(options_.server);
    addresses_.insert(addresses_.end(), options_.fallback_servers.begin(),
                      options_.fallback_servers.end());
  }

  Status Connect() {
    FEDML_RETURN_IF_ERROR(CheckChunkBytes(options_.chunk_bytes));
    args_.SetMaxReceiveMessageSize(kMaxGrpcMessage);
    args_.SetMaxSendMessageSize(kMaxGrpcMessage);
    // A ping every 30 s finds a server that vanished within a long poll; the server pings too.
    args_.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args_.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                 static_cast<int>(options_.backoff_initial.count()));
    args_.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options_.backoff_max.count()));
    const Security& sec = options_.security;
    const std::string prefix = sec.certs_dir + "/client-" + std::to_string(options_.client_id);
    if (sec.insecure) {
      creds_ = grpc::InsecureChannelCredentials();
    } else {
      grpc::SslCredentialsOptions ssl;
      FEDML_ASSIGN_OR_RETURN(ssl.pem_root_certs, security::ReadTextFile(sec.certs_dir + "/ca.pem"));
      if (sec.mutual_tls) {
        FEDML_ASSIGN_OR_RETURN(ssl.pem_cert_chain, security::ReadTextFile(prefix + ".pem"));
        FEDML_ASSIGN_OR_RETURN(ssl.pem_private_key, security::ReadTextFile(prefix + ".key"));
      } else {
        FEDML_ASSIGN_OR_RETURN(token_, security::ReadTextFile(prefix + ".token", /*trim=*/true));
      }
      creds_ = grpc::SslCredentials(ssl);
      // Without an override gRPC checks the host of the address dialled, whichever one it is.
      if (!options_.server_name.empty()) args_.SetSslTargetNameOverride(options_.server_name);
    }
    Dial(0);
    FEDML_RETURN_IF_ERROR(RegisterWithRetry(Clock::now() + options_.connect_timeout));
    fetcher_ = std::thread([this] { FetchLoop(); });
    sender_ = std::thread([this] { SendLoop(); });
    return Status::Ok();
  }

  ~GrpcClient() override {
    {
      // Replies already queued (the last update) go out first, within a bound.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, Clock::now() + std::chrono::seconds(10),
                     [this] { return (outbox_.empty() && !pushing_) || !mailbox_.aborted().ok(); });
      stopping_ = true;
      if (fetch_ctx_) fetch_ctx_->TryCancel();
      if (push_ctx_) push_ctx_->TryCancel();  // an update the server will never take
    }
    cv_.notify_all();
    if (fetcher_.joinable()) fetcher_.join();
    if (sender_.joinable()) sender_.join();
  }

  int rank() const override { return options_.client_id + 1; }
  int world_size() const override { return world_size_; }
  std::string backend() const override { return "grpc"; }

  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    if (dst != 0) {
      return Status::InvalidArgument("a gRPC client sends only to the server (rank 0), not to " +
                                     std::to_string(dst));
    }
    FEDML_RETURN_IF_ERROR(mailbox_.aborted());
    {
      std::lock_guard<std::mutex> lock(mu_);
      outbox_.push_back(std::move(payload));
    }
    cv_.notify_all();
    return Status::Ok();
  }

  Result<Envelope> Recv(int source, Deadline deadline) override {
    return mailbox_.Recv(source, deadline);
  }

  void Abort(const Status& reason) override {
    mailbox_.Abort(reason);
    std::lock_guard<std::mutex> lock(mu_);
    if (fetch_ctx_) fetch_ctx_->TryCancel();
    cv_.notify_all();
  }

 private:
  using Stub = FederatedLearning::Stub;

  // The current address and its stub, as one call takes them.
  struct Target {
    std::shared_ptr<Stub> stub;
    std::string address;
  };

  Target Current() {
    std::lock_guard<std::mutex> lock(mu_);
    return {stub_, addresses_[current_]};
  }

  // Makes addresses_[index] the current address with a new channel and stub. Calls in flight
  // keep the stub they started with (each holds its own reference), so the swap never races
  // them; a push in flight to the previous address is cancelled, because the fetch thread has
  // given that address up (a failed registration there) and a push waiting for it to come back
  // (wait_for_ready, 30 minutes) would hold every later update. Push retries on the new stub.
  void Dial(std::size_t index) {
    std::shared_ptr<Stub> stub =
        FederatedLearning::NewStub(grpc::CreateCustomChannel(addresses_[index], creds_, args_));
    std::lock_guard<std::mutex> lock(mu_);
    const bool moved = stub_ != nullptr && index != current_;
    std::swap(stub_, stub);  // the previous stub goes when the last call holding it ends
    current_ = index;
    if (moved) {
      switched_ = true;
      if (push_ctx_) push_ctx_->TryCancel();
    }
  }

  // After a failed registration: the next address in turn, when there are several (only the
  // fetch thread and Connect call this, so current_ changes on one thread).
  void MoveOn() {
    if (addresses_.size() < 2) return;
    std::size_t next = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      next = (current_ + 1) % addresses_.size();
    }
    FEDML_LOG_DEBUG("client %d tries %s next", options_.client_id, addresses_[next].c_str());
    Dial(next);
  }

  // "A, B, C" for messages about all of them.
  std::string AllAddresses() const {
    std::string all;
    for (const std::string& a : addresses_) all += (all.empty() ? "" : ", ") + a;
    return all;
  }

  void AddAuth(grpc::ClientContext& ctx) const {
    if (options_.security.insecure) {
      ctx.AddMetadata(kClientIdKey, std::to_string(options_.client_id));
    } else if (!token_.empty()) {
      ctx.AddMetadata(kTokenKey, token_);
    }
  }

  static bool Fatal(grpc::StatusCode code) {
    return Refused(code) || code == grpc::StatusCode::INVALID_ARGUMENT ||
           code == grpc::StatusCode::FAILED_PRECONDITION;
  }

  // These credentials are not welcome: fatal whichever address said it.
  static bool Refused(grpc::StatusCode code) {
    return code == grpc::StatusCode::PERMISSION_DENIED || code == grpc::StatusCode::UNAUTHENTICATED;
  }

  // Sleeps for the current backoff (or until stopped) and doubles it; false when stopping.
  bool Backoff(std::chrono::milliseconds& delay) {
    std::uniform_int_distribution<int> jitter(0, static_cast<int>(delay.count() / 4) + 1);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, delay + std::chrono::milliseconds(jitter(rng_)),
                 [this] { return stopping_ || !mailbox_.aborted().ok(); });
    delay = std::min(delay * 2, options_.backoff_max);
    return !stopping_ && mailbox_.aborted().ok();
  }

  // Registers at the current address; with fallback_servers, every failed attempt (but a
  // refusal of these credentials) moves on to the next address, so the next attempt, here or
  // by the caller, dials that one.
  Status RegisterWithRetry(Deadline deadline) {
    auto delay = options_.backoff_initial;
    std::string reason;  // the last failure that was not just the deadline
    std::string reason_from;
    for (;;) {
      const Target target = Current();
      grpc::ClientContext ctx;
      AddAuth(ctx);
      ctx.set_deadline(SystemDeadline(std::min(deadline, Clock::now() + std::chrono::seconds(10))));
      // Fail fast while the channel cannot connect, so the last error names the reason (a TLS
      // handshake refused, connection refused) rather than a deadline; this loop does the retrying.
      ctx.set_wait_for_ready(false);
      fedml::service::RegisterRequest req;
      req.set_client_id(options_.client_id);
      req.set_wire_version(kWireVersion);
      fedml::service::RegisterReply reply;
      const grpc::Status st = target.stub->Register(&ctx, req, &reply);
      if (st.ok()) {
        world_size_ = reply.world_size();
        bool switched = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          switched = std::exchange(switched_, false);
        }
        if (switched) {
          FEDML_LOG_INFO("client %d registered with %s", options_.client_id,
                         target.address.c_str());
        }
        return Status::Ok();
      }
      const std::string what =
          "client " + std::to_string(options_.client_id) + " registering with " + target.address;
      if (Fatal(st.error_code())) {
        // Another address may speak this wire version; these credentials are refused anywhere.
        if (!Refused(st.error_code())) MoveOn();
        return FromGrpc(st, what + " was refused");
      }
      if (st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        reason = st.error_message();
        reason_from = target.address;
      }
      MoveOn();
      if (Clock::now() >= deadline) {
        std::string why = reason.empty() ? st.error_message() : reason;
        if (addresses_.size() > 1) {
          if (!reason.empty() && reason_from != target.address) why = reason_from + ": " + why;
          why += "; tried in turn: " + AllAddresses();
        }
        return Status::Unavailable(
            what + ": no connection within " +
            std::to_string(options_.connect_timeout.count() / 1000) + " s (" + why +
            "); is the server up, and do both sides agree on TLS / --insecure and the CA?");
      }
      if (!Backoff(delay)) return Status::Aborted("stopped while connecting");
    }
  }

  void FetchLoop() {
    Deadline unreachable_since{};
    auto delay = options_.backoff_initial;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_ || !mailbox_.aborted().ok()) return;
      }
      auto ctx = std::make_shared<grpc::ClientContext>();
      AddAuth(*ctx);
      // As long as the server allows by default (fetch_wait): the server parks the call, and a
      // lost connection ends it at once, so a long wait delays nothing.
      const auto wait = std::chrono::milliseconds(30000);
      ctx->set_deadline(SystemDeadline(Clock::now() + wait + std::chrono::seconds(30)));
      std::shared_ptr<Stub> stub;
      std::string address;
      {
        std::lock_guard<std::mutex> lock(mu_);
        fetch_ctx_ = ctx;
        stub = stub_;
        address = addresses_[current_];
      }
      FetchRequest req;
      req.set_wait_ms(static_cast<std::uint32_t>(wait.count()));
      auto reader = stub->FetchTask(ctx.get(), req);
      FrameReader frame(options_.max_frame_bytes);
      FrameChunk chunk;
      grpc::Status bad = grpc::Status::OK;
      while (bad.ok() && reader->Read(&chunk)) bad = frame.Add(chunk);
      if (!bad.ok()) ctx->TryCancel();
      const grpc::Status st = reader->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        fetch_ctx_.reset();
        if (stopping_) return;
      }
      if (st.ok() && bad.ok()) {
        unreachable_since = {};
        delay = options_.backoff_initial;
        if (frame.done()) mailbox_.Push(Envelope{0, frame.Take()});
        continue;
      }
      if (!bad.ok()) {
        mailbox_.Abort(Status::DataLoss("malformed frame from the server: " + bad.error_message()));
        return;
      }
      if (Refused(st.error_code())) {
        mailbox_.Abort(
            FromGrpc(st, "the server refused client " + std::to_string(options_.client_id)));
        return;
      }
      // Lost the server (restart, network): back off, register again (at the next address in
      // turn once this one fails, with fallback_servers), rejoin. The time unreachable counts
      // from the first loss, whichever addresses are tried since.
      if (unreachable_since == Deadline{}) {
        unreachable_since = Clock::now();
        FEDML_LOG_WARNING("client %d lost the server (%s); reconnecting", options_.client_id,
                          st.error_message().c_str());
      }
      if (Clock::now() - unreachable_since > options_.reconnect_timeout) {
        const std::string which = addresses_.size() > 1 ? "no server of " + AllAddresses() +
                                                              " reachable (last " + address + ")"
                                                        : "server " + address + " unreachable";
        mailbox_.Abort(Status::Unavailable(
            "client " + std::to_string(options_.client_id) + ": " + which + " for " +
            std::to_string(options_.reconnect_timeout.count() / 1000) +
            " s: " + st.error_message()));
        return;
      }
      if (!Backoff(delay)) return;
      const Status reg = RegisterWithRetry(Clock::now() + options_.backoff_max);
      if (reg.code() == StatusCode::kPermissionDenied) {
        mailbox_.Abort(reg);
        return;
      }
    }
  }

  void SendLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !outbox_.empty(); });
      if (outbox_.empty()) return;  // stopping with nothing left
      Bytes frame = std::move(outbox_.front());
      outbox_.pop_front();
      pushing_ = true;
      lock.unlock();
      Push(frame);
      lock.lock();
      pushing_ = false;
      cv_.notify_all();
    }
  }

  // One frame as a PushUpdate stream; a connection failure is retried a few times (the server
  // refuses it as late if the round moved on), a refusal is reported and dropped. Each attempt
  // goes to the current address (a push cancelled by a switch of address is retried there).
  void Push(const Bytes& frame) {
    auto delay = options_.backoff_initial;
    std::string address;
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto ctx = std::make_shared<grpc::ClientContext>();
      AddAuth(*ctx);
      ctx->set_wait_for_ready(true);
      ctx->set_deadline(SystemDeadline(Clock::now() + std::chrono::minutes(30)));
      std::shared_ptr<Stub> stub;
      {
        // Kept where the destructor can cancel it: waiting for a server that is gone would
        // otherwise hold this client's exit for the whole deadline. Taken with the stub, so a
        // switch of address (Dial) cancels exactly the pushes to the address it leaves.
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        push_ctx_ = ctx;
        stub = stub_;
        address = addresses_[current_];
      }
      fedml::service::PushReply reply;
      auto writer = stub->PushUpdate(ctx.get(), &reply);
      WriteFrame(frame, options_.chunk_bytes,
                 [&](const FrameChunk& c) { return writer->Write(c); });
      writer->WritesDone();
      const grpc::Status st = writer->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        push_ctx_.reset();
      }
      if (st.ok()) return;
      if (Fatal(st.error_code()) || st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        FEDML_LOG_ERROR("the server refused client %d's update: %s", options_.client_id,
                        st.error_message().c_str());
        return;
      }
      if (!Backoff(delay)) return;
    }
    FEDML_LOG_ERROR("client %d could not deliver an update to %s", options_.client_id,
                    address.c_str());
  }

  const ClientOptions options_;
  std::vector<std::string> addresses_;  // server, then fallback_servers; fixed after construction
  std::shared_ptr<grpc::ChannelCredentials> creds_;  // for every address
  grpc::ChannelArguments args_;                      // for every address
  std::string token_;                                // never logged
  std::atomic<int> world_size_{0};  // written by the fetch thread on each registration
  comm_detail::Mailbox mailbox_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_: the current address and its stub. Each call copies the stub under mu_ and
  // keeps it for the call, so Dial (fetch thread) can replace it while Push (send thread) runs.
  std::size_t current_ = 0;
  std::shared_ptr<Stub> stub_;
  bool switched_ = false;  // the address changed since the last registration (logged on success)
  std::deque<Bytes> outbox_;
  bool pushing_ = false;
  bool stopping_ = false;
  std::shared_ptr<grpc::ClientContext> fetch_ctx_;
  std::shared_ptr<grpc::ClientContext> push_ctx_;  // the push in flight, if any
  std::mt19937 rng_{std::random_device{}()};
  std::thread fetcher_;
  std::thread sender_;
};

}  // namespace

Result<std::unique_ptr<ServerCommunicator>> StartServer(const ServerOptions& options) {
  FEDML_RETURN_IF_ERROR(CheckChunkBytes(options.chunk_bytes));
  if (options.max_queued_frames < 1) {
    return Status::InvalidArgument("max_queued_frames must be at least 1 (a client's update)");
  }
  if (options.max_outbox_frames < 1) {
    return Status::InvalidArgument("max_outbox_frames must be at least 1 (a client's task)");
  }
  if (options.push_idle_timeout.count() <= 0 || options.push_timeout.count() <= 0) {
    return Status::InvalidArgument("push_idle_timeout and push_timeout must be positive");
  }
  if (options.num_clients < 1) {
    return Status::InvalidArgument("a server needs at least 1 client (num_clients " +
                                   std::to_string(options.num_clients) + ")");
  }
  std::optional<security::ClientRegistry> registry;
  if (!options.security.insecure) {
    if (options.security.certs_dir.empty()) {
      return Status::InvalidArgument(
          "TLS needs a certs folder (fedml certs --out DIR); plain text only with --insecure");
    }
    FEDML_ASSIGN_OR_RETURN(registry, security::ClientRegistry::Load(options.security.certs_dir));
  }
  auto server = std::make_unique<GrpcServer>(options, std::move(registry));
  FEDML_RETURN_IF_ERROR(server->Start());
  return std::unique_ptr<ServerCommunicator>(std::move(server));
}

Result<std::unique_ptr<Communicator>> ConnectClient(const ClientOptions& options) {
  if (!options.security.insecure && options.security.certs_dir.empty()) {
    return Status::InvalidArgument(
        "TLS needs the certs folder the server's `fedml certs` wrote; plain text only with "
        "--insecure");
  }
  for (const std::string& address : options.fallback_servers) {
    if (address.empty()) {
      return Status::InvalidArgument("fallback_servers holds an empty address (want host:port)");
    }
  }
  auto client = std::make_unique<GrpcClient>(options);
  FEDML_RETURN_IF_ERROR(client->Connect());
  return std::unique_ptr<Communicator>(std::move(client));
}

}  // namespace fedml::core::grpc_comm
