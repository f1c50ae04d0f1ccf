// Red team, attack 5: an authenticated client exhausts the server's memory. The hostile client
// holds a real client certificate and speaks the real protocol (the generated gRPC stub of
// fedml_service.proto over mutual TLS, frames made by the wire encoder), but it announces a
// frame far larger than it sends, trickles an endless stream, opens many PushUpdate streams (or
// FetchTask calls) at once, floods frames the server has not asked for, and sends a header whose
// maps and lists are huge for its size (decode amplification). Each test asserts that the server
// refuses the attack with a status naming the limit, holds no more memory for the attacker than the
// limit allows, and still serves an honest client.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "fedml/api/deployment.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/wire.h"
#include "fedml_service.grpc.pb.h"
#include "mtls_harness.h"

using namespace fedml;
using namespace fedml::core;
using fedml::service::FederatedLearning;
using fedml::service::FrameChunk;

namespace {

constexpr int kClients = 2;  // client 0 attacks, client 1 is honest
constexpr int kAttacker = 0;
constexpr int kHonest = 1;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

/// The server under attack: the harness's mutual-TLS server with short push deadlines, so that a
/// stalled or endless push is cut within the test's seconds.
std::unique_ptr<grpc_comm::ServerCommunicator> StartServer(const testing::TempDir& dir) {
  grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = kClients;
  so.security = {false, true, dir.File("certs")};
  so.fetch_wait = std::chrono::milliseconds(500);
  so.flush_timeout = std::chrono::milliseconds(2000);
  so.push_idle_timeout = std::chrono::milliseconds(1000);
  so.push_timeout = std::chrono::milliseconds(3000);
  so.max_queued_frames = 4;
  auto server = grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  return std::move(server).value();
}

std::string ReadFile(const std::string& path) {
  auto text = security::ReadTextFile(path);
  REQUIRE(text.ok());
  return *text;
}

/// A raw stub with client `id`'s certificate: the hostile client, below the communicator.
std::unique_ptr<FederatedLearning::Stub> HostileStub(const testing::TempDir& dir, int port,
                                                     int id) {
  grpc::SslCredentialsOptions ssl;
  const std::string prefix = dir.File("certs") + "/client-" + std::to_string(id);
  ssl.pem_root_certs = ReadFile(dir.File("certs") + "/ca.pem");
  ssl.pem_cert_chain = ReadFile(prefix + ".pem");
  ssl.pem_private_key = ReadFile(prefix + ".key");
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(ssl));
  return FederatedLearning::NewStub(channel);
}

std::chrono::system_clock::time_point In(std::chrono::milliseconds ms) {
  return std::chrono::system_clock::now() + ms;
}

FrameChunk Chunk(std::uint64_t offset, std::uint64_t frame_bytes, std::string data) {
  FrameChunk c;
  c.set_offset(offset);
  c.set_frame_bytes(frame_bytes);
  c.set_data(std::move(data));
  return c;
}

/// The process's peak virtual size (VmPeak, KiB): what was reserved, touched or not. A server
/// that reserves an announced 4 GiB raises it by 4 GiB although RSS would not show it.
std::uint64_t VmPeakKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmPeak:", 0) == 0) return std::stoull(line.substr(7));
  }
  FAIL("no VmPeak in /proc/self/status");
  return 0;
}

/// A small, valid update frame from `rank` (the wire encoder's output).
Bytes UpdateFrame(int rank, float value) {
  Message m;
  m.type = MessageType::kClientUpdate;
  m.sender = rank;
  m.round = 1;
  m.num_samples = 10;
  REQUIRE(m.model.Add("w", {4}, std::vector<float>(4, value).data()).ok());
  auto frame = Encode(m);
  REQUIRE(frame.ok());
  return std::move(frame).value();
}

/// The honest client still gets its update through, and the server reads it (skipping any
/// refusal notices the attack left for the attacker's rank).
void HonestClientIsServed(grpc_comm::ServerCommunicator& server, const testing::TempDir& dir) {
  grpc_comm::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server.bound_port());
  co.client_id = kHonest;
  co.security = {false, true, dir.File("certs")};
  co.connect_timeout = std::chrono::seconds(20);
  auto honest = grpc_comm::ConnectClient(co);
  REQUIRE(honest.ok());
  const Bytes frame = UpdateFrame(kHonest + 1, 2.0f);
  REQUIRE((*honest)->Send(0, frame).ok());
  auto got = server.Recv(kHonest + 1, DeadlineAfter(std::chrono::seconds(20)));
  REQUIRE(got.ok());
  CHECK(got->payload == frame);
}

