// Authenticated secure aggregation: Bonawitz et al.'s (CCS 2017) defences against a malicious
// server, for rounds whose clients hold certificates from one CA (a deployment with mutual TLS).
// Without them a server can hand one client keys of its own making in place of its neighbours'
// (it then holds the pairwise mask keys and, opening the client's share ciphertexts, the shares
// of its self-mask seed: it unmasks that client's input), or tell different clients different
// survivor sets at unmasking.
//
// 1. Signed keys. Each client signs its advertised keys with the private key of its certificate:
//      ECDSA-SHA256 over "fedml-secagg-keys-v1" | SHA-256(n, t, k, M, L) | graph_seed u64 |
//      round_id u64 | participant id u32 | client id u64 | c_public (32) | s_public (32)
//    (the graph seed binds the federation's seed and the round; see SecAggBindingBytes). The
//    server forwards each key set with its SecAggKeyCredential (signature and the signer's
//    certificate). A client accepts its key list only when every neighbour's certificate chains
//    to the CA it trusts (the TLS ca.pem), names (CN "client-<id>") the client id claimed for
//    that participant, no client id appears twice (nor the client's own), and the signature
//    verifies; otherwise it refuses the round (PERMISSION_DENIED naming the participant and why)
//    before any share leaves it.
// 2. Consistency round, between masked input and unmasking: the server sends every client of U3
//    the whole of U3 (SecAggConsistencyRequest); the client signs
//      "fedml-secagg-survivors-v1" | the same binding | u32 count | ids (u32 each)
//    (SecAggSurvivorSignature) once; the server forwards the signatures it got from each
//    client's neighbourhood with that client's unmask request (SecAggSignedUnmaskRequest). The
//    client reveals shares only when the U3 of the request is the U3 it signed, the request's
//    survivors and dropped are exactly U3 and the rest of its stage-2 survivors within its
//    neighbourhood, and at least `threshold` distinct members of its neighbourhood (itself
//    included) signed that U3 with keys it verified in 1. For SecAgg the neighbourhood is everyone:
//    this is Bonawitz et al.'s check. For SecAgg+ it is the same check within each neighbourhood,
//    where each client's secrets are shared.
//
// Every value a peer or the server sends is bounded: signatures at most
// core::security::kMaxSignatureBytes, certificates kMaxCertificatePemBytes, lists at most n ids
// within 0..n-1, increasing. Revocation is not checked here (a client cannot read the server's
// revoked.txt): the server's TLS layer refuses revoked clients, and a malicious server could
// forward a revoked client's signed keys, which is the same power as a client that colludes.
//
// Thread safety: none per object; objects are independent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/core/security/signatures.h"

namespace fedml::algorithms {

/// Who signed a participant's keys, and the signature (SecAggBindingBytes / SecAggKeysSignedBytes).
struct SecAggKeyCredential {
  int id = -1;                  // the participant
  std::int64_t client_id = -1;  // the federation's client id its certificate names
  core::Bytes signature;        // DER ECDSA, at most kMaxSignatureBytes
  std::string certificate;      // PEM, at most kMaxCertificatePemBytes
};

/// Stage 0 of a signed round, client -> server.
struct SecAggSignedKeys {
  SecAggKeys keys;
  SecAggKeyCredential credential;
};

/// Stage 1 of a signed round, server -> client: the key list and one credential per neighbour in
/// it, in the list's order.
struct SecAggSignedKeyList {
  SecAggKeyList list;
  std::vector<SecAggKeyCredential> credentials;
};

/// Consistency round, server -> client `id`: U3, the participants whose masked inputs arrived.
struct SecAggConsistencyRequest {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<int> survivors;
};

/// Consistency round, client `id` -> server: its signature over U3 (SecAggSurvivorsSignedBytes).
struct SecAggSurvivorSignature {
  std::uint64_t round_id = 0;
  int id = -1;
  core::Bytes signature;
};

/// Stage 3 of a signed round, server -> client: the unmask request, the U3 it stands for and the
/// signatures over that U3 the server collected.
struct SecAggSignedUnmaskRequest {
  SecAggUnmaskRequest request;
  std::vector<int> survivors;
  std::vector<SecAggSurvivorSignature> signatures;
};

// Encodings as secagg.h's (magic, u32 kSecAggFormatVersion, little-endian): "FSAA" (the
// SecAggKeys encoding as a blob, then the credential: id u32 | client id u64 | signature blob |
// certificate blob), "FSAB" (the key list as a blob, a u32 count, credentials), "FSAC" (round id,
// id, ids), "FSAG" (round id, id, signature blob), "FSAP" (the request as a blob, ids, a u32
// count, each signature as id u32 | blob; the round id is the request's). Decode refuses, besides
// what secagg.h's decoders refuse, a signature longer than kMaxSignatureBytes and a certificate
// longer than kMaxCertificatePemBytes.
core::Bytes Encode(const SecAggSignedKeys& message);
core::Bytes Encode(const SecAggSignedKeyList& message);
core::Bytes Encode(const SecAggConsistencyRequest& message);
core::Bytes Encode(const SecAggSurvivorSignature& message);
core::Bytes Encode(const SecAggSignedUnmaskRequest& message);
Result<SecAggSignedKeys> DecodeSecAggSignedKeys(const core::Bytes& bytes);
Result<SecAggSignedKeyList> DecodeSecAggSignedKeyList(const core::Bytes& bytes);
Result<SecAggConsistencyRequest> DecodeSecAggConsistencyRequest(const core::Bytes& bytes);
Result<SecAggSurvivorSignature> DecodeSecAggSurvivorSignature(const core::Bytes& bytes);
Result<SecAggSignedUnmaskRequest> DecodeSecAggSignedUnmaskRequest(const core::Bytes& bytes);

/// What a signed message of keys of `id` (client `client_id`) in this round is: see the file
/// comment.
core::Bytes SecAggKeysSignedBytes(const SecAggParams& params, std::uint64_t round_id,
                                  const SecAggKeys& keys, std::int64_t client_id);
/// What a consistency signature over `survivors` in this round is.
core::Bytes SecAggSurvivorsSignedBytes(const SecAggParams& params, std::uint64_t round_id,
                                       const std::vector<int>& survivors);

/// A client's credentials: its certificate's private key, the certificate (PEM) and the CA it
/// trusts for its peers.
struct SecAggIdentity {
  core::security::SigningKey key;
  std::string certificate;
  core::security::CertificateAuthority ca;
};

/// The client's half for one round of participant `id`, client `client_id`. Call in protocol
/// order: SignKeys (stage 0), CheckKeyList (before SecAggClient::ShareKeys), NoteSurvivors (the
/// survivors of SecAggSharesForYou, after MaskInput succeeded), SignSurvivors (the consistency
/// round), CheckUnmaskRequest (before SecAggClient::Unmask). A check that fails is final: the
/// caller drops the round and sends nothing more for it.
class SecAggClientAuth {
 public:
  SecAggClientAuth(SecAggParams params, std::uint64_t round_id, int id, std::int64_t client_id,
                   SecAggIdentity identity);

