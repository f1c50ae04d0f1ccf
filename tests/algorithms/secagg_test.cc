// SecAgg and SecAgg+ (fedml/algorithms/protocols/secagg.h): full rounds against the plain ring sum,
// with dropouts at every stage up to the threshold and one too many, the uniformity of what the
// server sees, tampering and the unmasking safeguard, refused messages, the codecs and the graph.
// Every message of a full round goes through Encode and Decode on its way.
#include "fedml/algorithms/protocols/secagg.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/core/random.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"
#include "fedml/core/security/shamir.h"

namespace fedml::algorithms {
namespace {

using core::Bytes;
using Inputs = std::vector<std::vector<std::uint32_t>>;

SecAggParams Params(int n, int t, int k, std::size_t len, std::uint64_t modulus = 1ull << 32,
                    std::uint64_t graph_seed = 7) {
  SecAggParams p;
  p.num_clients = n;
  p.threshold = t;
  p.num_neighbours = k;
  p.modulus = modulus;
  p.vector_length = len;
  p.graph_seed = graph_seed;
  return p;
}

Inputs RandomInputs(const SecAggParams& p, std::uint64_t seed) {
  core::Rng rng(seed);
  Inputs x(static_cast<std::size_t>(p.num_clients), std::vector<std::uint32_t>(p.vector_length));
  for (auto& v : x) {
    for (auto& w : v) w = static_cast<std::uint32_t>(rng.NextU64() & (p.modulus - 1));
  }
  return x;
}

std::vector<std::uint32_t> PlainSum(const SecAggParams& p, const Inputs& x,
                                    const std::vector<int>& ids) {
  std::vector<std::uint32_t> s(p.vector_length, 0);
  for (int u : ids) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      s[i] = static_cast<std::uint32_t>((std::uint64_t{s[i]} + x[static_cast<std::size_t>(u)][i]) &
                                        (p.modulus - 1));
    }
  }
  return s;
}

// Every message crosses the "wire".
template <class T, class D>
T Wire(const T& m, D decode) {
  Result<T> r = decode(Encode(m));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// drops[S]: clients that send nothing from stage S on (S = 0: never advertise; 1: advertised
// but sent no shares; 2: shared but sent no masked input; 3: masked but sent no unmask reply).
using Drops = std::array<std::set<int>, 4>;

struct Outcome {
  Status status;
  int failed_stage = -1;
  std::vector<std::uint32_t> sum;
  std::vector<int> u3;
};

std::vector<SecAggClient> MakeClients(const SecAggParams& p, std::uint64_t round) {
  std::vector<SecAggClient> c;
  for (int u = 0; u < p.num_clients; ++u) c.emplace_back(u, p, round);
  return c;
}

Outcome Fail(SecAggServer& server, Status s, int stage) {
  // Aborted for good: Finish (and any other call) reports the same error and gives no sum.
  Result<std::vector<std::uint32_t>> f = server.Finish();
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().message() == s.message());
  Outcome o;
  o.status = std::move(s);
  o.failed_stage = stage;
  return o;
}

