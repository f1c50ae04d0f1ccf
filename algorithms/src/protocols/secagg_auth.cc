// Authenticated secure aggregation (fedml/algorithms/protocols/secagg_auth.h): what is signed, and
// the client's and server's checks. The encodings live with secagg.h's in secagg.cc.
#include "fedml/algorithms/protocols/secagg_auth.h"

#include <algorithm>
#include <set>

#include "fedml/core/security/crypto.h"

namespace fedml::algorithms {
namespace {

using core::Bytes;
using core::ByteWriter;

std::string Str(std::int64_t v) { return std::to_string(v); }

// The round every signature is bound to: the label, a digest of the parameters (so that a
// signature made for one n, t, k is worthless in another), the graph seed (derived from the
// federation's seed and the round) and the round id.
ByteWriter Binding(std::string_view label, const SecAggParams& p, std::uint64_t round_id) {
  ByteWriter params;
  params.U32(static_cast<std::uint32_t>(p.num_clients))
      .U32(static_cast<std::uint32_t>(p.threshold))
      .U32(static_cast<std::uint32_t>(p.num_neighbours))
      .U64(p.modulus)
      .U64(static_cast<std::uint64_t>(p.vector_length));
  const auto digest = core::security::Sha256(params.bytes().data(), params.size());
  ByteWriter w;
  w.Raw(label);
  // Sha256 fails only when OpenSSL cannot hash at all; the binding then carries the parameters
  // themselves, which binds them as well.
  if (digest.ok()) {
    w.Raw(digest->data(), digest->size());
  } else {
    w.Raw(params.bytes().data(), params.size());
  }
  w.U64(p.graph_seed).U64(round_id);
  return w;
}

// Ids strictly increasing within 0..n-1, at most n of them.
Status CheckIds(const std::vector<int>& ids, int n, const std::string& what) {
  if (ids.size() > static_cast<std::size_t>(n)) {
    return Status::InvalidArgument(what + " lists " + Str(static_cast<std::int64_t>(ids.size())) +
                                   " participants of " + Str(n));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n || (i > 0 && ids[i] <= ids[i - 1])) {
      return Status::InvalidArgument(what + " is not increasing ids within 0.." + Str(n - 1));
    }
  }
  return Status::Ok();
}

bool Contains(const std::vector<int>& sorted, int v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

}  // namespace

Bytes SecAggKeysSignedBytes(const SecAggParams& params, std::uint64_t round_id,
                            const SecAggKeys& keys, std::int64_t client_id) {
  ByteWriter w = Binding("fedml-secagg-keys-v1", params, round_id);
  w.U32(static_cast<std::uint32_t>(keys.id)).U64(static_cast<std::uint64_t>(client_id));
  w.Raw(keys.c_public.data(), keys.c_public.size()).Raw(keys.s_public.data(), keys.s_public.size());
  return w.Take();
}

Bytes SecAggSurvivorsSignedBytes(const SecAggParams& params, std::uint64_t round_id,
                                 const std::vector<int>& survivors) {
  ByteWriter w = Binding("fedml-secagg-survivors-v1", params, round_id);
  w.U32(static_cast<std::uint32_t>(survivors.size()));
  for (int id : survivors) w.U32(static_cast<std::uint32_t>(id));
  return w.Take();
}

// ---- Client ----

SecAggClientAuth::SecAggClientAuth(SecAggParams params, std::uint64_t round_id, int id,
                                   std::int64_t client_id, SecAggIdentity identity)
    : params_(params),
      round_id_(round_id),
      id_(id),
      client_id_(client_id),
      identity_(std::move(identity)) {}

Result<SecAggSignedKeys> SecAggClientAuth::SignKeys(const SecAggKeys& keys) const {
  SecAggSignedKeys out;
  out.keys = keys;
  out.credential.id = keys.id;
  out.credential.client_id = client_id_;
  out.credential.certificate = identity_.certificate;
  FEDML_ASSIGN_OR_RETURN(out.credential.signature, identity_.key.Sign(SecAggKeysSignedBytes(
                                                       params_, round_id_, keys, client_id_)));
  return out;
}

Status SecAggClientAuth::CheckKeyList(const SecAggSignedKeyList& keys) {
  const SecAggKeyList& list = keys.list;
  if (keys.credentials.size() != list.neighbours.size()) {
    return Status::InvalidArgument("the key list has " + Str(list.neighbours.size()) +
                                   " neighbours but " + Str(keys.credentials.size()) +
                                   " credentials");
  }
  // Bounded before any certificate is checked: each check costs the client a verification.
  if (list.neighbours.size() >= static_cast<std::size_t>(params_.num_clients)) {
    return Status::InvalidArgument("the key list has " + Str(list.neighbours.size()) +
                                   " neighbours in a round of " + Str(params_.num_clients));
  }
  std::set<std::int64_t> clients = {client_id_};
  std::map<int, core::security::VerifyingKey> verified;
  for (std::size_t i = 0; i < list.neighbours.size(); ++i) {
    const SecAggKeys& k = list.neighbours[i];
    const SecAggKeyCredential& c = keys.credentials[i];
    auto refuse = [&](const std::string& why) {
      return Status::PermissionDenied("refusing the key list: participant " + Str(k.id) +
                                      " (client " + Str(c.client_id) + "): " + why);
    };
    if (c.id != k.id) return refuse("its credential is for participant " + Str(c.id));
    if (c.client_id < 0 || !clients.insert(c.client_id).second) {
      return refuse("that client id is claimed by another participant (or is this client's)");
    }
    auto certified = identity_.ca.VerifyClient(c.certificate);
    if (!certified.ok()) return refuse(certified.status().message());
    if (certified->client_id != c.client_id) {
      return refuse("its certificate names client " + Str(certified->client_id));
    }
    const Status ok = certified->key.Verify(
        SecAggKeysSignedBytes(params_, round_id_, k, c.client_id), c.signature);
    if (!ok.ok()) return refuse("its key signature: " + ok.message());
    verified[k.id] = certified->key;
  }
  peers_ = std::move(verified);
  return Status::Ok();
}

void SecAggClientAuth::NoteSurvivors(std::vector<int> survivors) {
  masked_with_ = std::move(survivors);
}

Result<SecAggSurvivorSignature> SecAggClientAuth::SignSurvivors(
    const SecAggConsistencyRequest& request) {
  if (signed_) {
    return Status::FailedPrecondition("this client already signed the round's survivors");
  }
  if (request.round_id != round_id_ || request.id != id_) {
    return Status::InvalidArgument("a consistency request for round " + Str(request.round_id) +
                                   " participant " + Str(request.id));
  }
  FEDML_RETURN_IF_ERROR(CheckIds(request.survivors, params_.num_clients, "the survivors U3"));
  if (!Contains(request.survivors, id_)) {
    return Status::InvalidArgument("the survivors U3 leave out this client");
  }
  for (const auto& [peer, key] : peers_) {
    if (Contains(request.survivors, peer) && !Contains(masked_with_, peer)) {
      return Status::InvalidArgument("the survivors U3 name participant " + Str(peer) +
                                     ", which this client did not mask with");
    }
  }
  SecAggSurvivorSignature out;
  out.round_id = round_id_;
  out.id = id_;
  FEDML_ASSIGN_OR_RETURN(out.signature, identity_.key.Sign(SecAggSurvivorsSignedBytes(
                                            params_, round_id_, request.survivors)));
  signed_survivors_ = request.survivors;
  signed_ = true;
  return out;
}

Result<SecAggUnmaskRequest> SecAggClientAuth::CheckUnmaskRequest(
    const SecAggSignedUnmaskRequest& signed_request) {
  const SecAggUnmaskRequest& request = signed_request.request;
  auto refuse = [](const std::string& why) {
    return Status::PermissionDenied("refusing to unmask: " + why);
  };
  if (!signed_) return refuse("no consistency round came before the unmask request");
  if (signed_request.survivors != signed_survivors_) {
    return refuse("the request stands for other survivors than the U3 this client signed");
  }
  // The split this client is asked for must be the signed U3's.
  std::vector<int> survivors;
  std::vector<int> dropped;
  for (int v : masked_with_) (Contains(signed_survivors_, v) ? survivors : dropped).push_back(v);
  if (request.survivors != survivors || request.dropped != dropped) {
    return refuse("its survivors and dropped do not match the signed U3");
  }
  if (signed_request.signatures.size() > static_cast<std::size_t>(params_.num_clients)) {
    return Status::InvalidArgument("the request carries more signatures than participants");
  }
  const Bytes message = SecAggSurvivorsSignedBytes(params_, round_id_, signed_survivors_);
  std::set<int> valid = {id_};  // this client signed this U3 itself
  for (const SecAggSurvivorSignature& s : signed_request.signatures) {
    if (s.id < 0 || s.id >= params_.num_clients) {
      return Status::InvalidArgument("a signature of participant " + Str(s.id) + " of " +
                                     Str(params_.num_clients));
    }
    const auto key = peers_.find(s.id);
    if (key == peers_.end() || !Contains(signed_survivors_, s.id)) continue;  // not ours to count
    if (key->second.Verify(message, s.signature).ok()) valid.insert(s.id);
  }
  if (static_cast<int>(valid.size()) < params_.threshold) {
    return refuse("only " + Str(static_cast<std::int64_t>(valid.size())) +
                  " valid signatures over the survivors from this client's neighbourhood, "
                  "threshold " +
                  Str(params_.threshold) +
                  " (the server may be telling other clients other survivors)");
  }
  return request;
}

// ---- Server ----

SecAggServerAuth::SecAggServerAuth(SecAggParams params, std::uint64_t round_id,
                                   core::security::CertificateAuthority ca)
    : params_(params), round_id_(round_id), ca_(std::move(ca)) {}

Status SecAggServerAuth::AddKeys(const SecAggSignedKeys& keys, std::int64_t client_id) {
  const SecAggKeyCredential& c = keys.credential;
  if (c.id != keys.keys.id || c.client_id != client_id) {
    return Status::InvalidArgument("a key credential for participant " + Str(c.id) + " client " +
                                   Str(c.client_id));
  }
  auto certified = ca_.VerifyClient(c.certificate);
  if (!certified.ok()) return certified.status();
  if (certified->client_id != client_id) {
    return Status::PermissionDenied("the key certificate names client " +
                                    Str(certified->client_id));
  }
  FEDML_RETURN_IF_ERROR(certified->key.Verify(
      SecAggKeysSignedBytes(params_, round_id_, keys.keys, client_id), c.signature));
  credentials_[c.id] = c;
  keys_[c.id] = certified->key;
  return Status::Ok();
}

SecAggSignedKeyList SecAggServerAuth::SignedList(SecAggKeyList list) const {
  SecAggSignedKeyList out;
  for (const SecAggKeys& k : list.neighbours) {
    const auto it = credentials_.find(k.id);
    out.credentials.push_back(it == credentials_.end() ? SecAggKeyCredential{} : it->second);
  }
  out.list = std::move(list);
  return out;
}

void SecAggServerAuth::BeginConsistency(std::vector<int> survivors) {
  survivors_ = std::move(survivors);
  signatures_.clear();
  if (graph_.empty()) graph_ = SecAggNeighbours(params_);
}

SecAggConsistencyRequest SecAggServerAuth::ConsistencyRequest(int id) const {
  return SecAggConsistencyRequest{round_id_, id, survivors_};
}

Status SecAggServerAuth::AddSignature(const SecAggSurvivorSignature& signature) {
  if (signature.round_id != round_id_ || !Contains(survivors_, signature.id) ||
      signatures_.count(signature.id) > 0) {
    return Status::InvalidArgument("a survivor signature for round " + Str(signature.round_id) +
                                   " participant " + Str(signature.id));
  }
  const auto key = keys_.find(signature.id);
  if (key == keys_.end()) {
    return Status::InvalidArgument("no verified key of participant " + Str(signature.id));
  }
  FEDML_RETURN_IF_ERROR(key->second.Verify(
      SecAggSurvivorsSignedBytes(params_, round_id_, survivors_), signature.signature));
  signatures_[signature.id] = signature;
  return Status::Ok();
}

std::vector<int> SecAggServerAuth::signers() const {
  std::vector<int> out;
  for (const auto& entry : signatures_) out.push_back(entry.first);
  return out;
}

SecAggSignedUnmaskRequest SecAggServerAuth::SignedRequest(SecAggUnmaskRequest request) const {
  SecAggSignedUnmaskRequest out;
  out.request = std::move(request);
  out.survivors = survivors_;
  // A client counts the signatures of its neighbourhood only (for SecAgg, everyone's): the
  // others would only make its request O(n) under SecAgg+.
  const int id = out.request.id;
  const std::vector<int>* hood = id >= 0 && static_cast<std::size_t>(id) < graph_.size()
                                     ? &graph_[static_cast<std::size_t>(id)]
                                     : nullptr;
  for (const auto& [signer, signature] : signatures_) {
    if (signer == id || (hood && std::binary_search(hood->begin(), hood->end(), signer))) {
      out.signatures.push_back(signature);
    }
  }
  return out;
}

}  // namespace fedml::algorithms
