// Pushing a model from a client to the server over fedml's gRPC communicators on loopback, against
// a plain TCP socket transfer of the same bytes in the same run; and the peak memory of both sides.
//
//   build/bin/grpc_push_bench [--mb 100] [--large 1024,3072] [--chunk_kb 1024]
//
// Every transfer runs in two fresh processes (sender and receiver), so each side's peak resident
// memory (VmHWM) belongs to that transfer alone. Time runs from the sender starting its send to
// the receiver's one-byte acknowledgement. Goals: gRPC >= 0.5 of TCP without TLS, >= 0.3 with TLS;
// peak memory on either side no more than about 2x the model.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fedml/core/comm/grpc.h"
#include "fedml/core/security/credentials.h"

using namespace fedml;
using namespace fedml::core;

namespace {

std::size_t g_chunk_bytes = std::size_t{1} << 20;  // --chunk_kb (the communicators' default)

// Peak resident set of this process in bytes.
double PeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  }
  return 0.0;
}

struct Report {  // written by a child to its pipe
  double seconds = 0;
  double peak = 0;
  int port = 0;
  int ok = 0;
};

void WriteAll(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w <= 0) std::_Exit(9);
    c += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool ReadAll(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Runs `body(report_fd)` in a child process; returns its pid.
template <class Body>
pid_t Spawn(int report_fd, Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body(report_fd);
    std::_Exit(0);
  }
  return pid;
}

Report Collect(int fd) {
  Report r;
  if (!ReadAll(fd, &r, sizeof(r))) r.ok = 0;
  return r;
}

// ---- Plain TCP: the baseline ---------------------------------------------------------------

struct Pair {
  Report sender, receiver;
};

Pair TcpTransfer(std::size_t bytes) {
  int to_recv[2], from_recv[2], from_send[2];
  if (::pipe(to_recv) != 0 || ::pipe(from_recv) != 0 || ::pipe(from_send) != 0) std::exit(2);
  const pid_t receiver = Spawn(from_recv[1], [&](int out) {
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(ls, 1);
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
    Report r;
    r.port = ntohs(addr.sin_port);
    WriteAll(out, &r.port, sizeof(r.port));
    const int s = ::accept(ls, nullptr, nullptr);
    std::vector<char> buf(bytes);  // the receiver holds the model, as the server does
    r.ok = ReadAll(s, buf.data(), bytes) ? 1 : 0;
    const char ack = 1;
    WriteAll(s, &ack, 1);
    r.peak = PeakRss();
    WriteAll(out, &r, sizeof(r));
    ::close(s);
  });
  int port = 0;
  ReadAll(from_recv[0], &port, sizeof(port));
  const pid_t sender = Spawn(from_send[1], [&](int out) {
    std::vector<char> buf(bytes, 7);
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    Report r;
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::_Exit(3);
    const auto t0 = Clock::now();
    WriteAll(s, buf.data(), bytes);
    char ack = 0;
    r.ok = ReadAll(s, &ack, 1) ? 1 : 0;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.peak = PeakRss();
    WriteAll(out, &r, sizeof(r));
  });
  Pair p{Collect(from_send[0]), Collect(from_recv[0])};
  ::waitpid(sender, nullptr, 0);
  ::waitpid(receiver, nullptr, 0);
  for (int fd : {to_recv[0], to_recv[1], from_recv[0], from_recv[1], from_send[0], from_send[1]}) {
    ::close(fd);
  }
  return p;
}

// ---- fedml over gRPC -----------------------------------------------------------------------

