// Authenticated SecAgg (fedml/algorithms/protocols/secagg_auth.h): a signed round with real
// certificates gives the exact sum; a key list whose neighbour keys were substituted (unsigned,
// signed under a certificate of another CA, or signed by a real client claiming another id),
// whose signature is truncated or whose credentials do not match, is refused; an unmask request
// for another U3 than the one signed, or with too few valid signatures, is refused; the
// encodings bound signatures and certificates.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <vector>

#include "../temp_dir.h"
#include "fedml/algorithms/protocols/secagg_auth.h"
#include "fedml/core/security/credentials.h"

using namespace fedml;
using namespace fedml::algorithms;
using Catch::Matchers::Contains;
using core::security::CertificateAuthority;
using core::security::SigningKey;

namespace {

constexpr int kN = 4;
constexpr std::uint64_t kRound = 7;
// Participant i is client 10 + i (certificates for clients 0..19).
std::int64_t ClientOf(int i) { return 10 + i; }

std::string Read(const std::string& path) {
  auto text = core::security::ReadTextFile(path);
  REQUIRE(text.ok());
  return *text;
}

SecAggParams Params(int n = kN, int k = 0) {
  SecAggParams p;
  p.num_clients = n;
  p.num_neighbours = k;
  p.threshold = 3;
  p.vector_length = 3;
  p.graph_seed = 99;
  return p;
}

struct Fixture {
  fedml::testing::TempDir dir{"fedml_secagg_auth"};
  SecAggParams params;
  int n;
  std::vector<SecAggClient> clients;
  std::vector<std::unique_ptr<SecAggClientAuth>> auths;
  SecAggServer server;
  std::unique_ptr<SecAggServerAuth> server_auth;
  std::map<int, SecAggSignedKeyList> lists;  // what each client is sent at stage 1

  explicit Fixture(SecAggParams p = Params()) : params(p), n(p.num_clients), server(p, kRound) {
    for (const char* name : {"a", "b"}) {
      core::security::CertOptions o;
      o.out_dir = dir.File(name);
      o.clients = 20;
      REQUIRE(core::security::GenerateCredentials(o).ok());
    }
    auto ca = CertificateAuthority::FromPem(Read(dir.File("a/ca.pem")));
    REQUIRE(ca.ok());
    server_auth = std::make_unique<SecAggServerAuth>(params, kRound, *ca);
    for (int i = 0; i < n; ++i) {
      clients.emplace_back(i, params, kRound);
      auths.push_back(
          std::make_unique<SecAggClientAuth>(params, kRound, i, ClientOf(i), Identity(i)));
    }
    for (int i = 0; i < n; ++i) {
      auto keys = clients[i].AdvertiseKeys();
      REQUIRE(keys.ok());
      auto signed_keys = auths[i]->SignKeys(*keys);
      REQUIRE(signed_keys.ok());
      auto decoded = DecodeSecAggSignedKeys(Encode(*signed_keys));
      REQUIRE(decoded.ok());
      REQUIRE(server_auth->AddKeys(*decoded, ClientOf(i)).ok());
      REQUIRE(server.AddKeys(decoded->keys).ok());
    }
    auto key_lists = server.EndAdvertise();
    REQUIRE(key_lists.ok());
    for (auto& [i, list] : *key_lists) lists[i] = server_auth->SignedList(list);
  }

  SecAggIdentity Identity(int i, const char* ca_name = "a") const {
    const std::string base =
        dir.File(std::string(ca_name) + "/client-" + std::to_string(ClientOf(i)));
    auto key = SigningKey::FromPem(Read(base + ".key"));
    auto ca = CertificateAuthority::FromPem(Read(dir.File("a/ca.pem")));
    REQUIRE(key.ok());
    REQUIRE(ca.ok());
    return SecAggIdentity{*key, Read(base + ".pem"), *ca};
  }

