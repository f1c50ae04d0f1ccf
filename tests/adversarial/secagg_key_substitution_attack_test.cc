// Red team, attack 2 of docs/security.md (its key part): a malicious server substitutes the keys it
// forwards to one honest client (the victim, client 0) for keys of its own making, one per
// neighbour, and runs a shadow round with the victim against peers it simulates: real
// SecAggClient objects whose secrets it holds, with zero inputs, driven through a real
// SecAggServer. The victim's share ciphertexts open for those peers, its masks are agreed with
// them, so the shadow round's sum is the victim's update alone. Everything else is the real
// server code (RoundController over gRPC with mutual TLS); the attacker sits between it and its
// transport, replacing what goes to the victim and reading what comes back.
//
// Without signed keys (how main ran a deployment) the attack recovers the victim's update: the
// first test shows it, so the attack is real. With signed rounds the victim must refuse its key
// list, whatever signature the attacker puts on its keys (the real peers' ones left as they were,
// its own under a certificate of another CA, or a real client's that names another client), and
// send nothing that lets the shadow round finish.
//
// The consistency round: a server that tells two clients a U3 without client 4 (to ask them for
// client 4's mask key while the others reveal its self-mask seed) gets no share from them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/algorithms/protocols/secagg_auth.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/core/security/signatures.h"
#include "fedml/core/wire.h"
#include "secure_round_harness.h"

using namespace fedml;
using namespace fedml::api;
namespace alg = fedml::algorithms;

namespace {

using fedml::testing::DistinctTrainer;
constexpr int kClients = 5;
constexpr int kVictim = 0;  // participant 0 = client 0 = rank 1

/// How the attacker dresses its substituted keys in a signed round.
enum class Forgery {
  kKeepReal,     // the real neighbours' credentials, unchanged
  kForeignCa,    // its own CA's certificates, one per claimed client id
  kRealOtherId,  // a real client's certificate and key (client 4's), claiming each neighbour's id
};

/// What the attacker got.
struct Loot {
  std::mutex mu;
  bool substituted = false;    // the victim was sent the attacker's key list
  bool victim_shares = false;  // the victim's share ciphertexts (for the attacker's keys)
  bool victim_masked = false;  // the victim's masked input
  std::string victim_error;    // what the victim answered instead, if anything
  Result<std::vector<std::uint32_t>> sum = Status::FailedPrecondition("no shadow round");
  SecureTask task;
};

core::Message DecodeOrFail(const std::vector<std::uint8_t>& payload) {
  auto m = core::Decode(payload);
  REQUIRE(m.ok());
  return std::move(m).value();
}

std::vector<std::uint8_t> EncodeOrFail(const core::Message& m) {
  auto frame = core::Encode(m);
  REQUIRE(frame.ok());
  return std::vector<std::uint8_t>(frame->begin(), frame->end());
}

/// A hostile server's transport layer: the server code's communicator, passed through except
/// for what Send and Recv change.
class ServerInTheMiddle : public core::Communicator {
 public:
  explicit ServerInTheMiddle(core::Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::string backend() const override { return inner_.backend(); }
  void Abort(const Status& reason) override { inner_.Abort(reason); }

 protected:
  core::Communicator& inner_;
};

/// The key-substituting server: runs the shadow round with the victim (see the file comment).
class KeySubstitutingServer final : public ServerInTheMiddle {
 public:
  KeySubstitutingServer(core::Communicator& inner, const fedml::testing::TempDir& dir,
                        Forgery forgery, Loot& loot)
      : ServerInTheMiddle(inner), dir_(dir), forgery_(forgery), loot_(loot) {}

  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    if (dst == kVictim + 1) {
      std::lock_guard<std::mutex> lock(loot_.mu);
      core::Message m = DecodeOrFail(payload);
      if (m.type == core::MessageType::kTrainTask && HasSecureTaskAttrs(m.attrs)) {
        auto task = SecureTaskFromAttrs(m.attrs);
        REQUIRE(task.ok());
        loot_.task = *task;
      } else if (m.type == core::MessageType::kProtocol) {
        const std::string stage = m.attrs["stage"];
        core::Bytes blob(m.blob.begin(), m.blob.end());
        if (stage == kSecureStageShareKeys && victim_keys_) {
          blob = SubstituteKeys(blob);
        } else if (stage == kSecureStageMaskInput && for_victim_) {
          blob = alg::Encode(*for_victim_);
        }
        m.blob.assign(blob.begin(), blob.end());
        payload = EncodeOrFail(m);
      }
    }
    return inner_.Send(dst, std::move(payload));
  }