  /// This client's signed keys. INTERNAL when signing fails.
  Result<SecAggSignedKeys> SignKeys(const SecAggKeys& keys) const;
  /// PERMISSION_DENIED "refusing the key list: participant P (client C): why" for the first
  /// neighbour whose credential fails (see the file comment); INVALID_ARGUMENT for a list whose
  /// credentials do not match its neighbours one to one. Keeps the verified keys.
  Status CheckKeyList(const SecAggSignedKeyList& keys);
  /// The survivors (U2 within the neighbourhood) this client masked with.
  void NoteSurvivors(std::vector<int> survivors);
  /// Signs U3 once. INVALID_ARGUMENT for another round or client, a list that is not increasing
  /// ids within 0..n-1, lacks this client, or names a neighbour the client did not mask with;
  /// FAILED_PRECONDITION for a second request.
  Result<SecAggSurvivorSignature> SignSurvivors(const SecAggConsistencyRequest& request);
  /// PERMISSION_DENIED naming why when the request is not consistent with the U3 this client
  /// signed or carries fewer than `threshold` valid signatures from its neighbourhood over it;
  /// INVALID_ARGUMENT for out-of-range or repeated ids. Returns the request to unmask with.
  Result<SecAggUnmaskRequest> CheckUnmaskRequest(const SecAggSignedUnmaskRequest& signed_request);

 private:
  SecAggParams params_;
  std::uint64_t round_id_;
  int id_;
  std::int64_t client_id_;
  SecAggIdentity identity_;
  std::map<int, core::security::VerifyingKey> peers_;  // verified neighbours, by participant
  std::vector<int> masked_with_;                       // U2 within the neighbourhood
  std::vector<int> signed_survivors_;
  bool signed_ = false;
};

/// The server's half for one round: checks each client's credential as its keys arrive (so that
/// a client with a bad signature is refused and blamed, not left for its peers to refuse the
/// round over), forwards the credentials, and runs the consistency round.
class SecAggServerAuth {
 public:
  SecAggServerAuth(SecAggParams params, std::uint64_t round_id,
                   core::security::CertificateAuthority ca);
  /// Checks `keys` as a client would (its certificate names `client_id`) and keeps the
  /// credential. PERMISSION_DENIED naming why; INVALID_ARGUMENT for another participant's.
  Status AddKeys(const SecAggSignedKeys& keys, std::int64_t client_id);
  /// `list` with the credentials of its neighbours.
  SecAggSignedKeyList SignedList(SecAggKeyList list) const;
  /// Starts the consistency round over U3; returns the request for participant `id`.
  void BeginConsistency(std::vector<int> survivors);
  SecAggConsistencyRequest ConsistencyRequest(int id) const;
  /// A U3 client's signature over U3: PERMISSION_DENIED when it does not verify, INVALID_ARGUMENT
  /// for another round, a non-member or a second one.
  Status AddSignature(const SecAggSurvivorSignature& signature);
  /// The clients whose signature arrived (U4's candidates), increasing.
  std::vector<int> signers() const;
  /// `request` with U3 and the signatures collected from its recipient's neighbourhood (itself
  /// included: everyone's for SecAgg), which are those the recipient counts.
  SecAggSignedUnmaskRequest SignedRequest(SecAggUnmaskRequest request) const;

 private:
  SecAggParams params_;
  std::uint64_t round_id_;
  core::security::CertificateAuthority ca_;
  std::map<int, SecAggKeyCredential> credentials_;
  std::map<int, core::security::VerifyingKey> keys_;
  std::vector<int> survivors_;
  std::map<int, SecAggSurvivorSignature> signatures_;
  std::vector<std::vector<int>> graph_;  // SecAggNeighbours(params_), made at BeginConsistency
};

}  // namespace fedml::algorithms
