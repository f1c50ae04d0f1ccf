#include "secure/client_protocol.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/core/random.h"

namespace fedml::api::secure {

using core::Message;

namespace {
constexpr std::uint64_t kSecureRoundingTag = 0x736563726e64ULL;  // "secrnd"
}  // namespace

struct ClientProtocol::Client {
  std::int64_t round = -1;
  algorithms::SecAggClient protocol;
  std::vector<std::uint32_t> input;  // the ring vector [w, w (x - g)]
  int last_stage = 4;                // the last stage it answers (a simulated dropout: fewer)
  std::unique_ptr<algorithms::SecAggClientAuth> auth;  // signed rounds only
};

ClientProtocol::ClientProtocol(std::uint64_t random_seed, SecureDropoutOptions dropout,
                               std::string journal, SecureClientLimits limits,
                               const SecureIdentity& identity)
    : random_seed_(random_seed),
      dropout_(std::move(dropout)),
      journal_(std::move(journal)),
      limits_(limits) {
  if (!identity.enabled()) return;
  auto key = core::security::SigningKey::FromPem(identity.key_pem);
  auto ca = core::security::CertificateAuthority::FromPem(identity.ca_pem);
  if (!key.ok()) {
    identity_status_ = key.status().WithContext("the client key for signed secure rounds");
  } else if (!ca.ok()) {
    identity_status_ = ca.status().WithContext("the CA for signed secure rounds");
  }
  if (identity_status_.ok()) {
    identity_ = std::make_unique<algorithms::SecAggIdentity>(algorithms::SecAggIdentity{
        std::move(key).value(), identity.certificate_pem, std::move(ca).value()});
  }
}

Status ClientProtocol::Accept(const Message& task) const {
  FEDML_ASSIGN_OR_RETURN(const SecureTask secure, SecureTaskFromAttrs(task.attrs));
  FEDML_RETURN_IF_ERROR(identity_status_);
  if (identity_ && !secure.signed_round) {
    return Status::PermissionDenied(
        "refusing an unsigned secure round: this client has a certificate, so it takes part "
        "only in rounds whose keys are signed (without signatures the server could substitute "
        "its neighbours' keys and unmask its update)");
  }
  if (!identity_ && secure.signed_round) {
    return Status::PermissionDenied(
        "the secure round asks for signed keys and this worker has no client certificate");
  }
  return CheckSecureTaskLimits(secure, limits_);
}

// The journal is text, one line per round taken part in: "<seed> <client> <round>". Lines of
// other seeds (other federations) are kept and ignored.
Status ClientProtocol::LoadJournal() {
  journal_loaded_ = true;
  if (journal_.empty()) return Status::Ok();
  std::ifstream in(journal_);
  if (!in) return Status::Ok();  // nothing taken part in yet
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream fields(line);
    std::uint64_t seed = 0;
    std::int64_t client = 0;
    std::int64_t round = 0;
    std::string rest;
    if (!(fields >> seed >> client >> round) || (fields >> rest)) {
      journal_loaded_ = false;
      return Status::DataLoss("secure aggregation journal " + journal_ + " line " +
                              std::to_string(n) +
                              " is not '<seed> <client> <round>': refusing "
                              "secure rounds rather than risk taking part in one twice");
    }
    if (seed == random_seed_) taken_part_.insert({client, round});
  }
  return Status::Ok();
}

Status ClientProtocol::Admit(std::int64_t round, std::int64_t client) {
  if (!journal_loaded_) FEDML_RETURN_IF_ERROR(LoadJournal());
  if (!taken_part_.insert({client, round}).second) {
    return Status::FailedPrecondition(
        "client " + std::to_string(client) + " already took part in secure round " +
        std::to_string(round + 1) +
        "; it takes part in each round once, since a server that ran a round twice over "
        "different survivors could subtract the two sums and learn its update");
  }
  if (journal_.empty()) return Status::Ok();
  // Durable before any key leaves: a crash after this line still counts the round as taken.
  std::FILE* f = std::fopen(journal_.c_str(), "a");
  bool ok = f != nullptr;
  if (ok) {
    ok = std::fprintf(f, "%llu %lld %lld\n", static_cast<unsigned long long>(random_seed_),
                      static_cast<long long>(client), static_cast<long long>(round)) > 0;
    ok = std::fflush(f) == 0 && ok;
    ok = ::fsync(fileno(f)) == 0 && ok;
    ok = std::fclose(f) == 0 && ok;
  }
  if (!ok) {
    return Status::DataLoss("cannot record secure round " + std::to_string(round + 1) + " in " +
                            journal_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

ClientProtocol::~ClientProtocol() = default;

const std::vector<std::string>& ClientProtocol::Stages() {
  static const std::vector<std::string> stages = {kSecureStageShareKeys, kSecureStageMaskInput,
                                                  kSecureStageConsistency, kSecureStageUnmask};
  return stages;
}

void ClientProtocol::ForgetBefore(std::int64_t round) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    it = it->second->round < round ? clients_.erase(it) : std::next(it);
  }
}

Status ClientProtocol::Start(const Message& task, std::int64_t client,
                             const core::ModelState& global, LocalUpdate& update, Message& reply) {
  FEDML_ASSIGN_OR_RETURN(SecureTask secure, SecureTaskFromAttrs(task.attrs));
  if (!update.extras.empty()) {
    return Status::FailedPrecondition(
        "secure aggregation carries the model only; this client's update has side payloads (" +
        update.extras.begin()->first + ")");
  }
  FEDML_ASSIGN_OR_RETURN(
      SecureInputVector input,
      SecureInput(update.state, global, update.num_samples, secure,
                  core::DeriveSeed(random_seed_,
                                   {kSecureRoundingTag, static_cast<std::uint64_t>(task.round),
                                    static_cast<std::uint64_t>(client)})));
  auto state = std::make_unique<Client>(
      Client{task.round, algorithms::SecAggClient(secure.index, secure.params, secure.round_id),
             std::move(input.words), 4, nullptr});
  if (secure.signed_round) {
    if (!identity_) return Status::PermissionDenied("a signed secure round needs an identity");
    state->auth = std::make_unique<algorithms::SecAggClientAuth>(secure.params, secure.round_id,
                                                                 secure.index, client, *identity_);
  }
  const std::vector<int> drops =
      SimulatedDropouts(random_seed_, task.round, secure.params.num_clients, dropout_.rate);
  if (std::binary_search(drops.begin(), drops.end(), secure.index)) {
    const auto& names = SecureDropoutStageNames();
    state->last_stage =
        static_cast<int>(std::find(names.begin(), names.end(), dropout_.stage) - names.begin());
  }
  FEDML_ASSIGN_OR_RETURN(algorithms::SecAggKeys keys, state->protocol.AdvertiseKeys());
  core::Bytes encoded;
  if (state->auth) {
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggSignedKeys signed_keys, state->auth->SignKeys(keys));
    encoded = algorithms::Encode(signed_keys);
  } else {
    encoded = algorithms::Encode(keys);
  }
  reply.blob.assign(encoded.begin(), encoded.end());
  reply.metrics = std::move(update.metrics);
  clients_[client] = std::move(state);
  return Status::Ok();
}