  Result<core::Envelope> Recv(int source, core::Deadline deadline) override {
    auto envelope = inner_.Recv(source, deadline);
    if (envelope.ok() && envelope->source == kVictim + 1) Observe(envelope->payload);
    return envelope;
  }

 private:
  // What the victim sends: its keys, then (if it accepted the substitution) its shares and
  // its masked input, which finish the shadow round.
  void Observe(const std::vector<std::uint8_t>& payload) {
    auto decoded = core::Decode(payload);
    if (!decoded.ok()) return;
    core::Message& m = *decoded;
    const core::Bytes blob(m.blob.begin(), m.blob.end());
    std::lock_guard<std::mutex> lock(loot_.mu);
    if (m.type == core::MessageType::kError) {
      loot_.victim_error += m.attrs["error"] + "\n";
      return;
    }
    if (m.type == core::MessageType::kClientUpdate && !blob.empty()) {
      auto signed_keys = alg::DecodeSecAggSignedKeys(blob);
      auto keys = signed_keys.ok() ? Result<alg::SecAggKeys>(signed_keys->keys)
                                   : alg::DecodeSecAggKeys(blob);
      if (keys.ok()) StartShadow(*keys);
      return;
    }
    if (m.type != core::MessageType::kProtocol || !shadow_) return;
    const std::string stage = m.attrs["stage"];
    if (stage == kSecureStageShareKeys) {
      auto shares = alg::DecodeSecAggEncryptedShares(blob);
      if (!shares.ok() || !shadow_->AddShares(*shares).ok()) return;
      loot_.victim_shares = true;
      auto for_you = shadow_->EndSharing();
      REQUIRE(for_you.ok());
      for_victim_ = (*for_you)[kVictim];
      const std::vector<std::uint32_t> zeros(loot_.task.params.vector_length, 0);
      for (auto& [j, puppet] : puppets_) {
        auto masked = puppet.MaskInput((*for_you)[j], zeros.data());
        REQUIRE(masked.ok());
        REQUIRE(shadow_->AddMaskedInput(*masked).ok());
      }
    } else if (stage == kSecureStageMaskInput) {
      auto masked = alg::DecodeSecAggMaskedInput(blob);
      if (!masked.ok() || !shadow_->AddMaskedInput(*masked).ok()) return;
      loot_.victim_masked = true;
      auto requests = shadow_->EndMasking();
      REQUIRE(requests.ok());
      for (auto& [j, puppet] : puppets_) {
        auto reply = puppet.Unmask((*requests)[j]);
        REQUIRE(reply.ok());
        REQUIRE(shadow_->AddUnmaskReply(*reply).ok());
      }
      loot_.sum = shadow_->Finish();
    }
  }

  // The shadow round's stage 0: the victim's real keys and one puppet per other participant.
  void StartShadow(const alg::SecAggKeys& victim) {
    const SecureTask& task = loot_.task;
    shadow_ = std::make_unique<alg::SecAggServer>(task.params, task.round_id);
    REQUIRE(shadow_->AddKeys(victim).ok());
    for (int j = 0; j < task.params.num_clients; ++j) {
      if (j == kVictim) continue;
      auto it = puppets_.emplace(j, alg::SecAggClient(j, task.params, task.round_id)).first;
      auto keys = it->second.AdvertiseKeys();
      REQUIRE(keys.ok());
      REQUIRE(shadow_->AddKeys(*keys).ok());
    }
    auto lists = shadow_->EndAdvertise();
    REQUIRE(lists.ok());
    for (auto& [j, puppet] : puppets_) {
      auto shares = puppet.ShareKeys((*lists)[j]);
      REQUIRE(shares.ok());
      REQUIRE(shadow_->AddShares(*shares).ok());
    }
    victim_list_ = (*lists)[kVictim];
    victim_keys_ = true;
  }

