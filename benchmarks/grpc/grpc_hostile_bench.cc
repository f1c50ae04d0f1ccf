// A server under 8 hostile authenticated clients (red team, attack 5): until the honest round is
// over, each announces a frame over the server's limit, opens an update it never finishes, opens
// more PushUpdate streams while that one hangs, and floods frames of the largest allowed size.
// Meanwhile two honest clients get a task with the model and push their updates back. The
// server's peak resident memory (VmHWM, the server alone: the clients run in a child process)
// must stay under
//
//   bound = baseline + 8 x (max_queued_frames + 1.5) x limit + 4 x model + 128 MiB
//
// (each hostile client holds at most its queue and one push, whose buffer grows geometrically:
// 1.5 x while it moves; the honest round moves a task and an update per honest client; 128 MiB
// for gRPC, TLS and allocator slack), and the honest round must finish.
//
//   build/bin/grpc_hostile_bench [--model_mb 16] [--limit_mb 96] [--queue 4] [--idle_ms 2000]
//
// Exits 1 when the honest round fails or the peak exceeds the bound. --limit_mb defaults to
// what `fedml server` derives for the model (UpdateLimitForModel: 4 x model + 64 MiB).
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/comm/grpc.h"
#include "fedml/core/security/credentials.h"
#include "fedml_service.grpc.pb.h"

using namespace fedml;
using namespace fedml::core;
using fedml::service::FederatedLearning;
using fedml::service::FrameChunk;

namespace {

constexpr int kHostile = 8;
constexpr int kHonest = 2;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

std::uint64_t StatusKiB(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(k, 0) == 0) return std::stoull(line.substr(k.size()));
  }
  return 0;
}

std::string ReadFileOrDie(const std::string& path) {
  auto text = security::ReadTextFile(path);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    std::exit(2);
  }
  return *text;
}

FrameChunk Chunk(std::uint64_t offset, std::uint64_t total, const std::string& data) {
  FrameChunk c;
  c.set_offset(offset);
  c.set_frame_bytes(total);
  c.set_data(data);
  return c;
}

std::chrono::system_clock::time_point In(std::chrono::milliseconds ms) {
  return std::chrono::system_clock::now() + ms;
}

struct Params {
  std::uint64_t model_bytes;
  std::uint64_t limit;
  std::string certs;
  int port;
  std::chrono::milliseconds idle;
};

// One hostile client; returns after its attacks, each bounded by a deadline. Counts refusals.
// `hanging` counts the hostile clients whose unfinished push is open (step 2).
void Hostile(const Params& p, int id, std::atomic<int>& refused, std::atomic<int>& hanging,
             const std::atomic<bool>& stop) {
  grpc::SslCredentialsOptions ssl;
  const std::string prefix = p.certs + "/client-" + std::to_string(id);
  ssl.pem_root_certs = ReadFileOrDie(p.certs + "/ca.pem");
  ssl.pem_cert_chain = ReadFileOrDie(prefix + ".pem");
  ssl.pem_private_key = ReadFileOrDie(prefix + ".key");
  auto stub = FederatedLearning::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(p.port), grpc::SslCredentials(ssl)));
  const std::string mib(kMiB, 'x');
  const auto deadline = p.idle * 4 + std::chrono::seconds(30);
  // Pushes `total` announced bytes, sending `send` of them; true when the server took it.
  auto push = [&](std::uint64_t total, std::uint64_t send, bool finish) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(deadline));
    fedml::service::PushReply reply;
    auto w = stub->PushUpdate(&ctx, &reply);
    for (std::uint64_t off = 0; off < send;) {
      const std::uint64_t n = std::min<std::uint64_t>(kMiB, send - off);
      if (!w->Write(Chunk(off, total, mib.substr(0, n)))) break;
      off += n;
    }
    if (finish) w->WritesDone();
    const grpc::Status st = w->Finish();  // an unfinished push: the server cuts it
    if (!st.ok()) ++refused;
    return st.ok();
  };
  bool first = true;
  do {  // until the honest clients are done (at least once)
    // 1. A frame over the limit, announced (refused before it is read).
    push(p.limit * 4, kMiB, true);
    // 2. An update announced at the limit that stops one MiB short, with more streams opened
    //    while it hangs (refused at once: one push at a time).
    std::thread hang([&] { push(p.limit, p.limit - kMiB, false); });
    if (first) ++hanging;
    first = false;
    for (int i = 0; i < 4; ++i) push(p.limit, kMiB, false);
    hang.join();
    // 3. A flood of frames at the limit, until the server refuses them.
    for (int i = 0; i < 64 && push(p.limit, p.limit, true); ++i) {
    }
  } while (!stop);
}