Outcome Run(const SecAggParams& p, const Inputs& x, const Drops& drops, std::uint64_t round = 11,
            int server_threads = 1) {
  SecAggServer server(p, round, server_threads);
  std::vector<SecAggClient> clients = MakeClients(p, round);
  std::set<int> gone;
  auto drop = [&](int stage) { gone.insert(drops[stage].begin(), drops[stage].end()); };

  drop(0);
  for (int u = 0; u < p.num_clients; ++u) {
    if (gone.count(u)) continue;
    Result<SecAggKeys> k = clients[static_cast<std::size_t>(u)].AdvertiseKeys();
    REQUIRE(k.ok());
    REQUIRE(server.AddKeys(Wire(k.value(), DecodeSecAggKeys)).ok());
  }
  auto lists = server.EndAdvertise();
  if (!lists.ok()) return Fail(server, lists.status(), 0);

  drop(1);
  for (const auto& [u, list] : lists.value()) {
    if (gone.count(u)) continue;
    auto s = clients[static_cast<std::size_t>(u)].ShareKeys(Wire(list, DecodeSecAggKeyList));
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    Status st = server.AddShares(Wire(s.value(), DecodeSecAggEncryptedShares));
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  auto fy = server.EndSharing();
  if (!fy.ok()) return Fail(server, fy.status(), 1);

  drop(2);
  for (const auto& [u, f] : fy.value()) {
    if (gone.count(u)) continue;
    auto y = clients[static_cast<std::size_t>(u)].MaskInput(Wire(f, DecodeSecAggSharesForYou),
                                                            x[static_cast<std::size_t>(u)].data());
    INFO(y.status().ToString());
    REQUIRE(y.ok());
    REQUIRE(server.AddMaskedInput(Wire(y.value(), DecodeSecAggMaskedInput)).ok());
  }
  auto req = server.EndMasking();
  if (!req.ok()) return Fail(server, req.status(), 2);

  drop(3);
  for (const auto& [u, r] : req.value()) {
    if (gone.count(u)) continue;
    auto rep = clients[static_cast<std::size_t>(u)].Unmask(Wire(r, DecodeSecAggUnmaskRequest));
    INFO(rep.status().ToString());
    REQUIRE(rep.ok());
    Status st = server.AddUnmaskReply(Wire(rep.value(), DecodeSecAggUnmaskReply));
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  auto sum = server.Finish();
  if (!sum.ok()) return Fail(server, sum.status(), 3);
  Outcome o;
  o.sum = std::move(sum).value();
  o.u3 = server.survivors();
  return o;
}

// The round succeeds and returns exactly the plain sum of the clients that sent a masked input.
void ExpectExact(const SecAggParams& p, const Drops& drops, std::uint64_t input_seed = 1,
                 int server_threads = 1) {
  const Inputs x = RandomInputs(p, input_seed);
  const Outcome o = Run(p, x, drops, 11, server_threads);
  INFO(o.status.ToString());
  REQUIRE(o.status.ok());
  std::vector<int> expected_u3;
  for (int u = 0; u < p.num_clients; ++u) {
    if (!drops[0].count(u) && !drops[1].count(u) && !drops[2].count(u)) expected_u3.push_back(u);
  }
  CHECK(o.u3 == expected_u3);
  REQUIRE(o.sum.size() == p.vector_length);
  CHECK(o.sum == PlainSum(p, x, expected_u3));
}

void ExpectAbort(const SecAggParams& p, const Drops& drops, int stage,
                 const std::string& exact_message = "") {
  const Outcome o = Run(p, RandomInputs(p, 2), drops);
  INFO(o.status.ToString());
  REQUIRE_FALSE(o.status.ok());
  CHECK(o.status.code() == StatusCode::kFailedPrecondition);
  CHECK(o.failed_stage == stage);
  CHECK(o.status.message().find("secure aggregation aborted at stage " + std::to_string(stage) +
                                ": ") == 0);
  if (!exact_message.empty()) CHECK(o.status.message() == exact_message);
  CHECK(o.sum.empty());
}

TEST_CASE("SecAgg: full rounds sum exactly (n = 5, 10; modulus 2^32 and 2^20)", "[secagg]") {
  ExpectExact(Params(5, 3, 0, 1000), {});
  ExpectExact(Params(10, 6, 0, 1000), {});
  ExpectExact(Params(10, 6, 0, 1000, 1ull << 20), {});
  ExpectExact(Params(5, 5, 0, 1), {});   // threshold = n, one word
  ExpectExact(Params(2, 2, 0, 17), {});  // the smallest round
}

TEST_CASE("SecAgg+: full rounds sum exactly (n = 20 k = 6, n = 50 k = 8)", "[secagg]") {
  ExpectExact(Params(20, 4, 6, 1000), {});
  ExpectExact(Params(50, 5, 8, 1000), {});
  ExpectExact(Params(50, 5, 8, 1000, 1ull << 20, 99), {});
  ExpectExact(Params(10, 3, 3, 100), {});  // odd k on an even n
  ExpectExact(Params(8, 4, 7, 100), {});   // k = n - 1: the complete graph
}

TEST_CASE("SecAgg: a server removing masks on every core gives the exact sum", "[secagg]") {
  // 2M words per vector: Finish's keystream is large enough to be split between threads.
  const SecAggParams p = Params(6, 4, 0, std::size_t{1} << 21);
  Drops drops;
  drops[1] = {2};  // a dropped client's pairwise masks are removed too
  ExpectExact(p, drops, 3, /*server_threads=*/0);
  ExpectExact(p, drops, 3, /*server_threads=*/1);
}

TEST_CASE("SecAgg: dropouts at every stage up to the threshold leave the sum exact", "[secagg]") {
  const SecAggParams p = Params(10, 6, 0, 1000);
  ExpectExact(p, {{{3}, {5}, {7}, {9}}});        // one at each stage: 4 gone, 6 remain
  ExpectExact(p, {{{}, {0, 1, 2, 3}, {}, {}}});  // vanish after AdvertiseKeys
  ExpectExact(p, {{{}, {}, {0, 1, 2, 3}, {}}});  // after ShareKeys: s_u reconstructed
  ExpectExact(p, {{{}, {}, {}, {6, 7, 8, 9}}});  // after MaskInput: the others suffice
  ExpectExact(p, {{{}, {1, 8}, {4, 6}, {}}});
  ExpectExact(p, {{{}, {}, {9, 0}, {5, 2}}});
  ExpectExact(Params(10, 6, 0, 1000, 1ull << 20), {{{2}, {}, {0, 8, 4}, {}}});
  ExpectExact(Params(5, 3, 0, 1000), {{{}, {}, {1}, {4}}});
}

TEST_CASE("SecAgg: one dropout too many at each stage aborts with no sum", "[secagg]") {
  const SecAggParams p = Params(10, 6, 0, 100);
  ExpectAbort(p, {{{0, 1, 2, 3, 4}, {}, {}, {}}}, 0,
              "secure aggregation aborted at stage 0: 5 of 10 clients remain, threshold 6");
  ExpectAbort(p, {{{0}, {1, 2, 3, 4}, {}, {}}}, 1,
              "secure aggregation aborted at stage 1: 5 of 10 clients remain, threshold 6");
  ExpectAbort(p, {{{}, {0}, {1, 2, 3, 4}, {}}}, 2,
              "secure aggregation aborted at stage 2: 5 of 10 clients remain, threshold 6");
  ExpectAbort(p, {{{}, {}, {0, 1}, {2, 3, 4}}}, 3,
              "secure aggregation aborted at stage 3: 5 of 10 clients remain, threshold 6");
  ExpectAbort(p, {{{}, {}, {}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}}, 3,
              "secure aggregation aborted at stage 3: 0 of 10 clients remain, threshold 6");
}

// A client's neighbourhood (itself included) in the graph of p.
std::vector<int> Hood(const SecAggParams& p, int u) {
  std::vector<int> h = SecAggNeighbours(p)[static_cast<std::size_t>(u)];
  h.insert(std::lower_bound(h.begin(), h.end(), u), u);
  return h;
}

TEST_CASE("SecAgg+: dropouts up to the threshold of a neighbourhood leave the sum exact",
          "[secagg]") {
  const SecAggParams p = Params(20, 4, 6, 1000);  // neighbourhoods of 7: 3 may go
  const std::vector<int> h = Hood(p, 0);
  REQUIRE(h.size() == 7);
  std::vector<int> others;  // h without 0
  for (int v : h) {
    if (v != 0) others.push_back(v);
  }
  ExpectExact(p, {{{}, {}, {others[0], others[1], others[2]}, {}}});  // 3 masks to remove
  ExpectExact(p, {{{others[0]}, {others[1]}, {others[2]}, {}}});
  ExpectExact(p, {{{}, {}, {0}, {others[0], others[1]}}});
  ExpectExact(p, {{{}, {}, {}, {0, others[3], others[4]}}});

  // Many dropouts spread over the graph, no neighbourhood losing more than n_hood - t: SecAgg+
  // tolerates far more than one neighbourhood's worth. Greedy choice, deterministic.
  const SecAggParams q = Params(50, 5, 8, 1000);  // neighbourhoods of 9: 4 may go
  const auto graph = SecAggNeighbours(q);
  std::vector<int> lost(50, 0);  // per neighbourhood owner
  Drops spread;
  core::Rng rng(5);
  std::vector<int> order(50);
  for (int i = 0; i < 50; ++i) order[static_cast<std::size_t>(i)] = i;
  rng.Shuffle(order);
  int total = 0;
  for (int c : order) {
    std::vector<int> owners = graph[static_cast<std::size_t>(c)];
    owners.push_back(c);
    bool ok = true;
    for (int w : owners) ok = ok && lost[static_cast<std::size_t>(w)] < 4;
    if (!ok) continue;
    for (int w : owners) ++lost[static_cast<std::size_t>(w)];
    spread[static_cast<std::size_t>(rng.UniformInt(4))].insert(c);
    ++total;
  }
  CHECK(total > 9);  // more than a neighbourhood
  ExpectExact(q, spread);
}

TEST_CASE("SecAgg+: one dropout too many in a neighbourhood aborts at that stage", "[secagg]") {
  const SecAggParams p = Params(20, 4, 6, 100);
  const std::vector<int> h = Hood(p, 0);
  const std::set<int> four = {h[1], h[2], h[3], h[4]};  // 4 of the 7: 3 remain, threshold 4
  for (int stage = 0; stage < 4; ++stage) {
    Drops d;
    d[static_cast<std::size_t>(stage)] = four;
    ExpectAbort(p, d, stage);
    const Outcome o = Run(p, RandomInputs(p, 3), d);
    CHECK(o.status.message().find("3 of 7 clients remain in the neighbourhood of client ") !=
          std::string::npos);
    CHECK(o.status.message().find(", threshold 4") != std::string::npos);
  }
}

// Runs stages 0 and 1 for all n clients, returning the server's stage-1 output.
std::map<int, SecAggSharesForYou> ShareAll(SecAggServer& server,
                                           std::vector<SecAggClient>& clients) {
  for (auto& c : clients) {
    auto k = c.AdvertiseKeys();
    REQUIRE(k.ok());
    REQUIRE(server.AddKeys(k.value()).ok());
  }
  auto lists = server.EndAdvertise();
  REQUIRE(lists.ok());
  for (auto& [u, l] : lists.value()) {
    auto s = clients[static_cast<std::size_t>(u)].ShareKeys(l);
    REQUIRE(s.ok());
    REQUIRE(server.AddShares(s.value()).ok());
  }
  auto fy = server.EndSharing();
  REQUIRE(fy.ok());
  return std::move(fy).value();
}

// Chi-square statistic of `counts` against the uniform distribution.
double ChiSquare(const std::vector<double>& counts, double total) {
  const double e = total / static_cast<double>(counts.size());
  double chi = 0;
  for (double c : counts) chi += (c - e) * (c - e) / e;
  return chi;
}

TEST_CASE("SecAgg: the server's view of a masked vector is uniform over the ring", "[secagg]") {
  // 255 degrees of freedom: mean 255, sd 22.6; P(chi2 > 380) is about 5e-7 (Wilson-Hilferty).
  // The masks come from the CSPRNG, so this is a fresh draw every run, with that false-alarm
  // rate; a broken mask (say, a zero self mask or cancelling pairwise masks) gives chi2 ~ 3e7.
  const double kBound = 380;
  const std::size_t kWords = std::size_t{1} << 17;
  for (std::uint64_t modulus : {std::uint64_t{1} << 8, std::uint64_t{1} << 32}) {
    for (int k : {0, 2}) {
      const SecAggParams p = Params(5, 2, k, kWords, modulus);
      SecAggServer server(p, 3);
      std::vector<SecAggClient> clients = MakeClients(p, 3);
      auto fy = ShareAll(server, clients);
      const std::vector<std::uint32_t> zeros(kWords, 0);
      auto y = clients[0].MaskInput(fy[0], zeros.data());
      REQUIRE(y.ok());
      std::vector<double> low(256, 0), high(256, 0);
      for (std::uint32_t w : y->masked) {
        REQUIRE(w < modulus);
        low[w & 0xff] += 1;
        high[(w >> 24) & 0xff] += 1;
      }
      INFO("modulus " << modulus << ", k " << k);
      CHECK(ChiSquare(low, static_cast<double>(kWords)) < kBound);
      if (modulus == (std::uint64_t{1} << 32)) {
        CHECK(ChiSquare(high, static_cast<double>(kWords)) < kBound);
      }
    }
  }
}

TEST_CASE("SecAgg: pairwise masks are in every masked vector and cancel in the sum", "[secagg]") {
  // Exactness alone would not notice missing pairwise masks; here the self masks are rebuilt from
  // the revealed shares and taken out, leaving z_u = y_u - PRG(b_u) - x_u = the pairwise part.
  for (int k : {0, 2}) {
    const SecAggParams p = Params(5, 2, k, 4096);
    SecAggServer server(p, 4);
    std::vector<SecAggClient> clients = MakeClients(p, 4);
    auto fy = ShareAll(server, clients);
    const Inputs x = RandomInputs(p, 8);
    std::vector<std::vector<std::uint32_t>> z;
    for (int u = 0; u < 5; ++u) {
      auto y = clients[static_cast<std::size_t>(u)].MaskInput(
          fy[u], x[static_cast<std::size_t>(u)].data());
      REQUIRE(y.ok());
      REQUIRE(server.AddMaskedInput(y.value()).ok());
      z.push_back(y->masked);
    }
    auto req = server.EndMasking();
    REQUIRE(req.ok());
    std::map<int, std::vector<core::security::ShamirShare>> b_shares;
    for (int u = 0; u < 5; ++u) {
      auto r = clients[static_cast<std::size_t>(u)].Unmask(req.value()[u]);
      REQUIRE(r.ok());
      for (const auto& s : r->shares) {
        REQUIRE(s.kind == SecAggShareKind::kSelfMaskSeed);
        b_shares[s.owner].push_back(s.share);
      }
      REQUIRE(server.AddUnmaskReply(r.value()).ok());
    }
    std::vector<std::uint32_t> total(p.vector_length, 0), prg(p.vector_length);
    for (int u = 0; u < 5; ++u) {
      auto b = core::security::ShamirCombine(b_shares[u], p.threshold);
      REQUIRE(b.ok());
      REQUIRE(core::security::ExpandMask(b.value(), prg.data(), prg.size()).ok());
      auto& zu = z[static_cast<std::size_t>(u)];
      core::security::SubModInPlace(zu.data(), prg.data(), zu.size(), p.modulus);
      core::security::SubModInPlace(zu.data(), x[static_cast<std::size_t>(u)].data(), zu.size(),
                                    p.modulus);
      INFO("k " << k << ", client " << u);
      CHECK(std::count(zu.begin(), zu.end(), 0u) < 8);  // masked by its pairs, not zero
      core::security::AddModInPlace(total.data(), zu.data(), zu.size(), p.modulus);
    }
    CHECK(std::count(total.begin(), total.end(), 0u) == static_cast<std::ptrdiff_t>(total.size()));
    auto sum = server.Finish();
    REQUIRE(sum.ok());
    CHECK(sum.value() == PlainSum(p, x, {0, 1, 2, 3, 4}));
  }
}

// Masked inputs of every client in `fy` (tampered ones as given), the unmask requests, and the
// replies through `edit_reply` (which may change a reply): Finish's result.
Result<std::vector<std::uint32_t>> FinishRound(
    SecAggServer& server, std::vector<SecAggClient>& clients, std::map<int, SecAggSharesForYou>& fy,
    const Inputs& x, const std::function<void(SecAggUnmaskReply&)>& edit_reply,
    std::map<int, Status>* reply_status = nullptr) {
  for (auto& [u, f] : fy) {
    auto y =
        clients[static_cast<std::size_t>(u)].MaskInput(f, x[static_cast<std::size_t>(u)].data());
    REQUIRE(y.ok());
    REQUIRE(server.AddMaskedInput(Wire(y.value(), DecodeSecAggMaskedInput)).ok());
  }
  auto req = server.EndMasking();
  REQUIRE(req.ok());
  for (auto& [u, r] : req.value()) {
    auto rep = clients[static_cast<std::size_t>(u)].Unmask(r);
    REQUIRE(rep.ok());
    edit_reply(rep.value());
    Status st = server.AddUnmaskReply(Wire(rep.value(), DecodeSecAggUnmaskReply));
    if (reply_status != nullptr) (*reply_status)[u] = st;
  }
  return server.Finish();
}

TEST_CASE("SecAgg: a share ciphertext that does not open is its sender's fault, not its receiver's",
          "[secagg]") {
  const SecAggParams p = Params(5, 3, 0, 50);
  const Inputs x = RandomInputs(p, 4);
  for (std::size_t byte : {std::size_t{0}, std::size_t{40}, kSecAggShareCiphertextBytes - 1}) {
    INFO("byte " << byte);
    SecAggServer server(p, 5);
    std::vector<SecAggClient> clients = MakeClients(p, 5);
    auto fy = ShareAll(server, clients);
    // Client 2's ciphertexts for client 1 and client 3: one bit each, as a hostile sender would.
    for (int to : {1, 3}) {
      for (auto& c : fy[to].ciphertexts) {
        if (c.from == 2) c.ciphertext[byte] ^= 0x10;
      }
    }
    auto y1 = clients[1].MaskInput(fy[1], x[1].data());
    REQUIRE(y1.ok());  // the receiver goes on, accusing the sender
    CHECK(y1->accused == std::vector<int>{2});
    REQUIRE(server.AddMaskedInput(y1.value()).ok());
    fy.erase(1);
    auto sum = FinishRound(server, clients, fy, x, [](SecAggUnmaskReply& r) {
      if (r.id == 1 || r.id == 3) CHECK(r.shares.size() == 4);  // none of client 2's
    });
    INFO(sum.status().ToString());
    REQUIRE(sum.ok());
    CHECK(sum.value() == PlainSum(p, x, {0, 1, 2, 3, 4}));  // 2's input is its own: in the sum
    REQUIRE(server.blamed().size() == 1);
    CHECK(server.blamed().count(2) == 1);
    CHECK(server.blamed().at(2).find("accused by client 1") != std::string::npos);
  }
  // A ciphertext relabelled with another sender is not that sender's (associated data): both
  // senders are accused.
  SecAggServer server(p, 5);
  std::vector<SecAggClient> clients = MakeClients(p, 5);
  auto fy = ShareAll(server, clients);
  std::swap(fy[1].ciphertexts[0].ciphertext, fy[1].ciphertexts[1].ciphertext);
  auto y = clients[1].MaskInput(fy[1], x[1].data());
  REQUIRE(y.ok());
  CHECK(y->accused == std::vector<int>{fy[1].ciphertexts[0].from, fy[1].ciphertexts[1].from});
  // An accusation of a client that is not a neighbour in U2 is refused.
  SecAggMaskedInput forged = y.value();
  forged.accused = {1};
  CHECK(server.AddMaskedInput(forged).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("SecAgg: a revealed share at another holder's x is refused, naming the holder",
          "[secagg]") {
  const SecAggParams p = Params(5, 3, 0, 20);
  const Inputs x = RandomInputs(p, 6);
  SecAggServer server(p, 9);
  std::vector<SecAggClient> clients = MakeClients(p, 9);
  auto fy = ShareAll(server, clients);
  std::map<int, Status> replies;
  auto sum = FinishRound(
      server, clients, fy, x,
      [](SecAggUnmaskReply& r) {
        // Client 0 moves its shares to the next holder's point: a duplicate x for Finish.
        if (r.id == 0) {
          for (auto& s : r.shares) s.share.x = s.share.x % 5 + 1;
        }
      },
      &replies);
  CHECK(replies[0].code() == StatusCode::kInvalidArgument);
  CHECK(replies[0].message().find("has x = 2; client 0's shares of it are at x = 1") !=
        std::string::npos);
  for (int u = 1; u < 5; ++u) CHECK(replies[u].ok());
  INFO(sum.status().ToString());
  REQUIRE(sum.ok());
  CHECK(sum.value() == PlainSum(p, x, {0, 1, 2, 3, 4}));
}

TEST_CASE("SecAgg and SecAgg+: a bad revealed share is found among t + 1 and blamed on its holder",
          "[secagg]") {
  // SecAgg 5 of threshold 3, and SecAgg+ n = 12, k = 6, t = 4 with client 5 dropped after
  // sharing (its mask key is reconstructed).
  for (const SecAggParams& p : {Params(5, 3, 0, 20), Params(12, 4, 6, 20)}) {
    INFO("n " << p.num_clients << " k " << p.num_neighbours);
    const Inputs x = RandomInputs(p, 8);
    SecAggServer server(p, 3);
    std::vector<SecAggClient> clients = MakeClients(p, 3);
    auto fy = ShareAll(server, clients);
    const int dropped = p.num_neighbours == 0 ? -1 : 5;
    fy.erase(dropped);
    auto sum = FinishRound(server, clients, fy, x, [](SecAggUnmaskReply& r) {
      if (r.id != 0) return;
      for (auto& s : r.shares) {
        for (auto& v : s.share.y) v = (v + 12345) % core::security::kShamirPrime;
      }
    });
    INFO(sum.status().ToString());
    REQUIRE(sum.ok());
    std::vector<int> in_sum;
    for (int u = 0; u < p.num_clients; ++u) {
      if (u != dropped) in_sum.push_back(u);
    }
    CHECK(sum.value() == PlainSum(p, x, in_sum));
    REQUIRE(server.blamed().size() == 1);
    CHECK(server.blamed().count(0) == 1);
    CHECK(server.blamed().at(0).find("broke the reconstruction") != std::string::npos);
  }
}

TEST_CASE("SecAgg: a client asked for both shares of one client refuses", "[secagg]") {
  const SecAggParams p = Params(5, 3, 0, 64);
  SecAggServer server(p, 8);
  std::vector<SecAggClient> clients = MakeClients(p, 8);
  auto fy = ShareAll(server, clients);
  const Inputs x = RandomInputs(p, 6);
  for (int u = 0; u < 4; ++u) {  // client 4 drops before masking
    auto y = clients[static_cast<std::size_t>(u)].MaskInput(fy[u],
                                                            x[static_cast<std::size_t>(u)].data());
    REQUIRE(y.ok());
    REQUIRE(server.AddMaskedInput(y.value()).ok());
  }
  auto req = server.EndMasking();
  REQUIRE(req.ok());
  const SecAggUnmaskRequest good = req.value()[0];
  CHECK(good.survivors == std::vector<int>{0, 1, 2, 3});
  CHECK(good.dropped == std::vector<int>{4});

  SecAggUnmaskRequest both = good;
  both.dropped = {2, 4};  // 2 survived: its b share and its s share together expose x_2
  auto r = clients[0].Unmask(both);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kPermissionDenied);
  CHECK(r.status().message().find("both") != std::string::npos);
  CHECK(r.status().message().find("client 2") != std::string::npos);

  SecAggUnmaskRequest self = good;
  self.survivors = {1, 2, 3};
  self.dropped = {0, 4};
  r = clients[0].Unmask(self);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kPermissionDenied);

  SecAggUnmaskRequest partial = good;
  partial.dropped = {};  // does not cover U2
  r = clients[0].Unmask(partial);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);

  // The genuine request: one share per client of U2, of the kind its fate asks for.
  r = clients[0].Unmask(good);
  REQUIRE(r.ok());
  REQUIRE(r->shares.size() == 5);
  for (const auto& s : r->shares) {
    CHECK(s.kind == (s.owner == 4 ? SecAggShareKind::kMaskKey : SecAggShareKind::kSelfMaskSeed));
  }
  // Once answered, never again (a second request could ask for the other kind).
  auto again = clients[0].Unmask(good);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);
  // The server takes the reply, refuses it twice, and finishes with the others.
  REQUIRE(server.AddUnmaskReply(r.value()).ok());
  CHECK(server.AddUnmaskReply(r.value()).code() == StatusCode::kAlreadyExists);
  for (int u = 1; u < 4; ++u) {
    auto rep = clients[static_cast<std::size_t>(u)].Unmask(req.value()[u]);
    REQUIRE(rep.ok());
    REQUIRE(server.AddUnmaskReply(rep.value()).ok());
  }
  auto sum = server.Finish();
  REQUIRE(sum.ok());
  CHECK(sum.value() == PlainSum(p, x, {0, 1, 2, 3}));
}