/// The round controller learns why the attacker's push failed: an ERROR from its rank that
/// names `reason`.
void ExpectPushRefusal(grpc_comm::ServerCommunicator& server, const std::string& reason) {
  auto notice = server.Recv(kAttacker + 1, DeadlineAfter(std::chrono::seconds(5)));
  REQUIRE(notice.ok());
  auto msg = Decode(notice->payload);
  REQUIRE(msg.ok());
  CHECK(msg->type == MessageType::kError);
  CHECK_THAT(msg->attrs["error"], Catch::Contains(reason));
}

}  // namespace

TEST_CASE("a client that announces a huge frame and sends nothing is cut off without a reservation",
          "[adversarial]") {
  const testing::TempDir dir("fedml_attack_announce");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);

  const std::uint64_t peak_before = VmPeakKiB();
  grpc::ClientContext ctx;
  ctx.set_deadline(In(std::chrono::seconds(15)));  // the attacker would wait forever
  fedml::service::PushReply reply;
  auto writer = stub->PushUpdate(&ctx, &reply);
  // 4 GiB announced (under the old 16 GiB default), 1 KiB sent, then silence.
  REQUIRE(writer->Write(Chunk(0, 4 * kGiB, std::string(1024, 'x'))));
  const auto start = Clock::now();
  const grpc::Status st = writer->Finish();
  const auto took = Clock::now() - start;
  const std::uint64_t grown_kib = VmPeakKiB() - peak_before;
  INFO("push ended with " << st.error_code() << ": " << st.error_message() << " after "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms; VmPeak grew " << grown_kib / 1024 << " MiB");
  // The server, not the attacker's own deadline, ended the stream, at its push_idle_timeout.
  CHECK_FALSE(st.ok());
  CHECK(st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(took < std::chrono::seconds(10));
  // It never reserved what was announced (gRPC threads add a few MiB; 4 GiB would show).
  CHECK(grown_kib < 1024 * 1024);
  ExpectPushRefusal(*server, "push_idle_timeout");
  HonestClientIsServed(*server, dir);
}

TEST_CASE("a client that trickles an endless stream is cut off at push_timeout", "[adversarial]") {
  const testing::TempDir dir("fedml_attack_trickle");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);

  grpc::ClientContext ctx;
  ctx.set_deadline(In(std::chrono::seconds(15)));
  fedml::service::PushReply reply;
  auto writer = stub->PushUpdate(&ctx, &reply);
  // Chunks keep coming (never idle), but the announced 4 GiB would take hours at this pace.
  const std::uint64_t total = 4 * kGiB;
  std::uint64_t offset = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::seconds(12) &&
         writer->Write(Chunk(offset, total, std::string(1024, 'x')))) {
    offset += 1024;
  }
  const grpc::Status st = writer->Finish();
  const auto took = Clock::now() - start;
  INFO("push ended with " << st.error_code() << ": " << st.error_message() << " after " << offset
                          << " bytes");
  CHECK_FALSE(st.ok());
  CHECK(took < std::chrono::seconds(10));  // push_timeout is 3 s
  ExpectPushRefusal(*server, "push_timeout");
  HonestClientIsServed(*server, dir);
}

