// Secure aggregation without a transport: SecAgg (Bonawitz et al., CCS 2017, "Practical Secure
// Aggregation for Privacy-Preserving Machine Learning", the semi-honest server variant; signed
// keys and the consistency round of the malicious-server variant are secagg_auth.h, layered on
// these objects) and SecAgg+ (Bell et al., CCS 2020, "Secure Single-Server
// Aggregation with (Poly)Logarithmic Overhead": each client masks with only k neighbours on a
// random k-regular graph), as client and server state machines that exchange plain message
// structs. Each struct has a binary encoding (Encode / Decode...) so that any transport can carry
// it; wiring into the communicators happens elsewhere.
//
// The server learns the sum over the survivors U3 of the clients' vectors x_u (uint32 words in
// the ring Z_M, M = params.modulus, a power of two <= 2^32: quantize first with
// fedml/core/security/quantization.h) and nothing else about any x_u, as long as it follows the
// protocol and fewer than `threshold` clients of any neighbourhood collude with it. Participants
// are the round's indices 0..n-1. Stages (S is the number the abort messages use):
//
//   0 AdvertiseKeys  client u makes two X25519 pairs (c: encrypts shares, s: agrees pairwise
//                    masks) and sends SecAggKeys. The server closes the stage with EndAdvertise:
//                    U1 = those who sent; each gets its neighbours' keys (SecAggKeyList).
//   1 ShareKeys      u draws a 32-byte self-mask seed b_u and Shamir-splits b_u and s_u's private
//                    key with `threshold` among its neighbourhood within U1, itself included (it
//                    keeps its own share). The share of holder v is evaluated at x = 1 + v's
//                    position in u's whole neighbourhood (N(u) + u, increasing), whoever is in
//                    U1, so that anyone who knows the graph knows which x belongs to which
//                    holder. u also commits to b_u: C_u = HKDF-SHA256(b_u, salt,
//                    "fedml secagg self-mask commitment", 32 bytes). Each neighbour v's
//                    pair of shares travels AES-256-GCM sealed under
//                      HKDF-SHA256(X25519(c_u, c_v), salt, "fedml secagg share u->v", 32 bytes)
//                    (u, v in decimal) with associated data (round id, u, v); the server routes
//                    the ciphertexts without being able to read them. EndSharing: U2 = senders.
//   2 MaskedInput    u opens the ciphertexts addressed to it. One that does not authenticate,
//                    or holds anything but v's shares for u at u's point, is not u's fault: u
//                    accuses its sender (the list travels with y_u), holds no shares of it and
//                    goes on. u sends
//                      y_u = x_u + PRG(b_u) + sum_{v in N(u) n U2} sign(u, v) PRG(k_uv)  mod M,
//                    k_uv = HKDF-SHA256(X25519(s_u, s_v), salt, "fedml secagg mask", 32 bytes),
//                    sign +1 for u < v, -1 for u > v, PRG = core::security::ExpandMask keyed with
//                    all 32 bytes. EndMasking: U3 = those whose y_u arrived; D = U2 \ U3.
//   3 Unmasking      every client v of U3 still there (U4) returns, for each u of its
//                    neighbourhood within U2, the share of b_u if u is in U3 or of s_u if u is in
//                    D, never both (and none of a client it accused). The server refuses a
//                    reply whose shares are not at the replier's x. Finish reconstructs every
//                    b_u (u in U3, checked against C_u) and s_u (u in D, checked against its
//                    public key), removes the self masks and the masks between each u in D and
//                    its neighbours in U3, and returns sum_{u in U3} x_u mod M. A reconstruction
//                    from the first t shares that fails its check is retried leaving out one of
//                    the first t + 1 in turn: one bad share per secret is found and its holder
//                    blamed, given at least t + 1 shares of it.
//
// Blame (blamed()): the server names the clients it caught sending what the protocol does not
// allow: a revealed share that breaks a reconstruction, and a client accused of sending shares
// that did not open. Blame changes nothing in the round (a blamed client's input stays in the
// sum: removing it would need both of its secrets); the caller decides what it costs later.
// An accusation is the accuser's word: the server cannot open the ciphertext to check it, so a
// lying accuser can blame an honest neighbour (costing that neighbour one holder of its shares,
// no more). Shares dealt with wrong values inside a valid ciphertext are caught at Finish and
// blamed on their holder, who could not have seen it.
//
// The salt of every HKDF call is the round id as 8 little-endian bytes. Keys, seeds and shares
// are fresh per round: a client object serves one round.
//
// The graph: SecAgg (num_neighbours = 0) connects everyone; SecAgg+ places the clients on a
// ring in the order of a permutation drawn from graph_seed and connects each to the k/2 nearest
// on each side (a Harary graph, Bell et al.'s construction). N(u) excludes u; u's neighbourhood,
// among which its secrets are shared, is N(u) plus u.
//
// Aborts: whenever a stage closes with fewer than `threshold` survivors, globally or within
// some client's neighbourhood (which is what reconstructing that client's secrets needs), the
// server fails for good: the End call and every later call return FAILED_PRECONDITION
//   "secure aggregation aborted at stage S: X of Y clients remain, threshold T"
// (Y = num_clients), or for a neighbourhood
//   "secure aggregation aborted at stage S: X of Y clients remain in the neighbourhood of client
//   u, threshold T"
// (Y = the neighbourhood's size, u included), and no sum is produced.
//
// Costs, with k the neighbourhood degree (n - 1 for SecAgg) and L = vector_length: a client does
// O(k) X25519 operations and k + 1 mask expansions of L words; the server does |U3| + sum over D
// of |N(u) n U3| expansions (O(|D| k + |U3|)) and keeps one running sum of L words, not the
// vectors. Every message is O(k) bytes except the masked input (4 L + 28 bytes): the id lists a
// client receives cover its own neighbourhood only.
//
// Secrets (private keys, seeds, shares, derived keys, decrypted plaintexts, mask scratch) are
// wiped with OPENSSL_cleanse as soon as they are no longer needed and when an object dies.
//
// Thread safety: none. Each client and server object is driven from one thread; different
// objects are independent. The free functions are stateless and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/security/shamir.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// A round's parameters; client and server objects must be given the same ones.
struct SecAggParams {
  /// n, the number of participants; their ids are 0..n-1. In [2, kSecAggMaxClients].
  int num_clients = 0;
  /// t, how many shares reconstruct a secret. In [1, neighbourhood size] (n for SecAgg, k + 1
  /// for SecAgg+). It is also the fewest survivors a round tolerates, globally and in every
  /// neighbourhood. Fewer than t colluding clients of a neighbourhood learn nothing; SecAgg
  /// usually takes t > n / 2, and Bell et al. recommend t above half the neighbourhood
  /// (t > (k + 1) / 2) with a margin for the expected dropouts and corruptions. Only the range
  /// above is enforced.
  int threshold = 0;
  /// k: 0 for SecAgg (everyone masks with everyone), else SecAgg+'s degree in [1, n - 1]
  /// (about 2 log2 n in Bell et al.). Odd k needs an even n (Harary: each client is also joined
  /// to the client opposite on the ring); no k-regular graph exists for odd k and odd n.
  int num_neighbours = 0;
  /// M: a power of two in [2, 2^32]. Inputs, masked inputs and the sum are words below M.
  std::uint64_t modulus = std::uint64_t{1} << 32;
  /// L: words per vector, in [1, kSecAggMaxVectorLength].
  std::size_t vector_length = 0;
  /// Seeds SecAgg+'s graph (ignored for SecAgg); every participant must use the same one.
  std::uint64_t graph_seed = 0;
};