TEST_CASE("SecAgg: out-of-order calls and bad messages are refused, leaving the state as it was",
          "[secagg]") {
  const SecAggParams p = Params(4, 3, 0, 32, 1ull << 20);
  const std::uint64_t round = 21;
  SecAggServer server(p, round);
  std::vector<SecAggClient> clients = MakeClients(p, round);
  const Inputs x = RandomInputs(p, 9);

  // Client order.
  CHECK(clients[0].ShareKeys({}).status().code() == StatusCode::kFailedPrecondition);
  CHECK(clients[0].Unmask({}).status().code() == StatusCode::kFailedPrecondition);
  SecAggClient stranger(7, p, round);
  CHECK(stranger.AdvertiseKeys().status().code() == StatusCode::kInvalidArgument);
  SecAggServer bad_server(Params(4, 5, 0, 32), round);
  CHECK(bad_server.EndAdvertise().status().code() == StatusCode::kInvalidArgument);

  // Stage 0.
  std::vector<SecAggKeys> keys;
  for (auto& c : clients) {
    auto k = c.AdvertiseKeys();
    REQUIRE(k.ok());
    keys.push_back(k.value());
  }
  CHECK(clients[0].AdvertiseKeys().status().code() == StatusCode::kFailedPrecondition);
  CHECK(server.AddShares({round, 0, {}}).code() == StatusCode::kFailedPrecondition);
  CHECK(server.EndSharing().status().code() == StatusCode::kFailedPrecondition);
  SecAggKeys k = keys[0];
  k.round_id = round + 1;
  CHECK(server.AddKeys(k).code() == StatusCode::kInvalidArgument);
  k = keys[0];
  k.id = 4;
  CHECK(server.AddKeys(k).code() == StatusCode::kInvalidArgument);
  k = keys[0];
  k.s_public.pop_back();
  CHECK(server.AddKeys(k).code() == StatusCode::kInvalidArgument);
  for (const auto& kk : keys) REQUIRE(server.AddKeys(kk).ok());
  const Status dup = server.AddKeys(keys[2]);
  CHECK(dup.code() == StatusCode::kAlreadyExists);
  CHECK(dup.message().find("client 2") != std::string::npos);
  auto lists = server.EndAdvertise();
  REQUIRE(lists.ok());
  CHECK(server.AddKeys(keys[0]).code() == StatusCode::kFailedPrecondition);

  // Stage 1: a key list that misses a neighbour, names a stranger or is for another client.
  SecAggKeyList l = lists.value()[0];
  l.neighbours.pop_back();
  CHECK(clients[0].ShareKeys(l).status().code() == StatusCode::kInvalidArgument);
  l = lists.value()[0];
  l.id = 1;
  CHECK(clients[0].ShareKeys(l).status().code() == StatusCode::kInvalidArgument);
  l = lists.value()[0];
  l.survivors = {0, 1};
  CHECK_FALSE(clients[0].ShareKeys(l).ok());
  std::vector<SecAggEncryptedShares> shares;
  for (int u = 0; u < 4; ++u) {
    auto s = clients[static_cast<std::size_t>(u)].ShareKeys(lists.value()[u]);
    REQUIRE(s.ok());
    shares.push_back(s.value());
  }
  SecAggEncryptedShares s = shares[0];
  s.ciphertexts.pop_back();
  CHECK(server.AddShares(s).code() == StatusCode::kInvalidArgument);
  s = shares[0];
  s.ciphertexts[0].ciphertext.push_back(0);
  CHECK(server.AddShares(s).code() == StatusCode::kInvalidArgument);
  s = shares[0];
  s.ciphertexts[1].to = s.ciphertexts[0].to;
  CHECK(server.AddShares(s).code() == StatusCode::kInvalidArgument);
  s = shares[0];
  s.ciphertexts[0].from = 3;
  CHECK(server.AddShares(s).code() == StatusCode::kInvalidArgument);
  for (const auto& ss : shares) REQUIRE(server.AddShares(ss).ok());
  CHECK(server.AddShares(shares[1]).code() == StatusCode::kAlreadyExists);
  auto fy = server.EndSharing();
  REQUIRE(fy.ok());

  // Stage 2: an input word at or above the modulus, then the masked vectors.
  std::vector<std::uint32_t> too_big = x[0];
  too_big[5] = 1u << 20;
  auto y = clients[0].MaskInput(fy.value()[0], too_big.data());
  REQUIRE_FALSE(y.ok());
  CHECK(y.status().message().find("input[5]") != std::string::npos);
  CHECK(clients[0].MaskInput(fy.value()[1], x[0].data()).status().code() ==
        StatusCode::kInvalidArgument);  // another client's shares
  std::vector<SecAggMaskedInput> masked;
  for (int u = 0; u < 4; ++u) {
    auto m = clients[static_cast<std::size_t>(u)].MaskInput(fy.value()[u],
                                                            x[static_cast<std::size_t>(u)].data());
    REQUIRE(m.ok());
    masked.push_back(m.value());
  }
  SecAggMaskedInput m = masked[0];
  m.masked.pop_back();
  CHECK(server.AddMaskedInput(m).code() == StatusCode::kInvalidArgument);
  m = masked[0];
  m.masked[3] = 1u << 20;
  CHECK(server.AddMaskedInput(m).code() == StatusCode::kInvalidArgument);
  m = masked[0];
  m.id = -1;
  CHECK(server.AddMaskedInput(m).code() == StatusCode::kInvalidArgument);
  for (const auto& mm : masked) REQUIRE(server.AddMaskedInput(mm).ok());
  CHECK(server.AddMaskedInput(masked[3]).code() == StatusCode::kAlreadyExists);
  auto req = server.EndMasking();
  REQUIRE(req.ok());

  // Stage 3: a reply with a share of the wrong kind, or missing one.
  std::vector<SecAggUnmaskReply> replies;
  for (int u = 0; u < 4; ++u) {
    auto r = clients[static_cast<std::size_t>(u)].Unmask(req.value()[u]);
    REQUIRE(r.ok());
    replies.push_back(r.value());
  }
  SecAggUnmaskReply r = replies[0];
  r.shares[1].kind = SecAggShareKind::kMaskKey;
  CHECK(server.AddUnmaskReply(r).code() == StatusCode::kInvalidArgument);
  r = replies[0];
  r.shares.pop_back();
  CHECK(server.AddUnmaskReply(r).code() == StatusCode::kInvalidArgument);
  r = replies[0];
  r.shares[0].share.y.pop_back();
  CHECK(server.AddUnmaskReply(r).code() == StatusCode::kInvalidArgument);
  for (const auto& rr : replies) REQUIRE(server.AddUnmaskReply(rr).ok());
  auto sum = server.Finish();
  REQUIRE(sum.ok());
  CHECK(sum.value() == PlainSum(p, x, {0, 1, 2, 3}));
  CHECK(server.Finish().status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("SecAgg: forged shares do not reconstruct and the server reports it", "[secagg]") {
  const SecAggParams p = Params(3, 2, 0, 16);
  SecAggServer server(p, 1);
  std::vector<SecAggClient> clients = MakeClients(p, 1);
  auto fy = ShareAll(server, clients);
  const Inputs x = RandomInputs(p, 1);
  for (int u = 0; u < 2; ++u) {  // client 2 drops: its key is reconstructed
    auto y = clients[static_cast<std::size_t>(u)].MaskInput(fy[u],
                                                            x[static_cast<std::size_t>(u)].data());
    REQUIRE(y.ok());
    REQUIRE(server.AddMaskedInput(y.value()).ok());
  }
  auto req = server.EndMasking();
  REQUIRE(req.ok());
  for (int u = 0; u < 2; ++u) {
    auto r = clients[static_cast<std::size_t>(u)].Unmask(req.value()[u]);
    REQUIRE(r.ok());
    for (auto& s : r->shares) {
      // Chunk 3 (bytes 12..15): past the bits X25519 clamps, which a forgery could change
      // unnoticed and harmlessly.
      if (s.owner == 2 && u == 0) s.share.y[3] = (s.share.y[3] + 1) % core::security::kShamirPrime;
    }
    REQUIRE(server.AddUnmaskReply(r.value()).ok());
  }
  auto sum = server.Finish();
  REQUIRE_FALSE(sum.ok());
  CHECK(sum.status().code() == StatusCode::kDataLoss);
  CHECK(sum.status().message().find("client 2") != std::string::npos);
}

// ---- Codecs ----

template <class T, class D>
void ExpectRefusesDamage(const T& m, D decode) {
  const Bytes good = Encode(m);
  REQUIRE(decode(good).ok());
  for (std::size_t n = 0; n < good.size(); ++n) {  // every truncation
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    const auto r = decode(cut);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  Bytes longer = good;
  longer.push_back(0);
  CHECK(decode(longer).status().message().find("trailing") != std::string::npos);
  Bytes version = good;
  version[4] = static_cast<std::uint8_t>(kSecAggFormatVersion + 1);
  CHECK(decode(version).status().message().find("version") != std::string::npos);
  Bytes magic = good;
  magic[3] = 'X';
  CHECK(decode(magic).status().message().find("magic") != std::string::npos);
  core::Rng rng(good.size());
  for (int i = 0; i < 200; ++i) {  // garbage behind a valid header
    Bytes g(good.begin(), good.begin() + 8);
    const std::size_t extra = static_cast<std::size_t>(rng.UniformInt(64));
    for (std::size_t j = 0; j < extra; ++j) g.push_back(static_cast<std::uint8_t>(rng.NextU64()));
    CHECK_FALSE(decode(g).ok());
  }
}

bool SameKeys(const SecAggKeys& a, const SecAggKeys& b) {
  return a.round_id == b.round_id && a.id == b.id && a.c_public == b.c_public &&
         a.s_public == b.s_public;
}
bool SameCts(const std::vector<SecAggShareCiphertext>& a,
             const std::vector<SecAggShareCiphertext>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].from != b[i].from || a[i].to != b[i].to || a[i].ciphertext != b[i].ciphertext) {
      return false;
    }
  }
  return true;
}