TEST_CASE("a client may hold one PushUpdate stream; more are refused at once", "[adversarial]") {
  const testing::TempDir dir("fedml_attack_streams");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);

  constexpr int kStreams = 16;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctx;
  std::vector<fedml::service::PushReply> replies(kStreams);
  std::vector<std::unique_ptr<grpc::ClientWriter<FrameChunk>>> writers;
  for (int i = 0; i < kStreams; ++i) {
    ctx.push_back(std::make_unique<grpc::ClientContext>());
    ctx.back()->set_deadline(In(std::chrono::seconds(15)));
    writers.push_back(stub->PushUpdate(ctx.back().get(), &replies[static_cast<std::size_t>(i)]));
    // Each announces 1 GiB and sends 1 KiB (a write may fail once the server refused).
    writers.back()->Write(Chunk(0, kGiB, std::string(1024, 'x')));
  }
  const auto start = Clock::now();
  int refused = 0;
  int other = 0;
  for (auto& w : writers) {
    const grpc::Status st = w->Finish();
    if (st.error_code() == grpc::StatusCode::ABORTED) {
      CHECK_THAT(st.error_message(), Catch::Contains("one push at a time"));
      ++refused;
    } else {
      INFO(st.error_code() << ": " << st.error_message());
      CHECK(st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED);
      ++other;
    }
  }
  CHECK(refused >= kStreams - 1);  // every stream but the one being read
  CHECK(other <= 1);               // that one ends at push_idle_timeout
  CHECK(Clock::now() - start < std::chrono::seconds(10));
  HonestClientIsServed(*server, dir);
}

TEST_CASE("a client may hold one FetchTask call; more are refused at once", "[adversarial]") {
  // Each long poll holds a parked call (memory, and a write on its way out) for up to
  // fetch_wait: a client with many at once would multiply what one client may hold.
  const testing::TempDir dir("fedml_attack_fetches");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(std::chrono::seconds(10)));
    fedml::service::RegisterRequest req;
    req.set_client_id(kAttacker);
    req.set_wire_version(kWireVersion);
    fedml::service::RegisterReply reply;
    const grpc::Status st = stub->Register(&ctx, req, &reply);
    REQUIRE(st.ok());
  }
  constexpr int kCalls = 16;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctx;
  std::vector<std::unique_ptr<grpc::ClientReader<FrameChunk>>> readers;
  fedml::service::FetchRequest req;
  req.set_wait_ms(60000);  // as long as the server allows (fetch_wait, 500 ms here)
  for (int i = 0; i < kCalls; ++i) {
    ctx.push_back(std::make_unique<grpc::ClientContext>());
    ctx.back()->set_deadline(In(std::chrono::seconds(15)));
    readers.push_back(stub->FetchTask(ctx.back().get(), req));
  }
  int refused = 0;
  int served = 0;
  for (auto& r : readers) {
    FrameChunk chunk;
    while (r->Read(&chunk)) {
    }
    const grpc::Status st = r->Finish();
    if (st.error_code() == grpc::StatusCode::ABORTED) {
      CHECK_THAT(st.error_message(), Catch::Contains("one at a time per client"));
      ++refused;
    } else {
      INFO(st.error_code() << ": " << st.error_message());
      CHECK(st.ok());  // an empty answer after fetch_wait
      ++served;
    }
  }
  // Calls that arrive after the held one returned may be held in turn; most are refused.
  CHECK(served >= 1);
  CHECK(refused >= kCalls / 2);
  HonestClientIsServed(*server, dir);
}

TEST_CASE("a client that floods frames finds its queue bounded", "[adversarial]") {
  const testing::TempDir dir("fedml_attack_flood");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);

  // The server reads nothing meanwhile (as between rounds); max_queued_frames is 4.
  const Bytes frame = UpdateFrame(kAttacker + 1, 1.0f);
  const std::string data(frame.begin(), frame.end());
  int accepted = 0;
  grpc::Status refusal;
  for (int i = 0; i < 64; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(std::chrono::seconds(10)));
    fedml::service::PushReply reply;
    auto writer = stub->PushUpdate(&ctx, &reply);
    writer->Write(Chunk(0, data.size(), data));
    writer->WritesDone();
    const grpc::Status st = writer->Finish();
    if (st.ok()) {
      ++accepted;
    } else {
      refusal = st;
    }
  }
  INFO("accepted " << accepted << " of 64");
  CHECK(accepted == 4);
  CHECK(refusal.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(refusal.error_message(), Catch::Contains("max_queued_frames"));
  // What the server holds for the attacker is the 4 accepted frames, no more.
  int queued = 0;
  while (server->Recv(kAttacker + 1, DeadlineAfter(std::chrono::milliseconds(200))).ok()) {
    ++queued;
  }
  CHECK(queued <= 4);
  HonestClientIsServed(*server, dir);
}