inline constexpr int kSecAggMaxClients = 1 << 20;
inline constexpr std::size_t kSecAggMaxVectorLength = std::size_t{1} << 31;
/// Separates the graph's permutation from other uses of graph_seed.
inline constexpr std::uint64_t kSecAggGraphDomain = 0x5365634167472b;

/// OK when `params` describes a round; otherwise INVALID_ARGUMENT naming the field, its value and
/// what is allowed (see SecAggParams). The neighbourhood size must also be at most
/// core::security::kShamirMaxShares (65535).
Status ValidateSecAggParams(const SecAggParams& params);

/// N(u) for every u in 0..n-1 (element u, sorted increasingly, u itself excluded): everyone else
/// for SecAgg; for SecAgg+, clients perm[p] for p on a ring of the permutation perm drawn by
/// core::Rng(core::DeriveSeed(graph_seed, {kSecAggGraphDomain})).Shuffle, joined to the k / 2
/// nearest positions on each side (and, for odd k, to position p + n / 2). The graph is
/// symmetric, k-regular and a pure function of (n, k, graph_seed). Empty when
/// ValidateSecAggParams(params) fails.
std::vector<std::vector<int>> SecAggNeighbours(const SecAggParams& params);

// ---- Messages. Every one carries the round id; receivers refuse another round's. ----