TEST_CASE("SecAgg messages: Encode/Decode round trips; damage and garbage are refused",
          "[secagg]") {
  const SecAggParams p = Params(4, 3, 0, 9);
  const std::uint64_t round = 0x0123456789abcdefull;
  SecAggServer server(p, round);
  std::vector<SecAggClient> clients = MakeClients(p, round);
  std::vector<SecAggKeys> keys;
  for (auto& c : clients) {
    keys.push_back(c.AdvertiseKeys().value());
    REQUIRE(server.AddKeys(keys.back()).ok());
  }
  auto lists = server.EndAdvertise().value();
  std::vector<SecAggEncryptedShares> shares;
  for (int u = 0; u < 4; ++u) {
    shares.push_back(clients[static_cast<std::size_t>(u)].ShareKeys(lists[u]).value());
    REQUIRE(server.AddShares(shares.back()).ok());
  }
  auto fy = server.EndSharing().value();
  const Inputs x = RandomInputs(p, 3);
  std::vector<SecAggMaskedInput> masked;
  for (int u = 0; u < 3; ++u) {
    masked.push_back(clients[static_cast<std::size_t>(u)]
                         .MaskInput(fy[u], x[static_cast<std::size_t>(u)].data())
                         .value());
    REQUIRE(server.AddMaskedInput(masked.back()).ok());
  }
  auto req = server.EndMasking().value();
  const SecAggUnmaskReply reply = clients[0].Unmask(req[0]).value();

  SECTION("round trips") {
    const SecAggKeys k = Wire(keys[1], DecodeSecAggKeys);
    CHECK(SameKeys(k, keys[1]));
    const SecAggKeyList l = Wire(lists[2], DecodeSecAggKeyList);
    CHECK(l.round_id == round);
    CHECK(l.id == 2);
    CHECK(l.survivors == lists[2].survivors);
    REQUIRE(l.neighbours.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(SameKeys(l.neighbours[i], lists[2].neighbours[i]));
    const SecAggEncryptedShares e = Wire(shares[3], DecodeSecAggEncryptedShares);
    CHECK(e.round_id == round);
    CHECK(e.id == 3);
    CHECK(SameCts(e.ciphertexts, shares[3].ciphertexts));
    const SecAggSharesForYou f = Wire(fy[1], DecodeSecAggSharesForYou);
    CHECK(f.id == 1);
    CHECK(f.survivors == fy[1].survivors);
    CHECK(SameCts(f.ciphertexts, fy[1].ciphertexts));
    const SecAggMaskedInput m = Wire(masked[2], DecodeSecAggMaskedInput);
    CHECK(m.id == 2);
    CHECK(m.masked == masked[2].masked);
    const SecAggUnmaskRequest r = Wire(req[0], DecodeSecAggUnmaskRequest);
    CHECK(r.survivors == std::vector<int>{0, 1, 2});
    CHECK(r.dropped == std::vector<int>{3});
    const SecAggUnmaskReply u = Wire(reply, DecodeSecAggUnmaskReply);
    REQUIRE(u.shares.size() == reply.shares.size());
    for (std::size_t i = 0; i < u.shares.size(); ++i) {
      CHECK(u.shares[i].owner == reply.shares[i].owner);
      CHECK(u.shares[i].kind == reply.shares[i].kind);
      CHECK(u.shares[i].share.x == reply.shares[i].share.x);
      CHECK(u.shares[i].share.y == reply.shares[i].share.y);
      CHECK(u.shares[i].share.secret_bytes == 32);
    }
    // Empty lists survive too.
    SecAggUnmaskRequest none;
    none.id = 0;
    const SecAggUnmaskRequest empty = Wire(none, DecodeSecAggUnmaskRequest);
    CHECK(empty.survivors.empty());
    CHECK(empty.dropped.empty());
  }

  SECTION("truncation, trailing bytes, wrong magic or version, garbage") {
    ExpectRefusesDamage(keys[0], DecodeSecAggKeys);
    ExpectRefusesDamage(lists[0], DecodeSecAggKeyList);
    ExpectRefusesDamage(shares[0], DecodeSecAggEncryptedShares);
    ExpectRefusesDamage(fy[0], DecodeSecAggSharesForYou);
    ExpectRefusesDamage(masked[0], DecodeSecAggMaskedInput);
    ExpectRefusesDamage(req[0], DecodeSecAggUnmaskRequest);
    ExpectRefusesDamage(reply, DecodeSecAggUnmaskReply);
    // One message type is not another.
    CHECK_FALSE(DecodeSecAggKeyList(Encode(keys[0])).ok());
    CHECK_FALSE(DecodeSecAggUnmaskRequest(Encode(masked[0])).ok());
    CHECK_FALSE(DecodeSecAggKeys(Bytes{}).ok());
  }

  SECTION("oversized counts are refused before anything is allocated") {
    Bytes b = Encode(req[0]);  // header 8 | round 8 | id 4 | survivors count at 20
    for (int i = 0; i < 4; ++i) b[20 + static_cast<std::size_t>(i)] = 0xff;
    const auto r = DecodeSecAggUnmaskRequest(b);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("survivors count 4294967295") != std::string::npos);
    Bytes mb = Encode(masked[0]);  // u64 word count at 20
    for (int i = 0; i < 8; ++i) mb[20 + static_cast<std::size_t>(i)] = 0xff;
    CHECK_FALSE(DecodeSecAggMaskedInput(mb).ok());
    Bytes id = Encode(keys[0]);  // id at 16, above INT32_MAX
    id[19] = 0x80;
    CHECK(DecodeSecAggKeys(id).status().message().find("INT32_MAX") != std::string::npos);
    Bytes kind = Encode(reply);  // the first share's kind byte, after its owner id at 24
    kind[28] = 9;
    CHECK(DecodeSecAggUnmaskReply(kind).status().message().find("share kind 9") !=
          std::string::npos);
  }
}

