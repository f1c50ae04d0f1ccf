// gRPC communicators for deployment: one server process (rank 0) and edge clients on other hosts
// (client id N is rank N + 1), over TLS by default. The service is core/proto/fedml_service.proto:
// clients register, long-poll FetchTask for frames the server queued for them and stream their
// replies with PushUpdate, so clients need no open port and reconnect on their own.
//
// Both sides implement fedml::core::Communicator, so the round controller and the client manager
// run over them unchanged. Frames travel as chunks (chunk_bytes each), so models above
// Protobuf's 2 GiB message limit go through without raising any gRPC limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fedml/core/comm/communicator.h"

namespace fedml::core::grpc_comm {

/// Where the TLS material lives: the folder `fedml certs` writes (ca.pem, server.pem, server.key,
/// client-<id>.pem/.key/.token, tokens.txt, revoked.txt).
struct Security {
  bool insecure = false;    // plain text (warned about by the CLI); certs_dir unused
  bool mutual_tls = false;  // the server demands a client certificate signed by ca.pem
  std::string certs_dir;    // required unless insecure
};

struct ServerOptions {
  std::string address = "0.0.0.0:50051";  // port 0 picks a free port (see bound_port)
  int num_clients = 1;                    // client ids 0..num_clients-1 (ranks 1..num_clients)
  Security security;
  std::size_t chunk_bytes = std::size_t{1} << 20;  // 1 MiB: measured best of 256 KiB..16 MiB
  /// Largest frame a client may push: a push announcing more is refused (RESOURCE_EXHAUSTED)
  /// before any of it is read. Memory follows the bytes that arrive, never the size announced.
  /// `fedml server` sets it from the model (see max_update_mb in docs/configuration.md).
  std::uint64_t max_frame_bytes = std::uint64_t{16} << 30;
  /// How long a FetchTask call waits for a frame before returning empty. A waiting call is
  /// parked (no thread), so a long wait costs nothing while it lasts and keeps an idle client to
  /// one call per fetch_wait (5 s made 5,000 idle clients 1,000 calls a second).
  std::chrono::milliseconds fetch_wait{30000};
  /// A client with no call in flight for this long is taken for gone: the server's Recv sees a
  /// FINISH frame from its rank (as if it had left), and Send to it fails with UNAVAILABLE until
  /// it registers again. A client that registers again (a new connection) clears what was queued
  /// for the old one, and Recv sees a REGISTER frame from its rank (at most one unread), so a
  /// task sent before can be sent again.
  std::chrono::milliseconds liveness_timeout{15000};
  /// How long the destructor waits for queued frames (FINISH) to be fetched.
  std::chrono::milliseconds flush_timeout{5000};
  /// A PushUpdate stream that brings no chunk for this long is cancelled: the client sees
  /// CANCELLED and the round controller an ERROR from its rank naming push_idle_timeout. So a
  /// client cannot hold a stream, a server thread and a partial frame by going silent.
  std::chrono::milliseconds push_idle_timeout{30000};
  /// The longest one push may take, however steadily it trickles (cancelled as above, naming
  /// push_timeout). The client's own push deadline is 30 minutes as well.
  std::chrono::milliseconds push_timeout{30 * 60 * 1000};
  /// Frames (updates, refusal notices) from one client that may wait for the server's Recv. A
  /// push while that many wait is refused with RESOURCE_EXHAUSTED before it is read. With one
  /// PushUpdate stream per client (a second one is refused with ABORTED), one client holds at
  /// most (max_queued_frames + 1) x max_frame_bytes of the server's memory. Must be >= 1.
  std::size_t max_queued_frames = 4;
  /// Frames (tasks, protocol messages) the server may hold for one client that has not fetched
  /// them: a Send beyond that fails with UNAVAILABLE (the round drops that client's task) instead
  /// of queueing, so a client that stalls while rounds go on (cut by over-selection, say) holds
  /// at most this many models of the server's memory. Must be >= 1.
  std::size_t max_outbox_frames = 8;
};

/// Rank 0 of a deployment. Thread safety as Communicator; the gRPC threads it owns are stopped
/// by the destructor (after flushing queued frames for at most flush_timeout).
///
/// The service runs on gRPC's callback API: a connected client waiting in FetchTask is a parked
/// call (a few hundred bytes beside its connection's buffers), not a thread, so the server's
/// threads stay the same from 1 to thousands of connected clients (docs/deployment.md gives the
/// measured memory per client). Keepalive pings (every 30 s, 10 s to answer) close connections
/// whose host vanished; their calls end and the client is taken for gone. At start the process's
/// soft limit on open files is raised to its hard limit (one socket per client), with a warning
/// when even that is below num_clients.
class ServerCommunicator : public Communicator {
 public:
  /// The TCP port the server listens on (useful with port 0).
  virtual int bound_port() const = 0;
  /// Waits until at least `n` clients are registered and live, or the deadline passes
  /// (DEADLINE_EXCEEDED saying how many are there).
  virtual Status WaitForClients(int n, Deadline deadline) = 0;
  virtual int live_clients() const = 0;
  /// Whether the client at `rank` is registered and its connection alive.
  virtual bool is_live(int rank) const = 0;
};

/// Starts listening. Errors: INVALID_ARGUMENT / NOT_FOUND for bad options or certificate files,
/// UNAVAILABLE when the address cannot be bound.
Result<std::unique_ptr<ServerCommunicator>> StartServer(const ServerOptions& options);

struct ClientOptions {
  std::string server = "localhost:50051";  // host:port
  /// Other host:port addresses of the same run (an aggregation tier's other aggregators), tried
  /// in turn after `server`, round-robin, when the connection is lost (each registration retry
  /// dials the next address) or when the first registration cannot connect (rotating while
  /// connect_timeout lasts). Each is dialled with the same credentials. A refusal
  /// (PERMISSION_DENIED / UNAUTHENTICATED) from any of them is still fatal, not a reason to try
  /// the next. reconnect_timeout counts from the first loss, across all addresses. An update
  /// being pushed to the address the client leaves is cancelled and pushed again to the new one
  /// (whose server decides whether it is still wanted). After a switch the client logs
  /// "client N registered with HOST:PORT" at INFO.
  std::vector<std::string> fallback_servers;
  int client_id = 0;
  Security security;  // mutual_tls: present client-<id>.pem/.key; otherwise client-<id>.token
  /// TLS name to check the server certificate against ("" = the host part of the address being
  /// dialled: `server` or one of fallback_servers).
  std::string server_name;
  std::size_t chunk_bytes = std::size_t{1} << 20;  // 1 MiB: measured best of 256 KiB..16 MiB
  std::uint64_t max_frame_bytes = std::uint64_t{16} << 30;
  /// First registration: keep retrying (with backoff) for this long before failing.
  std::chrono::milliseconds connect_timeout{60000};
  /// Reconnect backoff after a lost connection: starts at backoff_initial, doubles up to
  /// backoff_max (with jitter); the client rejoins at whatever round the server is in.
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{5000};
  /// Give up when the server has been unreachable this long (the Recv of the caller then fails
  /// with UNAVAILABLE).
  std::chrono::milliseconds reconnect_timeout{120000};
};

/// Registers with the server (retrying until connect_timeout, through fallback_servers in turn
/// when there are any) and starts the client's fetch thread. Errors: PERMISSION_DENIED /
/// UNAUTHENTICATED when a server refuses these credentials (not retried), UNAVAILABLE naming the
/// address last tried and gRPC's reason when no connection could be made (a TLS handshake
/// refused, no server, plain text against TLS).
/// rank() is client_id + 1 and world_size() what the server said.
Result<std::unique_ptr<Communicator>> ConnectClient(const ClientOptions& options);

}  // namespace fedml::core::grpc_comm