  // The victim's key list: the puppets' keys, dressed as `forgery_` says in a signed round.
  core::Bytes SubstituteKeys(const core::Bytes& real) {
    loot_.substituted = true;
    auto real_signed = alg::DecodeSecAggSignedKeyList(real);
    if (!real_signed.ok()) return alg::Encode(victim_list_);  // an unsigned round
    alg::SecAggSignedKeyList out;
    out.list = victim_list_;
    for (std::size_t i = 0; i < out.list.neighbours.size(); ++i) {
      const alg::SecAggKeys& keys = out.list.neighbours[i];
      alg::SecAggKeyCredential credential = real_signed->credentials[i];  // kKeepReal
      if (forgery_ != Forgery::kKeepReal) {
        // Signs as client j (its claimed id), with a key the attacker holds.
        const std::string cert_dir = forgery_ == Forgery::kForeignCa ? "evil" : "certs";
        const int signer = forgery_ == Forgery::kForeignCa ? keys.id : kClients - 1;
        const auto identity = Identity(cert_dir, signer);
        alg::SecAggClientAuth forger(loot_.task.params, loot_.task.round_id, keys.id, keys.id,
                                     identity);
        auto forged = forger.SignKeys(keys);
        REQUIRE(forged.ok());
        credential = forged->credential;
      }
      out.credentials.push_back(credential);
    }
    return alg::Encode(out);
  }

  alg::SecAggIdentity Identity(const std::string& cert_dir, int id) const {
    auto read = [](const std::string& path) {
      auto text = core::security::ReadTextFile(path);
      REQUIRE(text.ok());
      return *text;
    };
    const std::string base = dir_.File(cert_dir + "/client-" + std::to_string(id));
    auto key = core::security::SigningKey::FromPem(read(base + ".key"));
    auto ca = core::security::CertificateAuthority::FromPem(read(dir_.File(cert_dir + "/ca.pem")));
    REQUIRE(key.ok());
    REQUIRE(ca.ok());
    return alg::SecAggIdentity{*key, read(base + ".pem"), *ca};
  }

  const fedml::testing::TempDir& dir_;
  Forgery forgery_;
  Loot& loot_;
  std::unique_ptr<alg::SecAggServer> shadow_;
  std::map<int, alg::SecAggClient> puppets_;
  alg::SecAggKeyList victim_list_;
  bool victim_keys_ = false;
  std::optional<alg::SecAggSharesForYou> for_victim_;
};

/// SecAgg, threshold 3 of 5; signed when `signed_round` (the server checks against dir's CA).
SecureAggregationOptions SecAgg3Of5(const fedml::testing::TempDir& dir, bool signed_round) {
  SecureAggregationOptions secure;
  secure.protocol = "secagg";
  secure.reconstruction_threshold = 3;
  if (signed_round) secure.signing_ca_pem = fedml::testing::CaOf(dir);
  return secure;
}

/// Every client honest, with its certificate (so signing, and refusing unsigned rounds) when
/// `with_identity`.
std::function<Status(core::Communicator&, int)> Honest(const fedml::testing::TempDir& dir,
                                                       bool with_identity) {
  return [&dir, with_identity](core::Communicator& comm, int id) {
    WorkerOptions wo;
    if (with_identity) wo.secure_identity = fedml::testing::IdentityOf(dir, id);
    return fedml::testing::ServeHonestly(comm, id, wo);
  };
}

/// SecAgg, threshold 3 of 5, over mTLS with the key-substituting server; `signed_round` gives
/// the clients their certificates and the server the CA.
void RunAttack(const char* name, bool signed_round, Forgery forgery, Loot& loot,
               fedml::testing::SecureRun& run) {
  const fedml::testing::TempDir dir(name);
  fedml::testing::MakeCredentials(dir, kClients);
  core::security::CertOptions evil;  // the attacker's own CA
  evil.out_dir = dir.File("evil");
  evil.clients = kClients;
  REQUIRE(core::security::GenerateCredentials(evil).ok());
  run = fedml::testing::RunSecureRound(dir, kClients, SecAgg3Of5(dir, signed_round),
                                       Honest(dir, signed_round), [&](core::Communicator& inner) {
                                         return std::make_unique<KeySubstitutingServer>(
                                             inner, dir, forgery, loot);
                                       });
}

/// The victim's model as the shadow round's sum gives it (the puppets' inputs are zeros).
float Recovered(Loot& loot) {
  REQUIRE(loot.sum.ok());
  auto mean = SecureMeanFromSum(*loot.sum, 1, fedml::testing::Zeros(), loot.task);
  REQUIRE(mean.ok());
  return mean->model.data()[0];
}

void ExpectRefused(const char* name, Forgery forgery) {
  Loot loot;
  fedml::testing::SecureRun run;
  RunAttack(name, /*signed_round=*/true, forgery, loot, run);
  INFO(loot.victim_error);
  CHECK(loot.substituted);
  // The victim refused its key list, naming a neighbour, and sent nothing more.
  CHECK_FALSE(loot.victim_shares);
  CHECK_FALSE(loot.victim_masked);
  CHECK(loot.victim_error.find("refusing the key list: participant") != std::string::npos);
  CHECK_FALSE(loot.sum.ok());
  for (const Status& st : run.client_status) CHECK(st.ok());  // everyone served on
}

}  // namespace

