// The gRPC communicators on loopback: frames of every size class both ways, and pushes that are
// malformed at the stream level (gaps, truncation, overruns, over the size limit), sent with the
// raw generated stub, each refused with a status that names the problem while the server goes on
// serving a well-behaved client.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <string>

#include "fedml/core/comm/grpc.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/wire.h"
#include "fedml_service.grpc.pb.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::core;
using fedml::service::FederatedLearning;
using fedml::service::FrameChunk;

namespace {

Deadline Soon() { return DeadlineAfter(std::chrono::seconds(20)); }

std::vector<std::uint8_t> Pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 31);
  return v;
}

grpc_comm::ServerOptions InsecureServer(int clients) {
  grpc_comm::ServerOptions o;
  o.address = "127.0.0.1:0";
  o.num_clients = clients;
  o.security.insecure = true;
  o.chunk_bytes = 1 << 16;  // many chunks per frame
  o.max_frame_bytes = 8 << 20;
  o.fetch_wait = std::chrono::milliseconds(500);
  o.flush_timeout = std::chrono::milliseconds(2000);
  // The malformed-push test leaves one refusal notice per case unread before it reads them all.
  o.max_queued_frames = 16;
  return o;
}

grpc_comm::ClientOptions InsecureClient(int port, int id) {
  grpc_comm::ClientOptions o;
  o.server = "127.0.0.1:" + std::to_string(port);
  o.client_id = id;
  o.security.insecure = true;
  o.chunk_bytes = 1 << 16;
  o.connect_timeout = std::chrono::seconds(20);
  return o;
}

// Pushes `chunks` as client `id` with the raw stub and returns the server's status.
grpc::Status RawPush(int port, int id, const std::vector<FrameChunk>& chunks) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = FederatedLearning::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-fedml-client-id", std::to_string(id));
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  fedml::service::PushReply reply;
  auto writer = stub->PushUpdate(&ctx, &reply);
  for (const auto& c : chunks) {
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

FrameChunk Chunk(std::uint64_t offset, std::uint64_t total, std::size_t len) {
  FrameChunk c;
  c.set_offset(offset);
  c.set_frame_bytes(total);
  c.set_data(std::string(len, 'x'));
  return c;
}

}  // namespace