/// Stage 0, client -> server: client `id`'s two X25519 public keys (32 bytes each).
struct SecAggKeys {
  std::uint64_t round_id = 0;
  int id = -1;
  core::Bytes c_public;  // encrypts the shares sent to this client
  core::Bytes s_public;  // agrees the pairwise masks
};

/// Stage 0, server -> client `id`: the members of U1 in the client's neighbourhood (`survivors`,
/// increasing, the client included) and their keys (`neighbours`, increasing id, without the
/// client's own).
struct SecAggKeyList {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<int> survivors;
  std::vector<SecAggKeys> neighbours;
};

/// One sealed pair of shares (of s_from and b_from) from client `from` to client `to`:
/// nonce || AES-256-GCM ciphertext || tag, kSecAggShareCiphertextBytes long.
struct SecAggShareCiphertext {
  int from = -1;
  int to = -1;
  core::Bytes ciphertext;
};

/// The size of every SecAggShareCiphertext::ciphertext.
inline constexpr std::size_t kSecAggShareCiphertextBytes = 212;

/// Stage 1, client -> server: client `id`'s ciphertexts, one per neighbour in U1.
struct SecAggEncryptedShares {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<SecAggShareCiphertext> ciphertexts;
  /// C_id, the commitment to b_id (32 bytes; see the file comment): what Finish checks the
  /// reconstructed self-mask seed against.
  core::Bytes self_mask_commitment;
};

/// Stage 1, server -> client `id`: the members of U2 in the client's neighbourhood (`survivors`,
/// increasing, the client included) and the ciphertexts addressed to the client, one from each
/// of its neighbours in U2.
struct SecAggSharesForYou {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<int> survivors;
  std::vector<SecAggShareCiphertext> ciphertexts;
};

/// Stage 2, client -> server: y_u, vector_length words below the modulus, and the neighbours
/// whose shares for u did not open (increasing; u holds no shares of them).
struct SecAggMaskedInput {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<std::uint32_t> masked;
  std::vector<int> accused;
};

/// Stage 2, server -> client `id`: the members of U3 (`survivors`) and of D = U2 \ U3
/// (`dropped`) in the client's neighbourhood, increasing.
struct SecAggUnmaskRequest {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<int> survivors;
  std::vector<int> dropped;
};

/// Which secret of its owner a revealed share belongs to.
enum class SecAggShareKind : std::uint8_t {
  kSelfMaskSeed = 1,  // b_owner: revealed for an owner in U3
  kMaskKey = 2,       // s_owner's private key: revealed for an owner in D
};

struct SecAggRevealedShare {
  int owner = -1;
  SecAggShareKind kind = SecAggShareKind::kSelfMaskSeed;
  core::security::ShamirShare share;
};

/// Stage 3, client -> server: client `id`'s shares, one for each client of its neighbourhood
/// (itself included) in U2 that it did not accuse, in increasing owner order.
struct SecAggUnmaskReply {
  std::uint64_t round_id = 0;
  int id = -1;
  std::vector<SecAggRevealedShare> shares;
};

// ---- Encoding. All integers little-endian; every message starts with a 4-byte magic naming
// its type ("FSAK", "FSAL", "FSAE", "FSAS", "FSAM", "FSAR", "FSAU") and a u32 format version
// (kSecAggFormatVersion); ids are u32 (at most INT32_MAX), lists and byte strings are preceded
// by a u32 count (the masked vector by a u64 count), shares are EncodeShare's form behind a u32
// length. Encode never fails. Decode... returns INVALID_ARGUMENT naming the message and the
// field for a wrong magic or version, truncation, a count larger than the bytes that follow
// (checked before anything is allocated), a key other than 32 bytes, an invalid share or share
// kind, an id above INT32_MAX, a commitment other than 32 bytes, or trailing bytes. Decoding checks
// the form only; whether the content fits the round is checked by the receiving object. ----

/// 2: SecAggEncryptedShares carries the self-mask commitment (a blob behind the ciphertexts),
/// SecAggMaskedInput the accused (a u32 count and ids behind the words).
inline constexpr std::uint32_t kSecAggFormatVersion = 2;

