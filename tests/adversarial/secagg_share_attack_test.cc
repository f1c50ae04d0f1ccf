// Red team, attack 4 of docs/security.md: one client tries to abort every secure round, or to get
// its honest neighbours dropped in its place, by sending bad shares. The attacker is the real
// ClientManager and protocol code of client 0 whose outgoing protocol messages pass through a
// tampering communicator (the rest of the stack is honest: mutual TLS, the real RoundController):
//   - a ciphertext of its shares for client 1 that does not open (a flipped byte);
//   - the shares it reveals at unmasking, with x moved to another holder's point;
//   - the shares it reveals at unmasking, with wrong values.
// Each must end with the round completed over every client's input (the attacker's own input is
// honest, so it is in the sum), no honest client dropped, and the blame on client 0.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <thread>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/round_controller.h"
#include "fedml/core/security/shamir.h"
#include "fedml/core/wire.h"
#include "secure_round_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

constexpr int kClients = 5;
constexpr int kAttacker = 0;

using fedml::testing::DistinctTrainer;

/// Rewrites the blob of every secure-aggregation message it sends (tamper(stage, blob)); the
/// rest passes through to the real transport.
class TamperingComm final : public core::Communicator {
 public:
  using Tamper = std::function<void(const std::string& stage, core::Bytes& blob)>;
  TamperingComm(core::Communicator& inner, Tamper tamper)
      : inner_(inner), tamper_(std::move(tamper)) {}
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::string backend() const override { return inner_.backend(); }
  Status Send(int dst, std::vector<std::uint8_t> payload) override {
    auto m = core::Decode(payload);
    if (m.ok() && m->type == core::MessageType::kProtocol && !m->attrs.count("dropped")) {
      core::Bytes blob(m->blob.begin(), m->blob.end());
      tamper_(m->attrs["stage"], blob);
      m->blob.assign(blob.begin(), blob.end());
      auto frame = core::Encode(*m);
      REQUIRE(frame.ok());
      payload.assign(frame->begin(), frame->end());
    }
    return inner_.Send(dst, std::move(payload));
  }
  Result<core::Envelope> Recv(int source, core::Deadline deadline) override {
    return inner_.Recv(source, deadline);
  }
  void Abort(const Status& reason) override { inner_.Abort(reason); }

 private:
  core::Communicator& inner_;
  Tamper tamper_;
};

/// One secure round (SecAgg, threshold 3 of 5) over mTLS with client kAttacker's messages passed
/// through `tamper`. Returns the model and the round's metrics.
void RunRound(const char* name, TamperingComm::Tamper tamper, core::ModelState& model,
              RoundMetrics& metrics) {
  const fedml::testing::TempDir dir(name);
  fedml::testing::MakeCredentials(dir, kClients);
  SecureAggregationOptions secure;
  secure.protocol = "secagg";
  secure.reconstruction_threshold = 3;
  auto run = fedml::testing::RunSecureRound(dir, kClients, secure,
                                            [&tamper](core::Communicator& comm, int id) {
                                              if (id != kAttacker)
                                                return fedml::testing::ServeHonestly(comm, id);
                                              TamperingComm hostile(comm, tamper);
                                              return fedml::testing::ServeHonestly(hostile, id);
                                            });
  REQUIRE(run.model.ok());
  REQUIRE(run.history.size() == 1);
  model = std::move(run.model).value();
  metrics = run.history[0];
}

double Extra(const RoundMetrics& m, const std::string& key) {
  const auto it = m.extra.find(key);
  return it == m.extra.end() ? 0.0 : it->second;
}

/// The round completed over all five inputs, nobody was dropped, and client 0 alone is blamed.
void CheckDefended(const core::ModelState& model, const RoundMetrics& metrics) {
  CHECK(Extra(metrics, "secagg_aborted") == 0.0);
  CHECK(metrics.dropped == 0);
  CHECK(Extra(metrics, "secagg_survivors") == kClients);
  float mean = 0.0f;
  for (int i = 0; i < kClients; ++i) mean += DistinctTrainer::Delta(i) / kClients;
  for (std::size_t i = 0; i < model.numel(); ++i) CHECK(std::fabs(model.data()[i] - mean) < 1e-3);
  CHECK(Extra(metrics, "secagg_blamed") == 1.0);
  CHECK(Extra(metrics, "secagg_blamed_client_" + std::to_string(kAttacker)) == 1.0);
}

}  // namespace

TEST_CASE("a client whose share ciphertext does not open is blamed, not its receiver",
          "[adversarial][secagg]") {
  core::ModelState model;
  RoundMetrics metrics;
  RunRound(
      "fedml_attack_secagg_ciphertext",
      [](const std::string& stage, core::Bytes& blob) {
        if (stage != kSecureStageShareKeys) return;
        auto m = algorithms::DecodeSecAggEncryptedShares(blob);
        REQUIRE(m.ok());
        for (auto& c : m->ciphertexts) {
          if (c.to == 1) c.ciphertext[40] ^= 0x01;  // inside the sealed share pair
        }
        blob = algorithms::Encode(*m);
      },
      model, metrics);
  CheckDefended(model, metrics);
}

TEST_CASE("a client that reveals shares at another holder's x is blamed and the round completes",
          "[adversarial][secagg]") {
  core::ModelState model;
  RoundMetrics metrics;
  RunRound(
      "fedml_attack_secagg_share_x",
      [](const std::string& stage, core::Bytes& blob) {
        if (stage != kSecureStageUnmask) return;
        auto m = algorithms::DecodeSecAggUnmaskReply(blob);
        REQUIRE(m.ok());
        // x of the next holder (1..5 cyclically): duplicates an honest holder's point.
        for (auto& s : m->shares) s.share.x = s.share.x % kClients + 1;
        blob = algorithms::Encode(*m);
      },
      model, metrics);
  CheckDefended(model, metrics);
}

TEST_CASE("a client that reveals shares with wrong values is found out and the round completes",
          "[adversarial][secagg]") {
  core::ModelState model;
  RoundMetrics metrics;
  RunRound(
      "fedml_attack_secagg_share_value",
      [](const std::string& stage, core::Bytes& blob) {
        if (stage != kSecureStageUnmask) return;
        auto m = algorithms::DecodeSecAggUnmaskReply(blob);
        REQUIRE(m.ok());
        for (auto& s : m->shares) {
          for (auto& y : s.share.y) y = (y + 12345) % core::security::kShamirPrime;
        }
        blob = algorithms::Encode(*m);
      },
      model, metrics);
  CheckDefended(model, metrics);
}