TEST_CASE("without signed keys a server that substitutes a client's neighbour keys unmasks it",
          "[adversarial][secagg]") {
  Loot loot;
  fedml::testing::SecureRun run;
  RunAttack("fedml_attack_secagg_keys_unsigned", /*signed_round=*/false, Forgery::kKeepReal, loot,
            run);
  CHECK(loot.substituted);
  CHECK(loot.victim_shares);
  CHECK(loot.victim_masked);
  // The attack works: what main allowed over mutual TLS, and what signed rounds stop.
  CHECK(std::fabs(Recovered(loot) - DistinctTrainer::Delta(kVictim)) < 1e-3);
}

TEST_CASE("a client refuses substituted neighbour keys under the real peers' signatures",
          "[adversarial][secagg]") {
  ExpectRefused("fedml_attack_secagg_keys_keep", Forgery::kKeepReal);
}

TEST_CASE("a client refuses substituted keys signed under another CA's certificates",
          "[adversarial][secagg]") {
  ExpectRefused("fedml_attack_secagg_keys_foreign_ca", Forgery::kForeignCa);
}

TEST_CASE("a client refuses substituted keys signed by a real client claiming other ids",
          "[adversarial][secagg]") {
  ExpectRefused("fedml_attack_secagg_keys_other_id", Forgery::kRealOtherId);
}

TEST_CASE("an honest signed secure round over mutual TLS gives the exact mean",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_secagg_signed_honest");
  fedml::testing::MakeCredentials(dir, kClients);
  auto run =
      fedml::testing::RunSecureRound(dir, kClients, SecAgg3Of5(dir, true), Honest(dir, true));
  REQUIRE(run.model.ok());
  REQUIRE(run.history.size() == 1);
  const RoundMetrics& m = run.history[0];
  CHECK(m.dropped == 0);
  CHECK(m.refused == 0);
  CHECK(m.extra.count("secagg_aborted") == 0);
  float mean = 0.0f;
  for (int i = 0; i < kClients; ++i) mean += DistinctTrainer::Delta(i) / kClients;
  for (std::size_t i = 0; i < run.model->numel(); ++i) {
    CHECK(std::fabs(run.model->data()[i] - mean) < 1e-3);
  }
}

TEST_CASE("clients with certificates refuse an unsigned secure round before training",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_secagg_unsigned_refused");
  fedml::testing::MakeCredentials(dir, kClients);
  DistinctTrainer::trained = 0;
  // A server that leaves the signatures out.
  auto run =
      fedml::testing::RunSecureRound(dir, kClients, SecAgg3Of5(dir, false), Honest(dir, true));
  REQUIRE(run.model.ok());
  REQUIRE(run.history.size() == 1);
  CHECK(run.history[0].extra.count("secagg_aborted") == 1);
  CHECK(DistinctTrainer::trained == 0);
}

namespace {

constexpr int kDenied = 4;         // the client whose secrets the server wants both of
constexpr int kFooled[] = {2, 3};  // the clients told that it dropped

/// What the hostile server of the consistency test got from clients 2 and 3.
struct SplitLoot {
  bool injected = false;
  std::map<int, std::string> errors;  // their answers to the forged unmask requests
  int mask_key_shares_of_denied = 0;  // shares of client 4's mask key they revealed
};

/// The hostile server of the consistency test: tells clients 2 and 3 a U3 without client 4, then
/// asks them (in unmask requests of its own, sent before the real server's for the others) for
/// client 4's mask-key shares, with every survivor signature it collected, and reads their
/// answers itself.
class SurvivorSplittingServer final : public ServerInTheMiddle {
 public:
  SurvivorSplittingServer(core::Communicator& inner, SplitLoot& loot)
      : ServerInTheMiddle(inner), loot_(loot) {}

  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    std::lock_guard<std::mutex> lock(mu_);
    core::Message m = DecodeOrFail(payload);
    const bool fooled = dst == kFooled[0] + 1 || dst == kFooled[1] + 1;
    const bool protocol = m.type == core::MessageType::kProtocol;
    if (protocol && m.attrs["stage"] == kSecureStageConsistency && fooled) {
      auto request = alg::DecodeSecAggConsistencyRequest(core::Bytes(m.blob.begin(), m.blob.end()));
      REQUIRE(request.ok());
      request->survivors.erase(
          std::remove(request->survivors.begin(), request->survivors.end(), kDenied),
          request->survivors.end());
      fake_u3_ = request->survivors;
      const core::Bytes blob = alg::Encode(*request);
      m.blob.assign(blob.begin(), blob.end());
      payload = EncodeOrFail(m);
    } else if (protocol && m.attrs["stage"] == kSecureStageUnmask && !loot_.injected) {
      Inject(m);
    }
    return inner_.Send(dst, std::move(payload));
  }