core::Bytes Encode(const SecAggKeys& message);
core::Bytes Encode(const SecAggKeyList& message);
core::Bytes Encode(const SecAggEncryptedShares& message);
core::Bytes Encode(const SecAggSharesForYou& message);
core::Bytes Encode(const SecAggMaskedInput& message);
core::Bytes Encode(const SecAggUnmaskRequest& message);
core::Bytes Encode(const SecAggUnmaskReply& message);

Result<SecAggKeys> DecodeSecAggKeys(const core::Bytes& bytes);
Result<SecAggKeyList> DecodeSecAggKeyList(const core::Bytes& bytes);
Result<SecAggEncryptedShares> DecodeSecAggEncryptedShares(const core::Bytes& bytes);
Result<SecAggSharesForYou> DecodeSecAggSharesForYou(const core::Bytes& bytes);
Result<SecAggMaskedInput> DecodeSecAggMaskedInput(const core::Bytes& bytes);
Result<SecAggUnmaskRequest> DecodeSecAggUnmaskRequest(const core::Bytes& bytes);
Result<SecAggUnmaskReply> DecodeSecAggUnmaskReply(const core::Bytes& bytes);

/// One client of one round. Call AdvertiseKeys, ShareKeys, MaskInput, Unmask in this order, each
/// once; a call out of order (or after the last) is FAILED_PRECONDITION. A call that fails for
/// any other reason leaves the client where it was (it may be retried with a corrected message).
/// Invalid params or an id outside 0..n-1 make every call return that INVALID_ARGUMENT.
/// Movable, not copyable (a moved-from client may only be destroyed or assigned to); the
/// destructor wipes the client's secrets.
class SecAggClient {
 public:
  SecAggClient(int id, SecAggParams params, std::uint64_t round_id);
  ~SecAggClient();
  SecAggClient(SecAggClient&&) noexcept;
  SecAggClient& operator=(SecAggClient&&) noexcept;
  SecAggClient(const SecAggClient&) = delete;
  SecAggClient& operator=(const SecAggClient&) = delete;

  int id() const;

  /// Stage 0: makes the key pairs. INTERNAL when OpenSSL fails.
  Result<SecAggKeys> AdvertiseKeys();

  /// Stage 1: checks the list (this round and client; survivors increasing, within the
  /// neighbourhood, holding this client; exactly one 32-byte key entry per other survivor and
  /// none for anyone else: INVALID_ARGUMENT otherwise; FAILED_PRECONDITION when fewer than
  /// `threshold` survivors are listed), draws b_u and returns the sealed shares.
  /// INVALID_ARGUMENT also for a low-order public key (X25519).
  Result<SecAggEncryptedShares> ShareKeys(const SecAggKeyList& keys);

  /// Stage 2: `input` points to vector_length words, each below the modulus (INVALID_ARGUMENT
  /// naming the first index that is not, or for a null pointer); it is read only during the call.
  /// Checks the survivors (increasing, within the stage-0 survivors, holding this client:
  /// INVALID_ARGUMENT; at least `threshold` of them: FAILED_PRECONDITION) and that there is
  /// exactly one ciphertext from each other survivor addressed to this client (INVALID_ARGUMENT
  /// otherwise), and opens each. A ciphertext that fails authentication (altered, or sealed for
  /// another pair or round) or whose plaintext is not v's shares for this client at this client's
  /// x does not fail the call: its sender v goes into the reply's `accused` and this client holds
  /// no shares of v. Returns y_u (masked with every survivor, accused or not: the server takes
  /// an accused client's masks out as any other's).
  Result<SecAggMaskedInput> MaskInput(const SecAggSharesForYou& shares, const std::uint32_t* input);

