// Secure aggregation cost: one real round of SecAgg+ (Bell et al. 2020) or SecAgg
// (Bonawitz et al. 2017) per configuration, against plaintext FedAvg on the same float inputs.
// Why one file of this size: a benchmark is one program that a reader runs and reads whole.
//
// Every client's four calls run through real SecAggClient objects and the server's Add*/End*/
// Finish through real SecAggServer objects; every message goes through Encode and Decode, so the
// byte counts are the encoded sizes. A client's input is the weighted vector [w, w x] (L = P + 1
// words: the server divides by the summed weight afterwards, as FedAvg does), quantized with
// quantization.h's defaults. Inputs are regenerated per client from a seed, never held for all
// clients; generation, encoding and decoding are outside every timed region (codec time is
// printed on its own).
//
// Timed: client = quantization (weighting included) + AdvertiseKeys + ShareKeys + MaskInput +
// Unmask, averaged over the clients that ran all four; server = every Add*, End* and Finish call
// plus DequantizeSum. Plaintext FedAvg: Begin + Accumulate (each survivor's 4 P-byte float update)
// + Finalize; its client sends 4 L bytes and computes nothing. Its Accumulate calls are
// interleaved with the SecAgg servers' AddMaskedInput calls, on the same freshly made inputs, so
// that both see the same cache state and the same load from other jobs on a shared machine.
//
// Signed rounds (--signatures on, secagg_auth.h): each client's keys are signed with a P-256 key
// of a certificate from a fresh `fedml certs` CA (made untimed), the server and every client
// check them, and the consistency round runs before unmasking. The signing, checking and
// consistency calls are timed into the client's and server's compute like the protocol calls
// around them (client: AdvertiseKeys + signing, ShareKeys + key-list check, the consistency
// signature, Unmask + request check; server: credential checks with AddKeys, forwarding, the
// consistency round with the unmask stage). --signatures off,on runs both on the same inputs.
//
// The server side can run with several thread counts on the same round (--server_threads, 0 =
// auto): each count gets its own SecAggServer (its `threads` argument) fed the same decoded
// messages; the first drives
// the clients, the others' messages are checked byte-identical, and every server's sum is checked
// exactly.
#include <CLI/CLI.hpp>

#include <stdlib.h>  // mkdtemp

#include <openssl/opensslv.h>

#include <time.h>  // clock_gettime: CPU time of the process

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/algorithms/protocols/secagg_auth.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"

namespace {

namespace alg = fedml::algorithms;
namespace sec = fedml::core::security;
using Clock = std::chrono::steady_clock;
using fedml::core::Bytes;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds of the whole process (every thread): on a shared machine wall time also counts
// the time other jobs hold the cores, so both are printed.
double CpuNow() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Accumulates the wall and CPU time of the scopes it times.
class Stopwatch {
 public:
  template <class F>
  auto Time(F&& f) {
    const auto t0 = Clock::now();
    const double c0 = CpuNow();
    auto r = f();
    cpu_ += CpuNow() - c0;
    total_ += Seconds(t0, Clock::now());
    return r;
  }
  double total() const { return total_; }
  double cpu() const { return cpu_; }