// ---- Parameters and graph ----

TEST_CASE(
    "SecAggNeighbours: complete for SecAgg; symmetric k-regular for SecAgg+, fixed by the "
    "seed",
    "[secagg]") {
  const auto all = SecAggNeighbours(Params(7, 4, 0, 1));
  REQUIRE(all.size() == 7);
  for (int u = 0; u < 7; ++u) {
    std::vector<int> others;
    for (int v = 0; v < 7; ++v) {
      if (v != u) others.push_back(v);
    }
    CHECK(all[static_cast<std::size_t>(u)] == others);
  }
  struct Case {
    int n, k;
  };
  for (Case c : {Case{20, 6}, Case{50, 8}, Case{1000, 20}, Case{10, 3}, Case{8, 7}, Case{3, 2},
                 Case{101, 1 + 1}}) {
    INFO("n " << c.n << ", k " << c.k);
    const SecAggParams p = Params(c.n, 1, c.k, 1, 1ull << 32, 42);
    const auto g = SecAggNeighbours(p);
    REQUIRE(g.size() == static_cast<std::size_t>(c.n));
    for (int u = 0; u < c.n; ++u) {
      const auto& nu = g[static_cast<std::size_t>(u)];
      CHECK(nu.size() == static_cast<std::size_t>(c.k));
      CHECK(std::is_sorted(nu.begin(), nu.end()));
      CHECK(std::adjacent_find(nu.begin(), nu.end()) == nu.end());
      for (int v : nu) {
        REQUIRE(v >= 0);
        REQUIRE(v < c.n);
        CHECK(v != u);
        const auto& nv = g[static_cast<std::size_t>(v)];
        CHECK(std::binary_search(nv.begin(), nv.end(), u));
      }
    }
    CHECK(SecAggNeighbours(p) == g);
    if (c.k < c.n - 1 && c.n > 8) {
      CHECK(SecAggNeighbours(Params(c.n, 1, c.k, 1, 1ull << 32, 43)) != g);
    }
  }
  CHECK(SecAggNeighbours(Params(5, 1, 3, 1)).empty());  // invalid: odd k, odd n
}