Pair GrpcTransfer(std::size_t bytes, const grpc_comm::Security& security) {
  int from_server[2], from_client[2];
  if (::pipe(from_server) != 0 || ::pipe(from_client) != 0) std::exit(2);
  const pid_t server = Spawn(from_server[1], [&](int out) {
    grpc_comm::ServerOptions o;
    o.address = "127.0.0.1:0";
    o.num_clients = 1;
    o.security = security;
    o.chunk_bytes = g_chunk_bytes;
    Report r;
    auto s = grpc_comm::StartServer(o);
    if (!s.ok()) {
      std::fprintf(stderr, "server: %s\n", s.status().ToString().c_str());
      std::_Exit(4);
    }
    r.port = (*s)->bound_port();
    WriteAll(out, &r.port, sizeof(r.port));
    auto got = (*s)->Recv(kAnySource, DeadlineAfter(std::chrono::minutes(10)));
    r.ok = got.ok() && got->payload.size() == bytes ? 1 : 0;
    (void)(*s)->Send(1, {1});  // the acknowledgement
    r.peak = PeakRss();
    s->reset();
    WriteAll(out, &r, sizeof(r));
  });
  int port = 0;
  ReadAll(from_server[0], &port, sizeof(port));
  const pid_t client = Spawn(from_client[1], [&](int out) {
    grpc_comm::ClientOptions o;
    o.server = "localhost:" + std::to_string(port);
    o.client_id = 0;
    o.security = security;
    o.chunk_bytes = g_chunk_bytes;
    Report r;
    auto c = grpc_comm::ConnectClient(o);
    if (!c.ok()) {
      std::fprintf(stderr, "client: %s\n", c.status().ToString().c_str());
      std::_Exit(5);
    }
    std::vector<std::uint8_t> payload(bytes, 7);
    const auto t0 = Clock::now();
    (void)(*c)->Send(0, std::move(payload));
    auto ack = (*c)->Recv(0, DeadlineAfter(std::chrono::minutes(10)));
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.ok = ack.ok() ? 1 : 0;
    r.peak = PeakRss();
    WriteAll(out, &r, sizeof(r));
    std::_Exit(0);  // the server is finishing; no need to wait for a goodbye
  });
  Pair p{Collect(from_client[0]), Collect(from_server[0])};
  ::waitpid(client, nullptr, 0);
  ::waitpid(server, nullptr, 0);
  for (int fd : {from_server[0], from_server[1], from_client[0], from_client[1]}) ::close(fd);
  return p;
}

double Rate(std::size_t bytes, const Report& r) { return static_cast<double>(bytes) / r.seconds; }

}  // namespace

int main(int argc, char** argv) {
  std::size_t mb = 100;
  std::vector<std::size_t> large;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mb") mb = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--chunk_kb") g_chunk_bytes = std::strtoull(argv[i + 1], nullptr, 10) << 10;
    if (flag == "--large") {
      std::stringstream list(argv[i + 1]);
      std::string item;
      while (std::getline(list, item, ','))
        large.push_back(std::strtoull(item.c_str(), nullptr, 10));
    }
  }
  char dir_template[] = "/tmp/fedml_bench_certsXXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  security::CertOptions certs;
  certs.out_dir = dir ? dir : "";
  certs.clients = 1;
  if (!dir || !security::GenerateCredentials(certs).ok()) {
    std::fprintf(stderr, "error: cannot make certificates in /tmp\n");
    return 1;
  }
  const grpc_comm::Security plain{true, false, ""};
  const grpc_comm::Security tls{false, false, certs.out_dir};

  const std::size_t bytes = mb << 20;
  const Pair tcp = TcpTransfer(bytes);
  const Pair insecure = GrpcTransfer(bytes, plain);
  const Pair secure = GrpcTransfer(bytes, tls);
  if (!tcp.sender.ok || !insecure.sender.ok || !secure.sender.ok || !insecure.receiver.ok ||
      !secure.receiver.ok) {
    std::fprintf(stderr, "error: a transfer failed\n");
    return 1;
  }
  const double base = Rate(bytes, tcp.sender);
  const double r_plain = Rate(bytes, insecure.sender) / base;
  const double r_tls = Rate(bytes, secure.sender) / base;
  std::printf("%zu MB push, loopback: plain TCP %.2f GB/s\n", mb, base / 1e9);
  std::printf("  gRPC, no TLS: %.2f GB/s, ratio %.3f (goal >= 0.5: %s)\n",
              Rate(bytes, insecure.sender) / 1e9, r_plain, r_plain >= 0.5 ? "PASS" : "MISS");
  std::printf("  gRPC, TLS:    %.2f GB/s, ratio %.3f (goal >= 0.3: %s)\n",
              Rate(bytes, secure.sender) / 1e9, r_tls, r_tls >= 0.3 ? "PASS" : "MISS");
  int status = 0;
  for (std::size_t size_mb : large) {
    const std::size_t n = size_mb << 20;
    const Pair p = GrpcTransfer(n, tls);
    const double model = static_cast<double>(n);
    const bool ok = p.sender.ok && p.receiver.ok;
    const double worst = std::max(p.sender.peak, p.receiver.peak) / model;
    std::printf(
        "%zu MB model over TLS: %s, %.2f GB/s; peak memory client %.2f GB (%.2fx), server %.2f GB "
        "(%.2fx) (goal <= ~2x: %s)\n",
        size_mb, ok ? "delivered" : "FAILED", ok ? Rate(n, p.sender) / 1e9 : 0.0,
        p.sender.peak / 1e9, p.sender.peak / model, p.receiver.peak / 1e9, p.receiver.peak / model,
        worst <= 2.2 ? "PASS" : "MISS");
    if (!ok) status = 1;
  }
  std::string cleanup = std::string("rm -rf '") + certs.out_dir + "'";
  (void)std::system(cleanup.c_str());
  return status;
}