 private:
  double total_ = 0.0;
  double cpu_ = 0.0;
};

enum class DropStage { kAfterAdvertise, kAfterShare, kAfterMask };

const char* DropStageText(DropStage s) {
  switch (s) {
    case DropStage::kAfterAdvertise:
      return "after AdvertiseKeys (never call ShareKeys: in U1, not U2)";
    case DropStage::kAfterShare:
      return "after ShareKeys (never send a masked input: in U2, not U3; the server removes "
             "their pairwise masks)";
    case DropStage::kAfterMask:
      return "after MaskInput (never answer the unmask request: in U3, not U4)";
  }
  return "?";
}

struct Args {
  std::vector<int> clients = {100, 1000};
  long long params = 1000000;
  std::vector<double> dropout = {0.0, 0.1, 0.3};
  std::vector<std::string> modes = {"secagg_plus", "secagg"};
  int secagg_max_clients = 100;
  int num_shares = 0;  // 0: 2 ceil(log2 n) + 1
  int threshold = 0;   // 0: majority of the neighbourhood
  DropStage drop_stage = DropStage::kAfterShare;
  std::string placement = "random";
  std::vector<int> server_threads = {1, 0};  // SecAggServer's threads; 0: all cores
  int mask_reps = 64;
  double openssl_kbps = 0.0;  // AES-256-CTR from `openssl speed`, in 1000s of bytes/s
  std::uint64_t seed = 7;
  std::vector<std::string> signatures = {"off"};  // signed rounds: off, on
};

// Flags (CLI11); values are checked here, so a run never starts with a setting it cannot use.
int ParseArgs(int argc, char** argv, Args* a) {
  CLI::App app("secure aggregation (SecAgg, SecAgg+) against plaintext FedAvg, one real round");
  app.add_option("--clients", a->clients, "participants per round (list)")
      ->delimiter(',')
      ->check(CLI::Range(2, 1 << 20));
  app.add_option("--params", a->params, "model parameters")->check(CLI::Range(1LL, 1LL << 31));
  app.add_option("--dropout", a->dropout, "fractions that drop (list)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 0.999999));
  app.add_option("--modes", a->modes, "protocols (list)")
      ->delimiter(',')
      ->check(CLI::IsMember({"secagg_plus", "secagg"}));
  app.add_option("--secagg_max_clients", a->secagg_max_clients,
                 "full SecAgg only up to this many clients (its client cost is O(n L))");
  app.add_option("--num_shares", a->num_shares, "SecAgg+ neighbourhood incl. the client")
      ->check(CLI::Range(2, 1 << 16));
  app.add_option("--threshold", a->threshold, "reconstruction threshold")
      ->check(CLI::Range(1, 1 << 30));
  std::string stage = "share";
  app.add_option("--dropout_stage", stage, "when dropouts vanish")
      ->check(CLI::IsMember({"advertise", "share", "mask"}));
  app.add_option("--placement", a->placement, "where dropouts fall")
      ->check(CLI::IsMember({"random", "spread"}));
  app.add_option("--server_threads", a->server_threads,
                 "SecAggServer thread counts (list, 0 = all)")
      ->delimiter(',')
      ->check(CLI::Range(0, 1 << 16));
  app.add_option("--mask_reps", a->mask_reps, "masks per mask-generation pass")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--openssl_kbps", a->openssl_kbps,
                 "AES-256-CTR speed from openssl speed, 1000s of bytes/s")
      ->check(CLI::Range(1e-3, 1e15));
  app.add_option("--seed", a->seed, "inputs' seed");
  app.add_option("--signatures", a->signatures,
                 "signed rounds (keys signed, consistency round) off and/or on (list)")
      ->delimiter(',')
      ->check(CLI::IsMember({"off", "on"}));
  CLI11_PARSE(app, argc, argv);
  a->drop_stage = stage == "advertise" ? DropStage::kAfterAdvertise
                  : stage == "mask"    ? DropStage::kAfterMask
                                       : DropStage::kAfterShare;
  return -1;  // parsed: run
}

// ---- Inputs ----

constexpr std::uint64_t kInputDomain = 0x696e707574;  // "input"
constexpr std::uint64_t kRoundingDomain = 0x726f756e64;
constexpr std::uint64_t kDropDomain = 0x64726f70;
constexpr std::uint64_t kRoundId = 1;

// Client u's model x (P floats, uniform in [-0.5, 0.5)) and sample count, from the seed alone.
struct ClientData {
  std::int64_t num_samples = 0;
  std::vector<float> x;
};

void Generate(const Args& a, int u, ClientData* d) {
  fedml::core::Rng rng(
      fedml::core::DeriveSeed(a.seed, {kInputDomain, static_cast<std::uint64_t>(u)}));
  d->num_samples = 100 + static_cast<std::int64_t>(rng.UniformInt(1000));
  d->x.resize(static_cast<std::size_t>(a.params));
  for (float& v : d->x) v = static_cast<float>(rng.Uniform() - 0.5);
}

// The weight the secure sum carries: proportional to the sample count (FedAvg's weight) and
// scaled into the clipping range with the model (|w x| <= 0.55 < 8).
float Weight(std::int64_t num_samples) { return static_cast<float>(num_samples) / 1000.0f; }

// [w, w x] quantized into q (L words); `weighted` is scratch.
fedml::Status QuantizeClient(const Args& a, int u, const ClientData& d,
                             std::vector<float>& weighted, std::vector<std::uint32_t>& q) {
  const float w = Weight(d.num_samples);
  weighted.resize(d.x.size() + 1);
  weighted[0] = w;
  for (std::size_t i = 0; i < d.x.size(); ++i) weighted[i + 1] = w * d.x[i];
  q.resize(weighted.size());
  return sec::Quantize(
      weighted.data(), weighted.size(), sec::QuantizationOptions{},
      fedml::core::DeriveSeed(a.seed, {kRoundingDomain, kRoundId, static_cast<std::uint64_t>(u)}),
      q.data());
}

// ---- Dropouts ----

// Whether every owner's neighbourhood (itself included) keeps >= t members of `alive`, and
// alive holds >= t clients: what the server checks when it closes the stage where they drop.
bool Feasible(const std::vector<std::vector<int>>& graph, const std::vector<char>& alive,
              const std::vector<char>& owner, int t, std::string* why) {
  const int total = static_cast<int>(std::count(alive.begin(), alive.end(), 1));
  if (total < t) {
    *why = std::to_string(total) + " survivors in all, threshold " + std::to_string(t);
    return false;
  }
  for (std::size_t u = 0; u < graph.size(); ++u) {
    if (!owner[u]) continue;
    int c = alive[u] ? 1 : 0;
    for (int v : graph[u]) c += alive[static_cast<std::size_t>(v)] ? 1 : 0;
    if (c < t) {
      *why = "the neighbourhood of client " + std::to_string(u) + " keeps " + std::to_string(c) +
             ", threshold " + std::to_string(t);
      return false;
    }
  }
  return true;
}

// The dropped set (flag per client): `count` clients, drawn uniformly, or spread evenly over
// SecAgg+'s ring (the permutation secagg.h documents) when asked or when the uniform draw would
// abort the round. *how says which.
std::vector<char> ChooseDropped(const Args& a, const alg::SecAggParams& p,
                                const std::vector<std::vector<int>>& graph, int count,
                                std::string* how) {
  const int n = p.num_clients;
  const std::size_t nn = static_cast<std::size_t>(n);
  auto check = [&](const std::vector<char>& dropped, std::string* why) {
    std::vector<char> alive(nn), owner(nn);
    for (std::size_t u = 0; u < nn; ++u) {
      alive[u] = dropped[u] ? 0 : 1;
      owner[u] = a.drop_stage == DropStage::kAfterAdvertise ? alive[u] : 1;
    }
    return Feasible(graph, alive, owner, p.threshold, why);
  };
  std::string why;
  if (a.placement == "random") {
    std::vector<int> ids(nn);
    std::iota(ids.begin(), ids.end(), 0);
    fedml::core::Rng rng(
        fedml::core::DeriveSeed(a.seed, {kDropDomain, nn, static_cast<std::uint64_t>(count)}));
    rng.Shuffle(ids);
    std::vector<char> dropped(nn, 0);
    for (int i = 0; i < count; ++i)
      dropped[static_cast<std::size_t>(ids[static_cast<std::size_t>(i)])] = 1;
    if (check(dropped, &why)) {
      *how = "drawn uniformly";
      return dropped;
    }
    *how = "a uniform draw would abort the round (" + why +
           "), so spread evenly over the ring instead";
  } else {
    *how = "spread evenly over the ring";
  }
  std::vector<int> perm(nn);
  std::iota(perm.begin(), perm.end(), 0);
  fedml::core::Rng ring(fedml::core::DeriveSeed(p.graph_seed, {alg::kSecAggGraphDomain}));
  ring.Shuffle(perm);
  std::vector<char> dropped(nn, 0);
  for (std::size_t pos = 0; pos < nn; ++pos) {
    if ((pos + 1) * static_cast<std::size_t>(count) / nn >
        pos * static_cast<std::size_t>(count) / nn)
      dropped[static_cast<std::size_t>(perm[pos])] = 1;
  }
  if (!check(dropped, &why)) {
    *how += "; even that aborts (" + why + ")";
    return {};
  }
  return dropped;
}

// ---- One round ----

struct ServerRun {
  int threads_flag = 0;  // as given in --server_threads
  std::unique_ptr<alg::SecAggServer> server;
  std::unique_ptr<alg::SecAggServerAuth> auth;  // signed rounds
  Stopwatch setup;                              // AddKeys, EndAdvertise, AddShares, EndSharing
  Stopwatch masked;                             // AddMaskedInput, EndMasking
  Stopwatch unmask;                             // AddUnmaskReply
  Stopwatch finish;                             // Finish
  Stopwatch dequant;                            // DequantizeSum
  double total() const {
    return setup.total() + masked.total() + unmask.total() + finish.total() + dequant.total();
  }
  double cpu() const {
    return setup.cpu() + masked.cpu() + unmask.cpu() + finish.cpu() + dequant.cpu();
  }
};

struct RoundReport {
  bool ok = false;
  std::string error;
  int completed = 0;  // clients that ran all four calls
  int summands = 0;   // |U3|
  double client_seconds = 0.0, client_cpu = 0.0;
  // Per stage: total seconds and callers (a stage's mean is over the clients that called it).
  double client_quantize = 0.0, client_advertise = 0.0, client_share = 0.0, client_mask = 0.0,
         client_unmask = 0.0, client_consistency = 0.0;
  int callers_share = 0, callers_mask = 0, callers_unmask = 0;
  double codec_seconds = 0.0;
  double client_up_bytes = 0.0, client_down_bytes = 0.0;  // mean over completed clients
  double server_sent_bytes = 0.0;
  std::size_t finish_masks = 0;  // mask expansions in Finish
  std::vector<double> server_seconds, server_cpu, server_finish, server_finish_cpu, server_masked;
  std::vector<int> threads_flags;
  double plain_seconds = 0.0, plain_cpu = 0.0;  // plaintext FedAvg's server
  double plain_diff = 0.0;                      // max |FedAvg mean - dequantized SecAgg mean|
};

// Fails the round (rep.error, naming `what`) when the Status `expr` is not OK.
#define BENCH_TRY(expr, what)                                      \
  do {                                                             \
    fedml::Status bench_st_ = (expr);                              \
    if (!bench_st_.ok()) {                                         \
      rep.error = std::string(what) + ": " + bench_st_.ToString(); \
      return rep;                                                  \
    }                                                              \
  } while (0)

template <class T>
fedml::Status StatusOf(const fedml::Result<T>& r) {
  return r.ok() ? fedml::Status::Ok() : r.status();
}

// Certificates for n clients from a fresh CA in a temporary folder (removed when done), and each
// client's identity: what a signed round needs. Made untimed.
struct Signing {
  std::vector<alg::SecAggIdentity> identities;
  std::unique_ptr<sec::CertificateAuthority> ca;
};

fedml::Result<Signing> MakeSigning(int n) {
  std::string dir = (std::filesystem::temp_directory_path() / "secagg_bench_XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return fedml::Status::Internal("mkdtemp failed");
  struct Remove {
    std::string dir;
    ~Remove() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove{dir};
  sec::CertOptions certs;
  certs.out_dir = dir;
  certs.clients = n;
  FEDML_RETURN_IF_ERROR(sec::GenerateCredentials(certs));
  Signing out;
  FEDML_ASSIGN_OR_RETURN(const std::string ca_pem, sec::ReadTextFile(dir + "/ca.pem"));
  FEDML_ASSIGN_OR_RETURN(sec::CertificateAuthority ca, sec::CertificateAuthority::FromPem(ca_pem));
  out.ca = std::make_unique<sec::CertificateAuthority>(ca);
  for (int u = 0; u < n; ++u) {
    const std::string base = dir + "/client-" + std::to_string(u);
    FEDML_ASSIGN_OR_RETURN(const std::string key_pem, sec::ReadTextFile(base + ".key"));
    FEDML_ASSIGN_OR_RETURN(std::string cert_pem, sec::ReadTextFile(base + ".pem"));
    FEDML_ASSIGN_OR_RETURN(sec::SigningKey key, sec::SigningKey::FromPem(key_pem));
    out.identities.push_back(alg::SecAggIdentity{key, std::move(cert_pem), ca});
  }
  return out;
}

// One round; `signing` (null: unsigned) makes it a signed round.
RoundReport RunSecAgg(const Args& a, const alg::SecAggParams& p,
                      const std::vector<std::vector<int>>& graph, const std::vector<char>& dropped,
                      const Signing* signing) {
  RoundReport rep;
  const int n = p.num_clients;
  const std::size_t nn = static_cast<std::size_t>(n);
  const std::size_t len = p.vector_length;
  Stopwatch codec;

  std::vector<ServerRun> servers(a.server_threads.size());
  for (std::size_t s = 0; s < servers.size(); ++s) {
    servers[s].threads_flag = a.server_threads[s];
    servers[s].server = std::make_unique<alg::SecAggServer>(p, kRoundId, a.server_threads[s]);
    if (signing)
      servers[s].auth = std::make_unique<alg::SecAggServerAuth>(p, kRoundId, *signing->ca);
  }

  std::vector<alg::SecAggClient> clients;
  clients.reserve(nn);
  for (int u = 0; u < n; ++u) clients.emplace_back(u, p, kRoundId);
  std::vector<std::unique_ptr<alg::SecAggClientAuth>> auths(nn);  // signed rounds
  if (signing) {
    for (int u = 0; u < n; ++u) {
      auths[static_cast<std::size_t>(u)] = std::make_unique<alg::SecAggClientAuth>(
          p, kRoundId, u, u, signing->identities[static_cast<std::size_t>(u)]);
    }
  }
  std::vector<double> client_time(nn, 0.0), client_cpu(nn, 0.0);
  std::vector<double> up(nn, 0.0), down(nn, 0.0);
  std::vector<char> completed(nn, 0);
  const bool drop_advertise = a.drop_stage == DropStage::kAfterAdvertise;
  const bool drop_share = a.drop_stage == DropStage::kAfterShare;
  const bool drop_mask = a.drop_stage == DropStage::kAfterMask;

  // Times one client call, adding it to the client's total and the stage's sum.
  auto client_call = [&](int u, double* stage_sum, auto&& f) {
    const auto t0 = Clock::now();
    const double c0 = CpuNow();
    auto r = f();
    client_cpu[static_cast<std::size_t>(u)] += CpuNow() - c0;
    const double s = Seconds(t0, Clock::now());
    client_time[static_cast<std::size_t>(u)] += s;
    *stage_sum += s;
    return r;
  };
  // Feeds one decoded message to every server (timed per server).
  auto to_servers = [&](Stopwatch ServerRun::*watch, auto&& add) -> fedml::Status {
    for (auto& sr : servers) {
      fedml::Status st = ((sr.*watch).Time([&] { return add(*sr.server); }));
      if (!st.ok()) return st;
    }
    return fedml::Status::Ok();
  };
  // Closes a stage on every server; returns the first's messages, checking the others' encode
  // the same.
  auto end_stage = [&](auto&& end, auto* out_map) -> fedml::Status {
    for (std::size_t s = 0; s < servers.size(); ++s) {
      auto r = servers[s].setup.Time([&] { return end(*servers[s].server); });
      if (!r.ok()) return r.status();
      if (s == 0) {
        *out_map = std::move(r).value();
      } else {
        for (const auto& [id, msg] : r.value()) {
          auto it = out_map->find(id);
          if (it == out_map->end() || alg::Encode(it->second) != alg::Encode(msg))
            return fedml::Status::Internal("servers disagree on the message to client " +
                                           std::to_string(id));
        }
      }
    }
    return fedml::Status::Ok();
  };

  // Stage 0.
  for (int u = 0; u < n; ++u) {
    auto keys = client_call(u, &rep.client_advertise,
                            [&] { return clients[static_cast<std::size_t>(u)].AdvertiseKeys(); });
    BENCH_TRY(StatusOf(keys), "AdvertiseKeys");
    if (signing) {
      auto signed_keys = client_call(u, &rep.client_advertise, [&] {
        return auths[static_cast<std::size_t>(u)]->SignKeys(keys.value());
      });
      BENCH_TRY(StatusOf(signed_keys), "SignKeys");
      const Bytes wire = codec.Time([&] { return alg::Encode(signed_keys.value()); });
      up[static_cast<std::size_t>(u)] += static_cast<double>(wire.size());
      auto dec = codec.Time([&] { return alg::DecodeSecAggSignedKeys(wire); });
      BENCH_TRY(StatusOf(dec), "DecodeSecAggSignedKeys");
      for (auto& sr : servers) {
        BENCH_TRY(sr.setup.Time([&] { return sr.auth->AddKeys(dec.value(), u); }),
                  "SecAggServerAuth::AddKeys");
      }
      BENCH_TRY(to_servers(&ServerRun::setup,
                           [&](alg::SecAggServer& s) { return s.AddKeys(dec.value().keys); }),
                "AddKeys");
      continue;
    }
    const Bytes wire = codec.Time([&] { return alg::Encode(keys.value()); });
    up[static_cast<std::size_t>(u)] += static_cast<double>(wire.size());
    auto dec = codec.Time([&] { return alg::DecodeSecAggKeys(wire); });
    BENCH_TRY(StatusOf(dec), "DecodeSecAggKeys");
    BENCH_TRY(
        to_servers(&ServerRun::setup, [&](alg::SecAggServer& s) { return s.AddKeys(dec.value()); }),
        "AddKeys");
  }
  std::map<int, alg::SecAggKeyList> lists;
  BENCH_TRY(end_stage([](alg::SecAggServer& s) { return s.EndAdvertise(); }, &lists),
            "EndAdvertise");

  // Stage 1.
  for (auto& entry : lists) {
    // Named copies, not structured bindings: lambdas may not capture those in C++17.
    const int u = entry.first;
    const auto& list = entry.second;
    const std::size_t uu = static_cast<std::size_t>(u);
    alg::SecAggSignedKeyList signed_list;
    if (signing) {
      for (auto& sr : servers) {
        auto forwarded = sr.setup.Time([&] { return sr.auth->SignedList(list); });
        if (&sr == &servers[0]) signed_list = std::move(forwarded);
      }
    }
    const Bytes wire =
        codec.Time([&] { return signing ? alg::Encode(signed_list) : alg::Encode(list); });
    rep.server_sent_bytes += static_cast<double>(wire.size());
    down[uu] += static_cast<double>(wire.size());
    if (drop_advertise && dropped[uu]) continue;
    fedml::Result<alg::SecAggKeyList> dec = fedml::Status::Internal("not decoded");
    if (signing) {
      auto sdec = codec.Time([&] { return alg::DecodeSecAggSignedKeyList(wire); });
      BENCH_TRY(StatusOf(sdec), "DecodeSecAggSignedKeyList");
      BENCH_TRY(
          client_call(u, &rep.client_share, [&] { return auths[uu]->CheckKeyList(sdec.value()); }),
          "CheckKeyList");
      dec = std::move(sdec.value().list);
    } else {
      dec = codec.Time([&] { return alg::DecodeSecAggKeyList(wire); });
    }
    BENCH_TRY(StatusOf(dec), "DecodeSecAggKeyList");
    ++rep.callers_share;
    auto shares =
        client_call(u, &rep.client_share, [&] { return clients[uu].ShareKeys(dec.value()); });
    BENCH_TRY(StatusOf(shares), "ShareKeys");
    const Bytes out = codec.Time([&] { return alg::Encode(shares.value()); });
    up[uu] += static_cast<double>(out.size());
    auto sdec = codec.Time([&] { return alg::DecodeSecAggEncryptedShares(out); });
    BENCH_TRY(StatusOf(sdec), "DecodeSecAggEncryptedShares");
    BENCH_TRY(to_servers(&ServerRun::setup,
                         [&](alg::SecAggServer& s) { return s.AddShares(sdec.value()); }),
              "AddShares");
  }
  lists.clear();
  std::map<int, alg::SecAggSharesForYou> for_you;
  BENCH_TRY(end_stage([](alg::SecAggServer& s) { return s.EndSharing(); }, &for_you), "EndSharing");

  // Stage 2: inputs made one client at a time; the reference sum is the plain ring sum of the
  // same quantized vectors over the clients whose masked input the server gets.
  std::vector<std::uint32_t> reference(len, 0), q;
  std::vector<float> weighted;
  ClientData data;
  alg::FedAvg fedavg;
  Stopwatch plain;
  {
    fedml::core::ModelState global;
    const std::vector<float> zeros(len - 1, 0.0f);
    BENCH_TRY(global.Add("w", {static_cast<std::int64_t>(len - 1)}, zeros.data()), "ModelState");
    BENCH_TRY(plain.Time([&] { return fedavg.Begin(global, {}); }), "FedAvg Begin");
  }
  for (auto& entry : for_you) {
    const int u = entry.first;
    const auto& msg = entry.second;
    const std::size_t uu = static_cast<std::size_t>(u);
    const Bytes wire = codec.Time([&] { return alg::Encode(msg); });
    rep.server_sent_bytes += static_cast<double>(wire.size());
    down[uu] += static_cast<double>(wire.size());
    if (drop_share && dropped[uu]) continue;
    auto dec = codec.Time([&] { return alg::DecodeSecAggSharesForYou(wire); });
    BENCH_TRY(StatusOf(dec), "DecodeSecAggSharesForYou");
    ++rep.callers_mask;
    Generate(a, u, &data);  // untimed
    BENCH_TRY(client_call(u, &rep.client_quantize,
                          [&] { return QuantizeClient(a, u, data, weighted, q); }),
              "Quantize");
    sec::AddModInPlace(reference.data(), q.data(), len, p.modulus);
    auto masked = client_call(u, &rep.client_mask,
                              [&] { return clients[uu].MaskInput(dec.value(), q.data()); });
    BENCH_TRY(StatusOf(masked), "MaskInput");
    if (signing) auths[uu]->NoteSurvivors(dec.value().survivors);
    const Bytes out = codec.Time([&] { return alg::Encode(masked.value()); });
    up[uu] += static_cast<double>(out.size());
    auto mdec = codec.Time([&] { return alg::DecodeSecAggMaskedInput(out); });
    BENCH_TRY(StatusOf(mdec), "DecodeSecAggMaskedInput");
    // Each server takes over an input of its own: copies of the decoded one, made untimed.
    std::vector<alg::SecAggMaskedInput> inputs(servers.size() - 1, mdec.value());
    inputs.push_back(std::move(mdec).value());
    for (std::size_t s = 0; s < servers.size(); ++s) {
      BENCH_TRY(servers[s].masked.Time(
                    [&] { return servers[s].server->AddMaskedInput(std::move(inputs[s])); }),
                "AddMaskedInput");
    }
    alg::ClientUpdate update;  // the same client's plaintext update, made untimed
    update.client_id = u;
    update.round = 0;
    update.num_samples = data.num_samples;
    BENCH_TRY(update.state.Add("w", {static_cast<std::int64_t>(len - 1)}, data.x.data()),
              "ModelState");
    BENCH_TRY(plain.Time([&] { return fedavg.Accumulate(std::move(update)); }),
              "FedAvg Accumulate");
  }
  auto plain_result = plain.Time([&] { return fedavg.Finalize(); });
  BENCH_TRY(StatusOf(plain_result), "FedAvg Finalize");
  rep.plain_seconds = plain.total();
  rep.plain_cpu = plain.cpu();
  for_you.clear();
  std::map<int, alg::SecAggUnmaskRequest> requests;
  for (std::size_t s = 0; s < servers.size(); ++s) {
    auto r = servers[s].masked.Time([&] { return servers[s].server->EndMasking(); });
    BENCH_TRY(StatusOf(r), "EndMasking");
    if (s == 0) requests = std::move(r).value();
  }
  rep.summands = static_cast<int>(servers[0].server->survivors().size());

  // Signed rounds: the consistency round (U3 out, each survivor's signature back).
  if (signing) {
    for (auto& sr : servers) {
      sr.unmask.Time([&] {
        sr.auth->BeginConsistency(sr.server->survivors());
        return 0;
      });
    }
    for (const auto& entry : requests) {
      const int u = entry.first;
      const std::size_t uu = static_cast<std::size_t>(u);
      const Bytes wire =
          codec.Time([&] { return alg::Encode(servers[0].auth->ConsistencyRequest(u)); });
      rep.server_sent_bytes += static_cast<double>(wire.size());
      down[uu] += static_cast<double>(wire.size());
      if (drop_mask && dropped[uu]) continue;
      auto dec = codec.Time([&] { return alg::DecodeSecAggConsistencyRequest(wire); });
      BENCH_TRY(StatusOf(dec), "DecodeSecAggConsistencyRequest");
      auto signature = client_call(u, &rep.client_consistency,
                                   [&] { return auths[uu]->SignSurvivors(dec.value()); });
      BENCH_TRY(StatusOf(signature), "SignSurvivors");
      const Bytes out = codec.Time([&] { return alg::Encode(signature.value()); });
      up[uu] += static_cast<double>(out.size());
      auto sdec = codec.Time([&] { return alg::DecodeSecAggSurvivorSignature(out); });
      BENCH_TRY(StatusOf(sdec), "DecodeSecAggSurvivorSignature");
      for (auto& sr : servers) {
        BENCH_TRY(sr.unmask.Time([&] { return sr.auth->AddSignature(sdec.value()); }),
                  "AddSignature");
      }
    }
  }

  // Stage 3.
  for (auto& entry : requests) {
    const int u = entry.first;
    const auto& msg = entry.second;
    const std::size_t uu = static_cast<std::size_t>(u);
    if (drop_mask && dropped[uu] && signing) continue;  // it did not sign: not asked to unmask
    alg::SecAggSignedUnmaskRequest signed_request;
    if (signing) {
      for (auto& sr : servers) {
        auto forwarded = sr.unmask.Time([&] { return sr.auth->SignedRequest(msg); });
        if (&sr == &servers[0]) signed_request = std::move(forwarded);
      }
    }
    const Bytes wire =
        codec.Time([&] { return signing ? alg::Encode(signed_request) : alg::Encode(msg); });
    rep.server_sent_bytes += static_cast<double>(wire.size());
    down[uu] += static_cast<double>(wire.size());
    if (drop_mask && dropped[uu]) continue;
    fedml::Result<alg::SecAggUnmaskRequest> dec = fedml::Status::Internal("not decoded");
    if (signing) {
      auto sdec = codec.Time([&] { return alg::DecodeSecAggSignedUnmaskRequest(wire); });
      BENCH_TRY(StatusOf(sdec), "DecodeSecAggSignedUnmaskRequest");
      dec = client_call(u, &rep.client_unmask,
                        [&] { return auths[uu]->CheckUnmaskRequest(sdec.value()); });
    } else {
      dec = codec.Time([&] { return alg::DecodeSecAggUnmaskRequest(wire); });
    }
    BENCH_TRY(StatusOf(dec), "DecodeSecAggUnmaskRequest");
    ++rep.callers_unmask;
    auto reply =
        client_call(u, &rep.client_unmask, [&] { return clients[uu].Unmask(dec.value()); });
    BENCH_TRY(StatusOf(reply), "Unmask");
    completed[uu] = 1;
    const Bytes out = codec.Time([&] { return alg::Encode(reply.value()); });
    up[uu] += static_cast<double>(out.size());
    auto rdec = codec.Time([&] { return alg::DecodeSecAggUnmaskReply(out); });
    BENCH_TRY(StatusOf(rdec), "DecodeSecAggUnmaskReply");
    BENCH_TRY(to_servers(&ServerRun::unmask,
                         [&](alg::SecAggServer& s) { return s.AddUnmaskReply(rdec.value()); }),
              "AddUnmaskReply");
  }

  // The masks Finish expands: a self mask per member of U3, and a pairwise mask between each
  // dropped member of U2 and each of its neighbours in U3.
  std::vector<char> in3(nn, 0);
  for (int u : servers[0].server->survivors()) in3[static_cast<std::size_t>(u)] = 1;
  rep.finish_masks = servers[0].server->survivors().size();
  for (std::size_t u = 0; u < nn; ++u) {
    const bool in2 = !(drop_advertise && dropped[u]);
    if (!in2 || in3[u]) continue;
    for (int v : graph[u]) rep.finish_masks += in3[static_cast<std::size_t>(v)] ? 1 : 0;
  }

  const sec::QuantizationOptions qopt;
  std::vector<float> deq(len);
  for (auto& sr : servers) {
    auto sum = sr.finish.Time([&] { return sr.server->Finish(); });
    BENCH_TRY(StatusOf(sum), "Finish");
    if (sum.value() != reference) {
      std::size_t i = 0;
      while (i < len && sum.value()[i] == reference[i]) ++i;
      rep.error = "the unmasked sum differs from the plain quantized sum (server with threads " +
                  std::to_string(sr.threads_flag) + ", first at word " + std::to_string(i) + ")";
      return rep;
    }
    BENCH_TRY(sr.dequant.Time([&] {
      return sec::DequantizeSum(sum.value().data(), len, rep.summands, qopt, deq.data());
    }),
              "DequantizeSum");
    rep.server_seconds.push_back(sr.total());
    rep.server_cpu.push_back(sr.cpu());
    rep.server_finish.push_back(sr.finish.total());
    rep.server_finish_cpu.push_back(sr.finish.cpu());
    rep.server_masked.push_back(sr.masked.total());
    rep.threads_flags.push_back(sr.threads_flag);
  }
  const float* plain_mean = plain_result->data();
  for (std::size_t i = 1; i < len; ++i) {
    const double d = std::fabs(static_cast<double>(deq[i] / deq[0]) - plain_mean[i - 1]);
    rep.plain_diff = std::max(rep.plain_diff, d);
  }

  double ct = 0.0, cc = 0.0, cu = 0.0, cd = 0.0;
  for (std::size_t u = 0; u < nn; ++u) {
    if (!completed[u]) continue;
    ++rep.completed;
    ct += client_time[u];
    cc += client_cpu[u];
    cu += up[u];
    cd += down[u];
  }
  const double c = std::max(1, rep.completed);
  rep.client_seconds = ct / c;
  rep.client_cpu = cc / c;
  rep.client_up_bytes = cu / c;
  rep.client_down_bytes = cd / c;
  rep.codec_seconds = codec.total();
  rep.ok = true;
  return rep;
}

std::string ThreadsName(int flag) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  if (flag == 1) return "single-threaded (threads 1)";
  if (flag == 0) return "threaded (threads 0: " + std::to_string(hw) + " threads)";
  return "threaded (threads " + std::to_string(flag) + ", at most " + std::to_string(hw) + ")";
}

struct Summary {
  std::string mode;
  int n;
  double dropout;
  double client_s, plain_s, plain_cpu, expansion;
  std::vector<double> server_s, server_cpu;
};

}  // namespace

int Main(int argc, char** argv) {
  Args args;
  if (const int rc = ParseArgs(argc, argv, &args); rc >= 0) return rc;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a long run shows its configurations as they end
  const std::size_t len = static_cast<std::size_t>(args.params) + 1;
  const double plain_up = 4.0 * static_cast<double>(len);
  std::printf(
      "secagg_bench: P = %lld parameters, L = P + 1 = %zu words ([w, w x]); quantization "
      "clip 8, 2^22 levels, modulus 2^32; %u hardware threads; %s\n",
      args.params, len, std::thread::hardware_concurrency(), OPENSSL_VERSION_TEXT);
  std::printf("dropouts vanish %s\n", DropStageText(args.drop_stage));
  std::printf(
      "server threads: each --server_threads setting runs its own SecAggServer on the "
      "same messages (SecAggServer's threads argument)\n");

  // Mask generation throughput: ExpandMask into one 4 MiB buffer, best of 3 passes, per wall
  // second and per CPU second. `openssl speed` divides by user CPU time unless given -elapsed,
  // so the goal's ratio is taken per CPU second; on an idle machine the two agree.
  {
    std::vector<std::uint32_t> mask(std::size_t{1} << 20);
    Bytes seed(32, 0);
    double best = 1e30, best_cpu = 1e30;
    for (int pass = 0; pass < 3; ++pass) {
      Stopwatch watch;
      const fedml::Status st = watch.Time([&] {
        for (int r = 0; r < args.mask_reps; ++r) {
          seed[0] = static_cast<std::uint8_t>(r);
          FEDML_RETURN_IF_ERROR(sec::ExpandMask(seed, mask.data(), mask.size()));
        }
        return fedml::Status::Ok();
      });
      if (!st.ok()) {
        std::fprintf(stderr, "ExpandMask failed: %s\n", st.ToString().c_str());
        return 1;
      }
      best = std::min(best, watch.total());
      best_cpu = std::min(best_cpu, watch.cpu());
    }
    const double bytes = static_cast<double>(args.mask_reps) * 4.0 * (1 << 20);
    const double mbps = bytes / best / 1e6, mbps_cpu = bytes / best_cpu / 1e6;
    std::printf(
        "mask generation (ExpandMask, 4 MiB masks, %d per pass, best of 3): %.1f MB/s per "
        "wall second, %.1f MB/s per CPU second (MB = 10^6 bytes) [checksum %u]\n",
        args.mask_reps, mbps, mbps_cpu, mask[12345]);
    if (args.openssl_kbps > 0.0) {
      const double openssl = args.openssl_kbps / 1000.0;
      std::printf(
          "openssl speed AES-256-CTR (per user CPU second): %.1f MB/s; ratio "
          "mask_gen/openssl = %.3f per CPU second (%.3f per wall second); goal >= 0.5: "
          "%s\n",
          openssl, mbps_cpu / openssl, mbps / openssl, mbps_cpu / openssl >= 0.5 ? "PASS" : "MISS");
    }
  }

  std::vector<Summary> summaries;
  std::vector<std::string> skipped;
  bool failed = false;
  for (const std::string& mode : args.modes) {
    for (int n : args.clients) {
      if (mode == "secagg" && n > args.secagg_max_clients) {
        skipped.push_back("secagg n=" + std::to_string(n));
        continue;
      }
      alg::SecAggParams p;
      p.num_clients = n;
      p.vector_length = len;
      p.graph_seed = args.seed;
      int hood = n;
      if (mode == "secagg_plus") {
        int shares = args.num_shares;
        if (shares == 0) shares = 2 * static_cast<int>(std::ceil(std::log2(n))) + 1;
        int k = std::min(shares - 1, n - 1);
        if (k % 2 == 1) k = k > 1 ? k - 1 : k + 1;  // even k: a Harary graph for any n
        p.num_neighbours = k;
        hood = k + 1;
      }
      p.threshold = args.threshold > 0 ? args.threshold : hood / 2 + 1;
      if (fedml::Status st = alg::ValidateSecAggParams(p); !st.ok()) {
        std::printf("%s n=%d: %s\n", mode.c_str(), n, st.ToString().c_str());
        failed = true;
        continue;
      }
      const auto graph = alg::SecAggNeighbours(p);
      std::unique_ptr<Signing> signing;  // made once per n when a signed round is asked for
      if (std::count(args.signatures.begin(), args.signatures.end(), "on") > 0) {
        auto made = MakeSigning(n);
        if (!made.ok()) {
          std::printf("%s n=%d: certificates: %s\n", mode.c_str(), n,
                      made.status().ToString().c_str());
          failed = true;
          continue;
        }
        signing = std::make_unique<Signing>(std::move(made).value());
      }
      for (double f : args.dropout) {
        for (const std::string& signatures : args.signatures) {
          const bool signed_round = signatures == "on";
          const int count = static_cast<int>(std::floor(f * n + 0.5));
          std::printf("\n== %s n=%d k=%d (neighbourhood %d) t=%d, dropout %.0f%% (%d clients)%s\n",
                      mode.c_str(), n, mode == "secagg" ? n - 1 : p.num_neighbours, hood,
                      p.threshold, 100.0 * f, count,
                      signed_round ? ", signed round (keys signed, consistency round)" : "");
          std::string how;
          const std::vector<char> dropped = ChooseDropped(args, p, graph, count, &how);
          if (count > 0) std::printf("  dropouts %s\n", how.c_str());
          if (dropped.empty()) {
            std::printf("  SKIPPED: no dropout set of this size keeps the round alive\n");
            continue;
          }
          const auto t0 = Clock::now();
          RoundReport rep =
              RunSecAgg(args, p, graph, dropped, signed_round ? signing.get() : nullptr);
          if (!rep.ok) {
            std::printf("  FAILED: %s\n", rep.error.c_str());
            failed = true;
            continue;
          }
          std::vector<int> survivors;
          {
            // U3: the clients whose input is in the sum.
            for (int u = 0; u < n; ++u) {
              const bool gone =
                  dropped[static_cast<std::size_t>(u)] && args.drop_stage != DropStage::kAfterMask;
              if (!gone) survivors.push_back(u);
            }
          }
          const double plain = rep.plain_seconds, plain_cpu = rep.plain_cpu, diff = rep.plain_diff;
          const double tol = 1e-4;
          std::printf(
              "  sum check: the unmasked sum equals the plain quantized sum of the %d "
              "survivors exactly; dequantized mean vs FedAvg: max |diff| %.2e (tolerance "
              "%.0e)\n",
              rep.summands, diff, tol);
          if (diff > tol) failed = true;
          if (rep.summands != static_cast<int>(survivors.size())) {
            std::printf("  FAILED: the server summed %d inputs, expected %zu\n", rep.summands,
                        survivors.size());
            failed = true;
            continue;
          }
          auto per = [](double total, int callers) { return total / std::max(1, callers); };
          std::printf(
              "  client compute, mean of the %d clients that ran all four calls: %.4f s wall, "
              "%.4f s CPU (stage means over their callers, wall: quantize %.4f, AdvertiseKeys "
              "%.5f, ShareKeys %.4f, MaskInput %.4f, consistency %.5f, Unmask %.5f)\n",
              rep.completed, rep.client_seconds, rep.client_cpu,
              per(rep.client_quantize, rep.callers_mask), per(rep.client_advertise, n),
              per(rep.client_share, rep.callers_share), per(rep.client_mask, rep.callers_mask),
              per(rep.client_consistency, rep.callers_unmask),
              per(rep.client_unmask, rep.callers_unmask));
          std::printf(
              "  plaintext FedAvg: server %.4f s wall, %.4f s CPU (Begin + %zu Accumulate + "
              "Finalize, interleaved with the SecAgg round), client compute 0\n",
              plain, plain_cpu, survivors.size());
          Summary s{
              signed_round ? mode + "+sig" : mode, n,  f, rep.client_seconds, plain, plain_cpu,
              rep.client_up_bytes / plain_up,      {}, {}};
          for (std::size_t i = 0; i < rep.server_seconds.size(); ++i) {
            const double keystream =
                static_cast<double>(rep.finish_masks) * 4.0 * static_cast<double>(len);
            std::printf(
                "  server compute, %s: %.4f s wall = %.2fx plaintext; %.4f s CPU = %.2fx "
                "plaintext CPU\n    (masked-input adds %.4f s wall; Finish %.4f s wall, %.4f s "
                "CPU: %zu mask expansions of 4 L bytes, %.2f GB/s of keystream per wall second, "
                "%.2f per CPU second)\n",
                ThreadsName(rep.threads_flags[i]).c_str(), rep.server_seconds[i],
                rep.server_seconds[i] / plain, rep.server_cpu[i], rep.server_cpu[i] / plain_cpu,
                rep.server_masked[i], rep.server_finish[i], rep.server_finish_cpu[i],
                rep.finish_masks, keystream / rep.server_finish[i] / 1e9,
                keystream / rep.server_finish_cpu[i] / 1e9);
            s.server_s.push_back(rep.server_seconds[i]);
            s.server_cpu.push_back(rep.server_cpu[i]);
          }
          std::printf(
              "  bytes per client up: %.0f (plaintext %.0f) -> expansion %.4fx  [Bonawitz "
              "et al. 1.73x (2^10 clients, 2^20 entries)]\n",
              rep.client_up_bytes, plain_up, rep.client_up_bytes / plain_up);
          std::printf(
              "  bytes per client down (protocol messages, beyond the model): %.0f; server "
              "sent %.0f bytes in all (%.0f per client)\n",
              rep.client_down_bytes, rep.server_sent_bytes, rep.server_sent_bytes / n);
          std::printf("  (untimed: Encode/Decode %.3f s; wall time of the configuration %.1f s)\n",
                      rep.codec_seconds, Seconds(t0, Clock::now()));
          summaries.push_back(s);
        }
      }
    }
  }
  if (!skipped.empty()) {
    std::printf(
        "\nskipped (full SecAgg only up to --secagg_max_clients %d clients: its client "
        "cost is O(n L), n mask expansions of L words each):",
        args.secagg_max_clients);
    for (const auto& s : skipped) std::printf(" %s;", s.c_str());
    std::printf("\n");
  }

  std::printf("\nsummary: wall seconds, server per thread setting");
  for (std::size_t i = 0; i < args.server_threads.size(); ++i)
    std::printf(" [%zu: %s]", i + 1, ThreadsName(args.server_threads[i]).c_str());
  std::printf("; ratios to plaintext FedAvg, wall (CPU)\n%-12s %5s %5s %9s %9s  %s\n", "mode", "n",
              "drop", "client_s", "plain_s", "server_s per setting: s  x wall (x CPU)");
  for (const auto& s : summaries) {
    std::printf("%-12s %5d %4.0f%% %9.4f %9.4f ", s.mode.c_str(), s.n, 100 * s.dropout, s.client_s,
                s.plain_s);
    for (std::size_t i = 0; i < s.server_s.size(); ++i)
      std::printf(" [%zu] %.4f %.2fx (%.2fx)", i + 1, s.server_s[i], s.server_s[i] / s.plain_s,
                  s.server_cpu[i] / s.plain_cpu);
    std::printf("  expansion %.4fx\n", s.expansion);
  }
  std::printf(
      "expansion = SecAgg bytes per client up / plaintext 4 L bytes; Bonawitz et al. "
      "report 1.73x (2^10 clients, 2^20 entries)\n");
  for (const auto& s : summaries) {
    if (s.mode != "secagg_plus" || s.n != 1000 || std::fabs(s.dropout - 0.1) > 1e-9) continue;
    for (std::size_t i = 0; i < s.server_s.size(); ++i) {
      const double r = s.server_s[i] / s.plain_s;
      const double rc = s.server_cpu[i] / s.plain_cpu;
      std::printf(
          "goal SecAgg+ server <= 3x plaintext (1000 clients, 10%% dropout), %s: wall %.2fx %s, "
          "CPU %.2fx %s\n",
          ThreadsName(args.server_threads[i]).c_str(), r, r <= 3.0 ? "PASS" : "MISS", rc,
          rc <= 3.0 ? "PASS" : "MISS");
    }
  }
  return failed ? 1 : 0;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // std::bad_alloc at 1000 clients on a small machine
    std::fprintf(stderr, "secagg_bench: %s\n", e.what());
    return 1;
  }
}