ClientProtocol::Answer ClientProtocol::Handle(const Message& msg, Message& reply) {
  const std::string& stage = reply.attrs["stage"];
  const auto& stages = Stages();
  const int index =
      static_cast<int>(std::find(stages.begin(), stages.end(), stage) - stages.begin()) + 1;
  auto it = msg.client_ids.size() == 1 ? clients_.find(msg.client_ids[0]) : clients_.end();
  if (index > static_cast<int>(stages.size())) {
    return {true, Status::InvalidArgument("unknown secure aggregation stage '" + stage + "'")};
  }
  if (it == clients_.end() || it->second->round != msg.round) {
    return {true, Status::FailedPrecondition(
                      "no secure aggregation state on this worker for the client of this " + stage +
                      " request (round " + std::to_string(msg.round + 1) + ")")};
  }
  if (index > it->second->last_stage) {
    clients_.erase(it);  // the client vanishes with its secrets
    if (dropout_.silent) return {false, Status::Ok()};
    reply.attrs["dropped"] = "1";
    return {true, Status::Ok()};
  }
  Answer result;
  auto out = Respond(*it->second, index, core::Bytes(msg.blob.begin(), msg.blob.end()));
  if (out.ok()) {
    reply.blob.assign(out->begin(), out->end());
  } else {
    result.status = out.status();
  }
  // A client that answered the last stage, or failed one, has nothing left to do.
  if (index == static_cast<int>(stages.size()) || !result.status.ok()) clients_.erase(it);
  return result;
}

Result<core::Bytes> ClientProtocol::Respond(Client& c, int index, const core::Bytes& in) {
  namespace alg = algorithms;
  alg::SecAggClientAuth* auth = c.auth.get();
  if (index == 1) {
    alg::SecAggKeyList list;
    if (auth) {
      FEDML_ASSIGN_OR_RETURN(alg::SecAggSignedKeyList m, alg::DecodeSecAggSignedKeyList(in));
      FEDML_RETURN_IF_ERROR(auth->CheckKeyList(m));
      list = std::move(m.list);
    } else {
      FEDML_ASSIGN_OR_RETURN(list, alg::DecodeSecAggKeyList(in));
    }
    FEDML_ASSIGN_OR_RETURN(alg::SecAggEncryptedShares out, c.protocol.ShareKeys(list));
    return alg::Encode(out);
  }
  if (index == 2) {
    FEDML_ASSIGN_OR_RETURN(alg::SecAggSharesForYou m, alg::DecodeSecAggSharesForYou(in));
    FEDML_ASSIGN_OR_RETURN(alg::SecAggMaskedInput out, c.protocol.MaskInput(m, c.input.data()));
    if (auth) auth->NoteSurvivors(std::move(m.survivors));
    return alg::Encode(out);
  }
  if (index == 3) {
    if (!auth) return Status::FailedPrecondition("a consistency round in an unsigned round");
    FEDML_ASSIGN_OR_RETURN(alg::SecAggConsistencyRequest m,
                           alg::DecodeSecAggConsistencyRequest(in));
    FEDML_ASSIGN_OR_RETURN(alg::SecAggSurvivorSignature out, auth->SignSurvivors(m));
    return alg::Encode(out);
  }
  alg::SecAggUnmaskRequest request;
  if (auth) {
    FEDML_ASSIGN_OR_RETURN(alg::SecAggSignedUnmaskRequest m,
                           alg::DecodeSecAggSignedUnmaskRequest(in));
    FEDML_ASSIGN_OR_RETURN(request, auth->CheckUnmaskRequest(m));
  } else {
    FEDML_ASSIGN_OR_RETURN(request, alg::DecodeSecAggUnmaskRequest(in));
  }
  FEDML_ASSIGN_OR_RETURN(alg::SecAggUnmaskReply out, c.protocol.Unmask(request));
  return alg::Encode(out);
}

}  // namespace fedml::api::secure