  // Runs stages 1 to 3 honestly after every key list checked; returns the sum.
  std::vector<std::uint32_t> Finish(
      const std::function<void(int, SecAggSignedUnmaskRequest&)>& tamper = {},
      std::vector<Status>* unmask_status = nullptr) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(auths[i]->CheckKeyList(*DecodeSecAggSignedKeyList(Encode(lists[i]))).ok());
      auto shares = clients[i].ShareKeys(lists[i].list);
      REQUIRE(shares.ok());
      REQUIRE(server.AddShares(*shares).ok());
    }
    auto for_you = server.EndSharing();
    REQUIRE(for_you.ok());
    for (int i = 0; i < n; ++i) {
      const std::vector<std::uint32_t> input = {std::uint32_t(i + 1), 2, 3};
      auto masked = clients[i].MaskInput((*for_you)[i], input.data());
      REQUIRE(masked.ok());
      auths[i]->NoteSurvivors((*for_you)[i].survivors);
      REQUIRE(server.AddMaskedInput(*masked).ok());
    }
    auto requests = server.EndMasking();
    REQUIRE(requests.ok());
    server_auth->BeginConsistency(server.survivors());
    for (int i = 0; i < n; ++i) {
      auto request = DecodeSecAggConsistencyRequest(Encode(server_auth->ConsistencyRequest(i)));
      REQUIRE(request.ok());
      auto signature = auths[i]->SignSurvivors(*request);
      REQUIRE(signature.ok());
      REQUIRE(server_auth->AddSignature(*DecodeSecAggSurvivorSignature(Encode(*signature))).ok());
    }
    CHECK(server_auth->signers().size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      SecAggSignedUnmaskRequest signed_request = server_auth->SignedRequest((*requests)[i]);
      // The signatures of the recipient's neighbourhood, itself included.
      const int hood = params.num_neighbours == 0 ? n : params.num_neighbours + 1;
      CHECK(signed_request.signatures.size() == static_cast<std::size_t>(hood));
      if (tamper) tamper(i, signed_request);
      auto decoded = DecodeSecAggSignedUnmaskRequest(Encode(signed_request));
      REQUIRE(decoded.ok());
      auto request = auths[i]->CheckUnmaskRequest(*decoded);
      if (unmask_status) unmask_status->push_back(request.status());
      if (!request.ok()) continue;
      auto reply = clients[i].Unmask(*request);
      REQUIRE(reply.ok());
      REQUIRE(server.AddUnmaskReply(*reply).ok());
    }
    if (unmask_status) return {};
    auto sum = server.Finish();
    REQUIRE(sum.ok());
    return *sum;
  }
};

Status CheckList(Fixture& f, const SecAggSignedKeyList& list) {
  return f.auths[0]->CheckKeyList(list);
}

}  // namespace

TEST_CASE("a signed SecAgg round gives the exact sum", "[secagg][secagg_auth]") {
  Fixture f;
  CHECK(f.Finish() == std::vector<std::uint32_t>{1 + 2 + 3 + 4, 8, 12});
}

TEST_CASE("a signed SecAgg+ round gives the exact sum", "[secagg][secagg_auth]") {
  Fixture f(Params(8, 4));  // k = 4: neighbourhoods of 5, t = 3
  CHECK(f.Finish() == std::vector<std::uint32_t>{36, 16, 24});
}