TEST_CASE("a header with huge counts of attrs, metrics, extras or tensors is refused unparsed",
          "[adversarial]") {
  const testing::TempDir dir("fedml_attack_counts");
  testing::MakeCredentials(dir, kClients);
  auto server = StartServer(dir);
  auto stub = HostileStub(dir, server->bound_port(), kAttacker);

  // Each frame is a few MB on the wire; parsed, its maps and lists would be ~20x that.
  std::vector<std::pair<std::string, Message>> frames;
  {
    Message m;
    m.type = MessageType::kClientUpdate;
    m.sender = kAttacker + 1;
    for (int i = 0; i < 200000; ++i) m.attrs[std::to_string(i)] = "";
    frames.emplace_back("attrs", std::move(m));
  }
  {
    Message m;
    m.type = MessageType::kClientUpdate;
    m.sender = kAttacker + 1;
    for (int i = 0; i < 200000; ++i) m.metrics[std::to_string(i)] = 0.0;
    frames.emplace_back("metrics", std::move(m));
  }
  {
    Message m;
    m.type = MessageType::kClientUpdate;
    m.sender = kAttacker + 1;
    for (int i = 0; i < 50000; ++i) m.extras[std::to_string(i)];
    frames.emplace_back("extras", std::move(m));
  }
  {
    Message m;
    m.type = MessageType::kClientUpdate;
    m.sender = kAttacker + 1;
    const float none = 0.0f;
    for (int i = 0; i < 200000; ++i) {
      REQUIRE(m.extras[std::to_string(i % 8)].Add(std::to_string(i), {0}, &none).ok());
    }
    frames.emplace_back("tensors", std::move(m));
  }
  for (auto& [what, message] : frames) {
    CAPTURE(what);
    auto encoded = Encode(message);
    REQUIRE(encoded.ok());
    const std::string data(encoded->begin(), encoded->end());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(std::chrono::seconds(10)));
    fedml::service::PushReply reply;
    auto writer = stub->PushUpdate(&ctx, &reply);
    for (std::size_t off = 0; off < data.size(); off += 1 << 20) {
      if (!writer->Write(Chunk(off, data.size(), data.substr(off, 1 << 20)))) break;
    }
    writer->WritesDone();
    REQUIRE(writer->Finish().ok());  // the bytes are within every size limit
    // The round controller decodes what arrived with its limits (the defaults here).
    auto got = server->Recv(kAttacker + 1, DeadlineAfter(std::chrono::seconds(10)));
    REQUIRE(got.ok());
    auto decoded = Decode(got->payload);
    INFO(decoded.status().ToString());
    CHECK(decoded.status().code() == StatusCode::kResourceExhausted);
    CHECK_THAT(decoded.status().message(), Catch::Contains("max_"));
  }
  HonestClientIsServed(*server, dir);
}

TEST_CASE("the update limit derived from the model admits an honest update with side payloads",
          "[adversarial]") {
  // 4 MiB of parameters in 1000 tensors with long names (the names count too).
  ModelState model;
  const std::vector<float> values(1024, 0.5f);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(model
                .Add("layer" + std::to_string(i) + ".some_long_module_path.weight", {32, 32},
                     values.data())
                .ok());
  }
  const std::uint64_t limit = api::UpdateLimitForModel(api::ModelWireBytes(model));
  // What one honest update may carry at most: the model, SCAFFOLD's control-variate delta,
  // verification's next checkpoint, secure aggregation's masked input (4 bytes a parameter).
  Message m;
  m.type = MessageType::kClientUpdate;
  m.sender = 1;
  m.num_samples = 100;
  m.model = model;
  m.extras["scaffold_delta_c"] = model;
  m.extras["verify_next"] = model;
  m.blob.assign(4 * model.numel(), 'm');
  for (int i = 0; i < 16; ++i) m.metrics["metric" + std::to_string(i)] = i;
  for (int i = 0; i < 16; ++i) m.attrs["attr" + std::to_string(i)] = std::string(256, 'a');
  auto frame = Encode(m);
  REQUIRE(frame.ok());
  INFO("frame " << frame->size() << " bytes, limit " << limit);
  CHECK(frame->size() <= limit);
  DecodeLimits limits;
  limits.max_frame_bytes = limit;
  CHECK(Decode(*frame, limits).ok());
  // And far below the 16 GiB any model could need.
  CHECK(limit < (std::uint64_t{128} << 20));
}