  Result<core::Envelope> Recv(int source, core::Deadline deadline) override {
    auto envelope = inner_.Recv(source, deadline);
    if (!envelope.ok()) return envelope;
    auto m = core::Decode(envelope->payload);
    if (m.ok() && m->type == core::MessageType::kProtocol &&
        m->attrs["stage"] == kSecureStageConsistency) {
      auto signature =
          alg::DecodeSecAggSurvivorSignature(core::Bytes(m->blob.begin(), m->blob.end()));
      std::lock_guard<std::mutex> lock(mu_);
      if (signature.ok()) signatures_.push_back(*signature);
    }
    return envelope;
  }

 private:
  // The forged unmask requests for clients 2 and 3, modelled on a real one; their answers are
  // read here, before the real server's requests go out (frames from one rank arrive in order).
  void Inject(const core::Message& real) {
    auto signed_request =
        alg::DecodeSecAggSignedUnmaskRequest(core::Bytes(real.blob.begin(), real.blob.end()));
    REQUIRE(signed_request.ok());
    for (int id : kFooled) {
      alg::SecAggSignedUnmaskRequest forged;
      forged.request.round_id = signed_request->request.round_id;
      forged.request.id = id;
      forged.request.survivors = fake_u3_;
      forged.request.dropped = {kDenied};
      forged.survivors = fake_u3_;
      forged.signatures = signatures_;  // 0, 1, 4 over the real U3; 2, 3 over the fake one
      core::Message m = real;
      m.receiver = id + 1;
      m.client_ids = {id};
      const core::Bytes blob = alg::Encode(forged);
      m.blob.assign(blob.begin(), blob.end());
      REQUIRE(inner_.Send(id + 1, EncodeOrFail(m)).ok());
    }
    loot_.injected = true;
    for (int id : kFooled) {
      auto answer = inner_.Recv(id + 1, core::DeadlineAfter(std::chrono::seconds(20)));
      REQUIRE(answer.ok());
      auto m = core::Decode(answer->payload);
      REQUIRE(m.ok());
      if (m->type == core::MessageType::kError) {
        loot_.errors[id] = m->attrs["error"];
        continue;
      }
      auto reply = alg::DecodeSecAggUnmaskReply(core::Bytes(m->blob.begin(), m->blob.end()));
      if (!reply.ok()) continue;
      for (const auto& share : reply->shares) {
        if (share.owner == kDenied && share.kind == alg::SecAggShareKind::kMaskKey) {
          ++loot_.mask_key_shares_of_denied;
        }
      }
    }
  }

  SplitLoot& loot_;
  std::mutex mu_;
  std::vector<int> fake_u3_;
  std::vector<alg::SecAggSurvivorSignature> signatures_;
};

}  // namespace

TEST_CASE("clients told a different U3 than the others refuse to unmask", "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_attack_secagg_split_u3");
  fedml::testing::MakeCredentials(dir, kClients);
  SplitLoot loot;
  auto run = fedml::testing::RunSecureRound(
      dir, kClients, SecAgg3Of5(dir, true), Honest(dir, true), [&loot](core::Communicator& inner) {
        return std::make_unique<SurvivorSplittingServer>(inner, loot);
      });
  REQUIRE(loot.injected);
  for (int id : kFooled) {
    INFO("client " << id);
    REQUIRE(loot.errors.count(id) == 1);
    CHECK(loot.errors[id].find("refusing to unmask") != std::string::npos);
    CHECK(loot.errors[id].find("valid signatures") != std::string::npos);
  }
  CHECK(loot.mask_key_shares_of_denied == 0);
  for (const Status& st : run.client_status) CHECK(st.ok());
}