TEST_CASE("a key list with substituted neighbour keys is refused", "[secagg][secagg_auth]") {
  Fixture f;
  SecAggSignedKeyList list = f.lists[0];
  REQUIRE(list.list.neighbours.size() == 3);
  // The server's own keys for participant 1.
  SecAggClient puppet(1, Params(), kRound);
  auto fake = puppet.AdvertiseKeys();
  REQUIRE(fake.ok());

  SECTION("with participant 1's signature left as it was") {
    list.list.neighbours[0] = *fake;
    auto st = CheckList(f, list);
    CHECK(st.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(st.message(), Contains("participant 1 (client 11)"));
    CHECK_THAT(st.message(), Contains("signature"));
  }
  // The fake keys in participant 1's place, signed with `identity` claiming client 11.
  auto forge = [&](const SecAggIdentity& identity) {
    SecAggClientAuth forger(Params(), kRound, 1, ClientOf(1), identity);
    auto forged = forger.SignKeys(*fake);
    REQUIRE(forged.ok());
    list.list.neighbours[0] = *fake;
    list.credentials[0] = forged->credential;
    auto st = CheckList(f, list);
    CHECK(st.code() == StatusCode::kPermissionDenied);
    return st.message();
  };
  SECTION("signed under a certificate of another CA") {
    CHECK_THAT(forge(f.Identity(1, "b")),
               Contains("not a client certificate of this deployment's CA"));
  }
  SECTION("signed by a real client (participant 3's) claiming participant 1's client id") {
    CHECK_THAT(forge(f.Identity(3)), Contains("names client 13"));
  }
  SECTION("the same client's credential for two participants") {
    list.credentials[1].client_id = list.credentials[0].client_id;
    CHECK(CheckList(f, list).code() == StatusCode::kPermissionDenied);
  }
  SECTION("a truncated signature") {
    list.credentials[2].signature.pop_back();
    auto st = CheckList(f, list);
    CHECK(st.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(st.message(), Contains("participant 3"));
  }
  SECTION("more neighbours than the round has, refused before any is checked") {
    list.list.neighbours.resize(kN, list.list.neighbours[0]);
    list.credentials.resize(kN, list.credentials[0]);
    CHECK(CheckList(f, list).code() == StatusCode::kInvalidArgument);
  }
  SECTION("credentials that do not match the neighbours") {
    list.credentials.pop_back();
    CHECK(CheckList(f, list).code() == StatusCode::kInvalidArgument);
  }
  SECTION("keys signed for another round do not verify in this one") {
    SecAggClientAuth other_round(Params(), kRound + 1, 1, ClientOf(1), f.Identity(1));
    auto old = other_round.SignKeys(*fake);
    REQUIRE(old.ok());
    list.list.neighbours[0] = *fake;
    list.credentials[0] = old->credential;
    CHECK(CheckList(f, list).code() == StatusCode::kPermissionDenied);
  }
  // The server object refuses the same substitutions when they come from a client.
  SecAggServerAuth server(Params(), kRound, f.Identity(0).ca);
  SecAggClientAuth forger(Params(), kRound, 1, ClientOf(1), f.Identity(3));
  auto forged = forger.SignKeys(*fake);
  REQUIRE(forged.ok());
  CHECK(server.AddKeys(*forged, ClientOf(1)).code() == StatusCode::kPermissionDenied);
}

TEST_CASE("clients refuse to unmask for a U3 other than the one they signed",
          "[secagg][secagg_auth]") {
  Fixture f;
  std::vector<Status> status;
  SECTION("another U3 (client 3 dropped) with the signatures over the real one") {
    f.Finish(
        [](int i, SecAggSignedUnmaskRequest& r) {
          if (i != 0) return;
          r.survivors = {0, 1, 2};
          r.request.survivors = {0, 1, 2};
          r.request.dropped = {3};
        },
        &status);
    CHECK(status[0].code() == StatusCode::kPermissionDenied);
    CHECK_THAT(status[0].message(), Contains("U3 this client signed"));
  }
  SECTION("the signed U3 but a split that asks for both secrets of client 3") {
    f.Finish(
        [](int i, SecAggSignedUnmaskRequest& r) {
          if (i != 0) return;
          r.request.survivors = {0, 1, 2};
          r.request.dropped = {3};
        },
        &status);
    CHECK(status[0].code() == StatusCode::kPermissionDenied);
  }
  SECTION("too few valid signatures") {
    f.Finish(
        [](int i, SecAggSignedUnmaskRequest& r) {
          if (i != 0) return;
          r.signatures.resize(1);                        // only participant 0's own is left
          r.signatures.push_back(r.signatures.front());  // repeated, and not 1's
          r.signatures.back().id = 1;
        },
        &status);
    CHECK(status[0].code() == StatusCode::kPermissionDenied);
    CHECK_THAT(status[0].message(), Contains("valid signatures"));
  }
  for (std::size_t i = 1; i < status.size(); ++i) CHECK(status[i].ok());
}

TEST_CASE("signed messages bound signatures and certificates", "[secagg][secagg_auth]") {
  SecAggSignedKeys keys;
  keys.keys.id = 0;
  keys.keys.c_public.assign(32, 1);
  keys.keys.s_public.assign(32, 2);
  keys.credential.id = 0;
  keys.credential.client_id = 1;
  keys.credential.signature.assign(64, 3);
  keys.credential.certificate = std::string(core::security::kMaxCertificatePemBytes, 'c');
  CHECK(DecodeSecAggSignedKeys(Encode(keys)).ok());
  keys.credential.certificate += "c";
  CHECK(DecodeSecAggSignedKeys(Encode(keys)).status().code() == StatusCode::kInvalidArgument);
  keys.credential.certificate.pop_back();
  keys.credential.signature.assign(core::security::kMaxSignatureBytes + 1, 3);
  CHECK(DecodeSecAggSignedKeys(Encode(keys)).status().code() == StatusCode::kInvalidArgument);

  SecAggSurvivorSignature signature{kRound, 0, core::Bytes(core::security::kMaxSignatureBytes + 1)};
  CHECK_FALSE(DecodeSecAggSurvivorSignature(Encode(signature)).ok());
}