// The child: honest clients answer their task; hostile clients attack. Exit code 0 when every
// honest client got its task and sent its update.
int Clients(const Params& p) {
  std::atomic<int> refused{0};
  std::atomic<int> hanging{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> hostile;
  for (int id = 0; id < kHostile; ++id) {
    hostile.emplace_back([&, id] { Hostile(p, id, refused, hanging, stop); });
  }
  // The honest round starts once every hostile client is attacking (bounded: each has sent its
  // over-limit frames by then, or failed to connect and counts as never hanging).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (hanging < kHostile && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  std::atomic<int> honest_ok{0};
  std::vector<std::thread> honest;
  for (int h = 0; h < kHonest; ++h) {
    honest.emplace_back([&, id = kHostile + h] {
      grpc_comm::ClientOptions co;
      co.server = "127.0.0.1:" + std::to_string(p.port);
      co.client_id = id;
      co.security = {false, true, p.certs};
      co.connect_timeout = std::chrono::seconds(30);
      auto comm = grpc_comm::ConnectClient(co);
      if (!comm.ok()) {
        std::fprintf(stderr, "honest client %d: %s\n", id, comm.status().ToString().c_str());
        return;
      }
      auto task = (*comm)->Recv(0, DeadlineAfter(std::chrono::seconds(120)));
      if (!task.ok()) {
        std::fprintf(stderr, "honest client %d: %s\n", id, task.status().ToString().c_str());
        return;
      }
      if ((*comm)->Send(0, std::move(task->payload)).ok()) ++honest_ok;  // its "update"
      (void)(*comm)->Recv(0, DeadlineAfter(std::chrono::seconds(120)));  // FINISH: round over
    });
  }
  for (auto& t : honest) t.join();
  stop = true;
  for (auto& t : hostile) t.join();
  std::printf("hostile pushes refused or cut: %d\n", refused.load());
  std::fflush(stdout);  // the caller leaves with _exit
  return honest_ok == kHonest ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"a gRPC server under 8 hostile clients: peak memory and the honest round"};
  double model_mb = 16;
  double limit_mb = 0;
  std::size_t queue = 4;
  int idle_ms = 2000;
  app.add_option("--model_mb", model_mb, "the honest clients' model size");
  app.add_option("--limit_mb", limit_mb, "max_frame_bytes (0: 4 x model + 64 MiB)");
  app.add_option("--queue", queue, "max_queued_frames");
  app.add_option("--idle_ms", idle_ms, "push_idle_timeout");
  CLI11_PARSE(app, argc, argv);
  Params p;
  p.model_bytes = static_cast<std::uint64_t>(model_mb * kMiB);
  p.limit =
      limit_mb > 0 ? static_cast<std::uint64_t>(limit_mb * kMiB) : 4 * p.model_bytes + 64 * kMiB;
  p.idle = std::chrono::milliseconds(idle_ms);
  char dir[] = "/tmp/fedml_hostile_XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  p.certs = std::string(dir) + "/certs";
  security::CertOptions certs;
  certs.out_dir = p.certs;
  certs.clients = kHostile + kHonest;
  if (!security::GenerateCredentials(certs).ok()) return 2;

  // The clients run in a child (forked before gRPC starts here), so VmHWM is the server's.
  int to_child[2];
  if (pipe(to_child) != 0) return 2;
  const pid_t child = fork();
  if (child == 0) {
    close(to_child[1]);
    if (read(to_child[0], &p.port, sizeof p.port) != sizeof p.port) _exit(2);
    _exit(Clients(p));
  }
  close(to_child[0]);

  grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = kHostile + kHonest;
  so.security = {false, true, p.certs};
  so.max_frame_bytes = p.limit;
  so.max_queued_frames = queue;
  so.push_idle_timeout = p.idle;
  so.flush_timeout = std::chrono::seconds(10);
  auto server = grpc_comm::StartServer(so);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 2;
  }
  const double baseline_mib = static_cast<double>(StatusKiB("VmRSS")) / 1024;
  p.port = (*server)->bound_port();
  if (write(to_child[1], &p.port, sizeof p.port) != sizeof p.port) return 2;

  // During the round the server reads and drops what the hostile clients queue, as a round
  // controller drops frames it did not ask for: so they can push without end, and what the
  // server holds for them is what is in flight plus what waits between two reads.
  std::atomic<bool> round_over{false};
  std::thread drain([&] {
    while (!round_over) {
      for (int r = 1; r <= kHostile; ++r) {
        (void)(*server)->Recv(r, DeadlineAfter(std::chrono::milliseconds(10)));
      }
    }
  });
  // The honest round: a task with the model to each honest client, its update back.
  const auto start = std::chrono::steady_clock::now();
  bool round_ok = (*server)->WaitForClients(kHonest, DeadlineAfter(std::chrono::seconds(60))).ok();
  for (int h = 0; round_ok && h < kHonest; ++h) {
    round_ok = (*server)->Send(kHostile + h + 1, Bytes(p.model_bytes, 7)).ok();
  }
  for (int h = 0; round_ok && h < kHonest; ++h) {
    auto update = (*server)->Recv(kHostile + h + 1, DeadlineAfter(std::chrono::seconds(120)));
    round_ok = update.ok() && update->payload.size() == p.model_bytes;
    if (!update.ok()) std::fprintf(stderr, "%s\n", update.status().ToString().c_str());
  }
  const double round_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  round_over = true;
  drain.join();
  for (int h = 0; h < kHonest; ++h) (void)(*server)->Send(kHostile + h + 1, Bytes{1});
  int child_status = 0;
  waitpid(child, &child_status, 0);  // the hostile clients end at their deadlines
  const double peak_mib = static_cast<double>(StatusKiB("VmHWM")) / 1024;
  server->reset();  // stops the gRPC threads
  std::filesystem::remove_all(dir);

  const double limit_mib = static_cast<double>(p.limit) / kMiB;
  const double bound_mib =
      baseline_mib + kHostile * (static_cast<double>(queue) + 1.5) * limit_mib + 4 * model_mb + 128;
  const bool clients_ok = WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0;
  std::printf(
      "model %.0f MiB, limit %.0f MiB, max_queued_frames %zu, push_idle_timeout %d ms\n"
      "honest round: %s in %.1f s; server peak RSS (VmHWM) %.0f MiB, baseline %.0f MiB, "
      "bound %.0f MiB: %s\n",
      model_mb, limit_mib, queue, idle_ms, round_ok && clients_ok ? "done" : "FAILED", round_s,
      peak_mib, baseline_mib, bound_mib, peak_mib <= bound_mib ? "within" : "EXCEEDED");
  return round_ok && clients_ok && peak_mib <= bound_mib ? 0 : 1;
}