TEST_CASE("ValidateSecAggParams names the field and what is allowed", "[secagg]") {
  CHECK(ValidateSecAggParams(Params(10, 6, 0, 100)).ok());
  CHECK(ValidateSecAggParams(Params(20, 7, 6, 100)).ok());
  CHECK(ValidateSecAggParams(Params(10, 4, 3, 100)).ok());
  struct Bad {
    SecAggParams p;
    const char* field;
  };
  for (const Bad& b :
       {Bad{Params(1, 1, 0, 10), "num_clients is 1"},
        Bad{Params(10, 0, 0, 10), "threshold is 0; allowed: 1..10"},
        Bad{Params(10, 11, 0, 10), "threshold is 11; allowed: 1..10"},
        Bad{Params(20, 8, 6, 10), "threshold is 8; allowed: 1..7"},
        Bad{Params(10, 2, 10, 10), "num_neighbours is 10"},
        Bad{Params(10, 2, -1, 10), "num_neighbours is -1"},
        Bad{Params(11, 2, 3, 10), "num_neighbours is 3, odd"},
        Bad{Params(10, 2, 0, 10, 3), "modulus is 3"}, Bad{Params(10, 2, 0, 10, 1), "modulus is 1"},
        Bad{Params(10, 2, 0, 10, (1ull << 32) + 0), ""},
        Bad{Params(10, 2, 0, 10, 1ull << 33), "modulus is 8589934592"},
        Bad{Params(10, 2, 0, 0), "vector_length is 0"},
        Bad{Params(70000, 2, 0, 10), "Shamir sharing allows at most 65535"}}) {
    const Status s = ValidateSecAggParams(b.p);
    if (std::string(b.field).empty()) {
      CHECK(s.ok());  // 2^32 itself is allowed
      continue;
    }
    INFO(s.ToString());
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message().find(b.field) != std::string::npos);
  }
  // SecAgg+ makes large rounds possible: the neighbourhood, not n, is what Shamir limits.
  CHECK(ValidateSecAggParams(Params(70000, 20, 34, 10)).ok());
}

}  // namespace
}  // namespace fedml::algorithms