  /// Stage 3: PERMISSION_DENIED when the request lists a client both as a survivor and as
  /// dropped ("asked for both ... of client u": revealing both would expose x_u, the protocol's
  /// safeguard), or lists this client as dropped; INVALID_ARGUMENT when the lists are not
  /// increasing or do not split the stage-1 survivors exactly; FAILED_PRECONDITION when fewer
  /// than `threshold` survivors are listed. Returns one share per client of the neighbourhood
  /// within U2 that it did not accuse, then wipes every secret it held (the client is done).
  Result<SecAggUnmaskReply> Unmask(const SecAggUnmaskRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The server of one round. Stages: Add(Keys)* EndAdvertise, AddShares* EndSharing,
/// AddMaskedInput* EndMasking, AddUnmaskReply* Finish; the caller closes each stage when it
/// decides (a deadline, enough answers): those who have not answered by then have dropped.
/// An Add call refuses, leaving the server as it was: a call for a stage other than the current
/// one (FAILED_PRECONDITION), another round's message, an id that is not a participant of the
/// stage (outside 0..n-1, or not a survivor of the previous stage), wrong sizes, contents that
/// do not match the graph and survivors (INVALID_ARGUMENT, naming the field), and a second
/// message from the same client (ALREADY_EXISTS). An End call or Finish that finds too few
/// survivors aborts the round for good (see the file comment). Invalid params make every call
/// return that INVALID_ARGUMENT. Movable, not copyable (a moved-from server may only be
/// destroyed or assigned to).
class SecAggServer {
 public:
  /// `threads`: Finish removes the masks with up to this many threads (0: the hardware's
  /// concurrency), each owning a slice of the sum and all joined before Finish returns; the sum
  /// is the same for any count. Threads pay off only with idle cores.
  SecAggServer(SecAggParams params, std::uint64_t round_id, int threads = 1);
  ~SecAggServer();
  SecAggServer(SecAggServer&&) noexcept;
  SecAggServer& operator=(SecAggServer&&) noexcept;
  SecAggServer(const SecAggServer&) = delete;
  SecAggServer& operator=(const SecAggServer&) = delete;

  /// Stage 0: one client's public keys (32 bytes each).
  Status AddKeys(const SecAggKeys& keys);
  /// Closes stage 0; returns each U1 client's key list, by id (copies of its neighbours' keys).
  Result<std::map<int, SecAggKeyList>> EndAdvertise();

  /// Stage 1: a U1 client's ciphertexts: exactly one for each of its neighbours in U1, each
  /// with from = the sender and kSecAggShareCiphertextBytes long (copied into the server), and a
  /// 32-byte self-mask commitment.
  Status AddShares(const SecAggEncryptedShares& shares);
  /// Closes stage 1; returns, for each U2 client, the survivors of its neighbourhood and the
  /// ciphertexts addressed to it (moved out of the server).
  Result<std::map<int, SecAggSharesForYou>> EndSharing();

  /// Stage 2: a U2 client's y_u (vector_length words below the modulus), taken over (move it in
  /// to spare a copy) and added into the running sum. `accused` must be increasing neighbours
  /// of the client in U2; each is blamed. Accepted inputs wait to be folded in
  /// core::security::kMaxModFold (4) at a time, and EndMasking folds the rest, so the server
  /// holds at most 3 client vectors besides the sum.
  Status AddMaskedInput(SecAggMaskedInput input);
  /// Closes stage 2; returns, for each U3 client, the unmask request (U3 and D within its
  /// neighbourhood).
  Result<std::map<int, SecAggUnmaskRequest>> EndMasking();

  /// Stage 3: a U3 client's shares: exactly one per client of its neighbourhood within U2 that it
  /// did not accuse, of the kind that client's fate asks for (kSelfMaskSeed for U3, kMaskKey for
  /// D), each a share of a 32-byte secret at this holder's x (INVALID_ARGUMENT naming the owner
  /// otherwise: a share at another point would pass for another holder's).
  Status AddUnmaskReply(const SecAggUnmaskReply& reply);
  /// Closes stage 3 and returns sum_{u in U3} x_u mod M (vector_length words). Aborts
  /// (FAILED_PRECONDITION, see the file comment) when fewer than `threshold` clients answered,
  /// globally or within a neighbourhood (holders that accused a client do not count for it);
  /// DATA_LOSS naming the client when no share set that Finish tries reconstructs a secret that
  /// passes its check (b against C_u, s against its public key). A bad share it got around is
  /// blamed on its holder. Any error is final; after success the server is done (further calls:
  /// FAILED_PRECONDITION).
  Result<std::vector<std::uint32_t>> Finish();

  /// U3, increasing; empty before EndMasking has succeeded.
  const std::vector<int>& survivors() const;

  /// The clients found at fault so far this round (see "Blame" in the file comment), each with
  /// why; kept after an abort.
  const std::map<int, std::string>& blamed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedml::algorithms
