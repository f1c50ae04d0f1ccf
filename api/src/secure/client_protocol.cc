#include "secure/client_protocol.h"

#include <algorithm>

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
  int last_stage = 3;                // the last stage it answers (a simulated dropout: fewer)
};

ClientProtocol::ClientProtocol(std::uint64_t random_seed, SecureDropoutOptions dropout)
    : random_seed_(random_seed), dropout_(std::move(dropout)) {}

ClientProtocol::~ClientProtocol() = default;

const std::vector<std::string>& ClientProtocol::Stages() {
  static const std::vector<std::string> stages = {kSecureStageShareKeys, kSecureStageMaskInput,
                                                  kSecureStageUnmask};
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
             std::move(input.words), 3});
  const std::vector<int> drops =
      SimulatedDropouts(random_seed_, task.round, secure.params.num_clients, dropout_.rate);
  if (std::binary_search(drops.begin(), drops.end(), secure.index)) {
    const auto& names = SecureDropoutStageNames();
    state->last_stage =
        static_cast<int>(std::find(names.begin(), names.end(), dropout_.stage) - names.begin());
  }
  FEDML_ASSIGN_OR_RETURN(algorithms::SecAggKeys keys, state->protocol.AdvertiseKeys());
  const core::Bytes encoded = algorithms::Encode(keys);
  reply.blob.assign(encoded.begin(), encoded.end());
  reply.metrics = std::move(update.metrics);
  if (input.clipped > 0) reply.metrics["secagg_clipped"] = static_cast<double>(input.clipped);
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
  auto answer = [&]() -> Result<core::Bytes> {
    Client& c = *it->second;
    const core::Bytes in(msg.blob.begin(), msg.blob.end());
    if (index == 1) {
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggKeyList m, algorithms::DecodeSecAggKeyList(in));
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggEncryptedShares out, c.protocol.ShareKeys(m));
      return algorithms::Encode(out);
    }
    if (index == 2) {
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggSharesForYou m,
                             algorithms::DecodeSecAggSharesForYou(in));
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggMaskedInput out,
                             c.protocol.MaskInput(m, c.input.data()));
      return algorithms::Encode(out);
    }
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggUnmaskRequest m,
                           algorithms::DecodeSecAggUnmaskRequest(in));
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggUnmaskReply out, c.protocol.Unmask(m));
    return algorithms::Encode(out);
  };
  Answer result;
  auto out = answer();
  if (out.ok()) {
    reply.blob.assign(out->begin(), out->end());
  } else {
    result.status = out.status();
  }
  // A client that answered the last stage, or failed one, has nothing left to do.
  if (index == 3 || !result.status.ok()) clients_.erase(it);
  return result;
}

}  // namespace fedml::api::secure