TEST_CASE("gRPC frames of every size class travel both ways", "[grpc]") {
  auto server = grpc_comm::StartServer(InsecureServer(2));
  REQUIRE(server.ok());
  const int port = (*server)->bound_port();
  REQUIRE(port > 0);
  auto c0 = grpc_comm::ConnectClient(InsecureClient(port, 0));
  auto c1 = grpc_comm::ConnectClient(InsecureClient(port, 1));
  REQUIRE(c0.ok());
  REQUIRE(c1.ok());
  CHECK((*c0)->rank() == 1);
  CHECK((*c1)->world_size() == 3);
  REQUIRE((*server)->WaitForClients(2, Soon()).ok());
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1} << 16,
                           (std::size_t{1} << 16) + 1, std::size_t{5} << 20}) {
    CAPTURE(size);
    const auto down = Pattern(size, 3);
    REQUIRE((*server)->Send(2, down).ok());
    auto got = (*c1)->Recv(0, Soon());
    REQUIRE(got.ok());
    CHECK(got->payload == down);
    const auto up = Pattern(size, 9);
    REQUIRE((*c0)->Send(0, up).ok());
    auto back = (*server)->Recv(kAnySource, Soon());
    REQUIRE(back.ok());
    CHECK(back->source == 1);
    CHECK(back->payload == up);
  }
  CHECK((*server)->Send(3, {}).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("malformed pushes are refused with a reason and the server keeps serving", "[grpc]") {
  auto server = grpc_comm::StartServer(InsecureServer(2));
  REQUIRE(server.ok());
  const int port = (*server)->bound_port();
  auto good = grpc_comm::ConnectClient(InsecureClient(port, 0));
  REQUIRE(good.ok());

  struct Case {
    const char* name;
    std::vector<FrameChunk> chunks;
    grpc::StatusCode code;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"gap",
       {Chunk(0, 3000, 1000), Chunk(2000, 3000, 1000)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "a gap or a repeat"},
      {"repeat",
       {Chunk(0, 3000, 1000), Chunk(0, 3000, 1000)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "a gap or a repeat"},
      {"truncated", {Chunk(0, 3000, 1000)}, grpc::StatusCode::INVALID_ARGUMENT, "truncated"},
      {"overrun", {Chunk(0, 1000, 1500)}, grpc::StatusCode::INVALID_ARGUMENT, "run past"},
      {"not from 0", {Chunk(10, 1000, 990)}, grpc::StatusCode::INVALID_ARGUMENT, "start at 0"},
      {"size changes",
       {Chunk(0, 2000, 1000), Chunk(1000, 3000, 1000)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "announces"},
      {"over the limit",
       {Chunk(0, std::uint64_t{1} << 40, 10)},
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       "over the limit"},
      {"empty", {}, grpc::StatusCode::INVALID_ARGUMENT, "empty stream"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const grpc::Status st = RawPush(port, 1, c.chunks);
    CHECK(st.error_code() == c.code);
    CHECK_THAT(st.error_message(), Catch::Contains(c.says));
  }
  // An unknown client id is refused before anything is read.
  const grpc::Status stranger = RawPush(port, 7, {Chunk(0, 10, 10)});
  CHECK(stranger.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(stranger.error_message(), Catch::Contains("not one of this run's clients"));

  // None of the bytes reached the server's inbox: each refusal arrives as an ERROR from the
  // pusher's rank (so a round controller ends that client's task at once), in order.
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto note = (*server)->Recv(2, Soon());
    REQUIRE(note.ok());
    auto msg = Decode(note->payload);
    REQUIRE(msg.ok());
    CHECK(msg->type == MessageType::kError);
    CHECK_THAT(msg->attrs["error"],
               Catch::Contains("refused by the server") && Catch::Contains(c.says));
  }
  // The good client's frame arrives intact.
  const auto frame = Pattern(200000, 5);
  REQUIRE((*good)->Send(0, frame).ok());
  auto got = (*server)->Recv(1, Soon());
  REQUIRE(got.ok());
  CHECK(got->payload == frame);
}

TEST_CASE("a client with a token the server does not know is refused at once", "[grpc]") {
  fedml::testing::TempDir dir("grpc_creds");
  fedml::testing::TempDir other("grpc_other");
  security::CertOptions certs;
  certs.out_dir = dir.path();
  certs.clients = 2;
  REQUIRE(security::GenerateCredentials(certs).ok());
  certs.out_dir = other.path();
  REQUIRE(security::GenerateCredentials(certs).ok());

  grpc_comm::ServerOptions so = InsecureServer(2);
  so.security = {false, false, dir.path()};
  auto server = grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  const int port = (*server)->bound_port();

  grpc_comm::ClientOptions co = InsecureClient(port, 1);
  co.server = "localhost:" + std::to_string(port);
  co.security = {false, false, dir.path()};
  auto ok = grpc_comm::ConnectClient(co);
  REQUIRE(ok.ok());  // TLS with the right CA and token

  // The same CA (so TLS succeeds) but another folder's token for client 0.
  const std::string foreign_token = other.File("client-0.token");
  const std::string mine = dir.File("client-0.token");
  std::filesystem::copy_file(foreign_token, mine,
                             std::filesystem::copy_options::overwrite_existing);
  co.client_id = 0;
  const auto t0 = Clock::now();
  auto refused = grpc_comm::ConnectClient(co);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(refused.status().message(), Catch::Contains("unknown client token"));
  CHECK(Clock::now() - t0 < co.connect_timeout);  // not retried until the deadline
}

TEST_CASE(
    "a client that does not fetch is queued at most max_outbox_frames; a re-registration "
    "tells the server's Recv once",
    "[grpc]") {
  grpc_comm::ServerOptions so = InsecureServer(1);
  so.max_outbox_frames = 3;
  auto server = grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->bound_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = FederatedLearning::NewStub(channel);
  auto call = [](grpc::ClientContext& ctx) {
    ctx.AddMetadata("x-fedml-client-id", "0");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  };
  auto register_once = [&] {
    grpc::ClientContext ctx;
    call(ctx);
    fedml::service::RegisterRequest req;
    req.set_client_id(0);
    req.set_wire_version(kWireVersion);
    fedml::service::RegisterReply reply;
    return stub->Register(&ctx, req, &reply);
  };
  REQUIRE(register_once().ok());  // registered, and never fetches

  for (std::uint8_t i = 0; i < 3; ++i) REQUIRE((*server)->Send(1, Pattern(100, i)).ok());
  const Status full = (*server)->Send(1, Pattern(100, 9));
  CHECK(full.code() == StatusCode::kUnavailable);
  CHECK_THAT(full.message(), Catch::Contains("max_outbox_frames 3"));
  CHECK((*server)->is_live(1));  // still connected: only nothing more is queued

  // The first queued frame is fetched whole; then there is room for one more.
  {
    grpc::ClientContext ctx;
    call(ctx);
    fedml::service::FetchRequest req;
    req.set_wait_ms(1000);
    auto reader = stub->FetchTask(&ctx, req);
    std::string got;
    FrameChunk chunk;
    while (reader->Read(&chunk)) got += chunk.data();
    REQUIRE(reader->Finish().ok());
    const auto first = Pattern(100, 0);
    CHECK(got == std::string(first.begin(), first.end()));
  }
  CHECK((*server)->Send(1, Pattern(100, 10)).ok());

  // Registering again clears the queue, and the server's Recv sees one REGISTER from the rank
  // however often it happens (the first registration is not a rejoin).
  for (int i = 0; i < 3; ++i) REQUIRE(register_once().ok());
  auto notice = (*server)->Recv(1, Soon());
  REQUIRE(notice.ok());
  auto msg = Decode(notice->payload);
  REQUIRE(msg.ok());
  CHECK(msg->type == MessageType::kRegister);
  CHECK((*server)->Recv(1, DeadlineAfter(std::chrono::milliseconds(300))).status().code() ==
        StatusCode::kDeadlineExceeded);
  for (std::uint8_t i = 0; i < 3; ++i) CHECK((*server)->Send(1, Pattern(100, i)).ok());
}

// Failover (ClientOptions::fallback_servers), as an aggregation tier needs it: a client whose
// aggregator dies rejoins through another one.

namespace {

std::string Loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

// A loopback port nothing listens on: a server's, stopped.
int StoppedServerPort() {
  auto gone = grpc_comm::StartServer(InsecureServer(1));
  REQUIRE(gone.ok());
  return (*gone)->bound_port();
}

// Sends a frame from `server` to rank 1 and one back from `client`; both must arrive intact.
void RoundTrip(grpc_comm::ServerCommunicator& server, Communicator& client) {
  const auto down = Pattern(100000, 7);
  REQUIRE(server.Send(1, down).ok());
  auto got = client.Recv(0, Soon());
  REQUIRE(got.ok());
  CHECK(got->payload == down);
  const auto up = Pattern(70000, 11);
  REQUIRE(client.Send(0, up).ok());
  auto back = server.Recv(1, Soon());
  REQUIRE(back.ok());
  CHECK(back->payload == up);
}

}  // namespace

TEST_CASE("a client whose server stops registers with its fallback server and is served there",
          "[grpc]") {
  auto a = grpc_comm::StartServer(InsecureServer(1));
  auto b = grpc_comm::StartServer(InsecureServer(1));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  grpc_comm::ClientOptions co = InsecureClient((*a)->bound_port(), 0);
  co.fallback_servers = {Loopback((*b)->bound_port())};
  auto client = grpc_comm::ConnectClient(co);
  REQUIRE(client.ok());
  REQUIRE((*a)->WaitForClients(1, Soon()).ok());
  CHECK((*a)->is_live(1));
  CHECK((*b)->live_clients() == 0);  // the fallback is not dialled while the server serves

  (*a).reset();  // server A stops: its calls end and its port closes
  REQUIRE((*b)->WaitForClients(1, Soon()).ok());
  CHECK((*b)->is_live(1));
  RoundTrip(**b, **client);
}

TEST_CASE("a client whose server is down at first connect registers with its fallback", "[grpc]") {
  const int dead = StoppedServerPort();
  auto b = grpc_comm::StartServer(InsecureServer(1));
  REQUIRE(b.ok());
  grpc_comm::ClientOptions co = InsecureClient(dead, 0);
  co.fallback_servers = {Loopback((*b)->bound_port())};
  auto client = grpc_comm::ConnectClient(co);
  REQUIRE(client.ok());
  CHECK((*client)->world_size() == 2);
  REQUIRE((*b)->WaitForClients(1, Soon()).ok());
  RoundTrip(**b, **client);
}

TEST_CASE("a refusal from a fallback server is fatal and no server up names every address",
          "[grpc]") {
  const int dead = StoppedServerPort();
  const int dead_too = StoppedServerPort();

  SECTION("refused by the fallback") {
    auto b = grpc_comm::StartServer(InsecureServer(1));  // client ids 0..0: 3 is no client
    REQUIRE(b.ok());
    grpc_comm::ClientOptions co = InsecureClient(dead, 3);
    co.fallback_servers = {Loopback((*b)->bound_port())};
    const auto t0 = Clock::now();
    auto refused = grpc_comm::ConnectClient(co);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kPermissionDenied);
    CHECK_THAT(refused.status().message(),
               Catch::Contains("registering with " + Loopback((*b)->bound_port())) &&
                   Catch::Contains("not one of this run's clients"));
    CHECK(Clock::now() - t0 < co.connect_timeout);  // not retried until the deadline
  }
  SECTION("nothing up") {
    grpc_comm::ClientOptions co = InsecureClient(dead, 0);
    co.fallback_servers = {Loopback(dead_too)};
    co.connect_timeout = std::chrono::milliseconds(1500);
    auto none = grpc_comm::ConnectClient(co);
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().code() == StatusCode::kUnavailable);
    CHECK_THAT(none.status().message(),
               Catch::Contains("no connection within") &&
                   Catch::Contains("tried in turn: " + Loopback(dead) + ", " + Loopback(dead_too)));
  }
  SECTION("an empty fallback address") {
    grpc_comm::ClientOptions co = InsecureClient(dead, 0);
    co.fallback_servers = {""};
    CHECK(grpc_comm::ConnectClient(co).status().code() == StatusCode::kInvalidArgument);
  }
}
