// SecAgg and SecAgg+ state machines (fedml/algorithms/protocols/secagg.h): the client and server of
// one round and their message encodings. Why one file of this size: the client and server halves of
// each stage and the encodings they exchange are reviewed together; the cryptography itself is
// in core/security.
#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/algorithms/protocols/secagg_auth.h"

#include <openssl/crypto.h>  // OPENSSL_cleanse: crypto.h offers no wipe helper

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "fedml/core/bytes.h"
#include "fedml/core/defer.h"
#include "fedml/core/parallel.h"
#include "fedml/core/random.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"
#include "fedml/core/security/signatures.h"

namespace fedml::algorithms {
namespace {

namespace sec = core::security;
using core::Bytes;

constexpr std::size_t kKeyBytes = sec::kX25519KeyBytes;
constexpr std::size_t kSecretBytes = 32;  // b_u and s_u's private key
constexpr std::size_t kSecretChunks = kSecretBytes / 4;
constexpr std::size_t kEncodedShareBytes = 16 + 8 * kSecretChunks;  // EncodeShare's size
constexpr std::size_t kCommitmentBytes = 32;
// "FSAP" | u32 version | u32 from | u32 to | u32 len | share of s | u32 len | share of b
constexpr std::size_t kSharePlaintextBytes =
    4 + 4 + 4 + 4 + 4 + kEncodedShareBytes + 4 + kEncodedShareBytes;
static_assert(kSecAggShareCiphertextBytes ==
                  sec::kAeadNonceBytes + kSharePlaintextBytes + sec::kAeadTagBytes,
              "the header's ciphertext size is out of date");

// ---- Wiping ----

void Wipe(Bytes& b) {
  if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
  b.clear();
}
void Wipe(sec::ShamirShare& s) {
  if (!s.y.empty()) OPENSSL_cleanse(s.y.data(), s.y.size() * sizeof(std::uint64_t));
  s.y.clear();
}
void Wipe(std::vector<sec::ShamirShare>& v) {
  for (auto& s : v) Wipe(s);
  v.clear();
}
void Wipe(std::vector<std::uint32_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size() * sizeof(std::uint32_t));
  v.clear();
}

using core::Defer;

// ---- Byte encoding ----
//
// Every message: 4-byte magic | u32 format version | body. Most bodies begin with the round id
// (u64) and the sender's or recipient's id (u32).

using core::ByteReader;
using core::ByteWriter;

void PutId(ByteWriter& w, int id) { w.U32(static_cast<std::uint32_t>(id)); }
void PutIds(ByteWriter& w, const std::vector<int>& ids) {
  w.U32(static_cast<std::uint32_t>(ids.size()));
  for (int id : ids) PutId(w, id);
}
// The magic and version, with room for `capacity` bytes in all.
ByteWriter Header(const char* magic, std::size_t capacity = 0) {
  ByteWriter w(capacity);
  w.Raw(std::string_view(magic, 4)).U32(kSecAggFormatVersion);
  return w;
}
// The header, the round id and an id.
ByteWriter Begin(const char* magic, std::uint64_t round_id, int id, std::size_t capacity = 0) {
  ByteWriter w = Header(magic, capacity);
  w.U64(round_id);
  PutId(w, id);
  return w;
}

Result<int> ReadId(ByteReader& r, const char* field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t v, r.U32(field));
  if (v > 0x7fffffffu) {
    return r.Error(std::string(field) + " " + std::to_string(v) + " is above INT32_MAX");
  }
  return static_cast<int>(v);
}
Status ReadIds(ByteReader& r, std::vector<int>* ids, const char* field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count(field, 4));
  ids->resize(n);
  for (auto& id : *ids) {
    FEDML_ASSIGN_OR_RETURN(id, ReadId(r, field));
  }
  return Status::Ok();
}
Status ReadRoundAndId(ByteReader& r, std::uint64_t* round_id, int* id) {
  FEDML_ASSIGN_OR_RETURN(*round_id, r.U64("round_id"));
  FEDML_ASSIGN_OR_RETURN(*id, ReadId(r, "id"));
  return Status::Ok();
}
Status ReadKey(ByteReader& r, Bytes* key, const char* field) {
  FEDML_RETURN_IF_ERROR(r.Blob(key, field));
  if (key->size() != kKeyBytes) {
    return r.Error(std::string(field) + " is " + std::to_string(key->size()) +
                   " bytes; X25519 keys are 32");
  }
  return Status::Ok();
}
// A share in EncodeShare's form behind a u32 length; the encoded copy is wiped.
Status ReadShare(ByteReader& r, sec::ShamirShare* share, const char* field) {
  Bytes encoded;
  FEDML_RETURN_IF_ERROR(r.Blob(&encoded, field));
  Result<sec::ShamirShare> s = sec::DecodeShare(encoded);
  Wipe(encoded);
  if (!s.ok()) return r.Error(std::string(field) + ": " + s.status().message());
  *share = std::move(s).value();
  return Status::Ok();
}

// Reads `bytes` as one message: the header with `magic`, the body (read_body(r)), the end.
template <class ReadBody>
Status ReadMessage(const Bytes& bytes, const char* what, const char* magic, ReadBody read_body) {
  ByteReader r(bytes, what);
  FEDML_RETURN_IF_ERROR(r.Magic(std::string_view(magic, 4)));
  FEDML_RETURN_IF_ERROR(r.Version32(kSecAggFormatVersion));
  FEDML_RETURN_IF_ERROR(read_body(r));
  return r.End();
}
// The same into a message of type T (read_body(r, &m)).
template <class T, class ReadBody>
Result<T> DecodeMessage(const Bytes& bytes, const char* what, const char* magic,
                        ReadBody read_body) {
  T m;
  FEDML_RETURN_IF_ERROR(
      ReadMessage(bytes, what, magic, [&](ByteReader& r) { return read_body(r, &m); }));
  return m;
}

void PutKeys(ByteWriter& w, const SecAggKeys& k) {
  w.U64(k.round_id);
  PutId(w, k.id);
  w.Blob(k.c_public).Blob(k.s_public);
}
constexpr std::size_t kMinKeysBytes = 8 + 4 + 4 + 4;
Status ReadKeys(ByteReader& r, SecAggKeys* k) {
  FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &k->round_id, &k->id));
  FEDML_RETURN_IF_ERROR(ReadKey(r, &k->c_public, "c_public"));
  return ReadKey(r, &k->s_public, "s_public");
}

void PutCiphertexts(ByteWriter& w, const std::vector<SecAggShareCiphertext>& cts) {
  w.U32(static_cast<std::uint32_t>(cts.size()));
  for (const auto& c : cts) {
    PutId(w, c.from);
    PutId(w, c.to);
    w.Blob(c.ciphertext);
  }
}
Status ReadCiphertexts(ByteReader& r, std::vector<SecAggShareCiphertext>* cts) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count("ciphertexts", 12));
  cts->resize(n);
  for (auto& c : *cts) {
    FEDML_ASSIGN_OR_RETURN(c.from, ReadId(r, "ciphertext from"));
    FEDML_ASSIGN_OR_RETURN(c.to, ReadId(r, "ciphertext to"));
    FEDML_RETURN_IF_ERROR(r.Blob(&c.ciphertext, "ciphertext"));
  }
  return Status::Ok();
}

// ---- Protocol helpers ----

std::string Str(int v) { return std::to_string(v); }
std::string Str(std::size_t v) { return std::to_string(v); }

Bytes Salt(std::uint64_t round_id) { return ByteWriter(8).U64(round_id).Take(); }

Bytes ShareAssociatedData(std::uint64_t round_id, int from, int to) {
  ByteWriter w(16);
  w.U64(round_id);
  PutId(w, from);
  PutId(w, to);
  return w.Take();
}

std::string ShareInfo(int from, int to) {
  return "fedml secagg share " + Str(from) + "->" + Str(to);
}
constexpr const char* kMaskInfo = "fedml secagg mask";
constexpr const char* kCommitInfo = "fedml secagg self-mask commitment";

// C_u: binds u to its self-mask seed so that Finish can tell a good reconstruction from one
// that a bad share spoilt (b_u is 32 uniform bytes, so C_u says nothing about it).
Result<Bytes> SelfMaskCommitment(const Bytes& b_seed, const Bytes& salt) {
  return sec::HkdfSha256(b_seed, salt, kCommitInfo, kCommitmentBytes);
}

// The point of holder v's share of owner u's secrets: 1 + v's position in u's neighbourhood
// (N(u) + u, increasing). Fixed by the graph alone, so the holder and the server both know
// which x a share of v's must have, and nobody can pass a share off as another holder's.
std::uint32_t ShareX(const std::vector<int>& owner_neighbours, int owner, int holder) {
  const auto below = std::lower_bound(owner_neighbours.begin(), owner_neighbours.end(), holder) -
                     owner_neighbours.begin();
  return static_cast<std::uint32_t>(below) + (owner < holder ? 2u : 1u);
}

// HKDF-SHA256(X25519(mine, their_public), salt, info, 32); the shared secret is wiped.
Result<Bytes> DeriveKey(const sec::X25519PrivateKey& mine, const Bytes& their_public,
                        const Bytes& salt, const std::string& info) {
  FEDML_ASSIGN_OR_RETURN(Bytes shared, mine.SharedSecret(their_public));
  Result<Bytes> key = sec::HkdfSha256(shared, salt, info, 32);
  Wipe(shared);
  return key;
}

// ---- Masks ----
//
// A round applies many masks of L words to one vector: k + 1 on a client (n for SecAgg), and
// |U3| + sum over D of |N(u) n U3| on the server (~2700 for n = 1000, k = 20, 10% dropout).
// Expanding each mask into an L-word scratch vector (ExpandMask) and adding it in a second pass
// writes the scratch, reads it back and reads and writes the accumulator: 4 x 4L bytes of memory
// traffic per mask, for vectors far larger than the caches. Here the loops are interchanged: the
// accumulator is walked in kMaskChunkWords slices and, while a slice sits in L1, the matching
// keystream piece of every mask of a batch is generated into one small buffer and added (or
// subtracted) straight away, so the accumulator crosses memory once per batch of masks and the run
// is bound by AES-CTR alone. The keystream is exactly ExpandMask's (AES-256-CTR under the 32-byte
// seed, all-zero initial counter block, words little-endian), so clients and servers that use
// ExpandMask elsewhere agree with these; secagg_test checks it.
//
using sec::ApplyMasks;
using sec::MaskTerm;

void Wipe(std::vector<MaskTerm>& v) {
  for (auto& t : v) Wipe(t.seed);
  v.clear();
}

// Dropped clients below which another of Finish's threads does not pay for its start (tens of
// microseconds against ~1.5 ms of key agreements per dropped client).
constexpr std::size_t kDroppedPerThread = 4;

// The threads a server's Finish uses: `requested` (0 = all), at most the hardware's concurrency.
int MaskThreads(int requested) {
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return requested <= 0 ? hardware : std::min(requested, hardware);
}

// The ring order of SecAgg+ (position -> client).
std::vector<int> RingOrder(const SecAggParams& p) {
  std::vector<int> perm(static_cast<std::size_t>(p.num_clients));
  std::iota(perm.begin(), perm.end(), 0);
  core::Rng rng(core::DeriveSeed(p.graph_seed, {kSecAggGraphDomain}));
  rng.Shuffle(perm);
  return perm;
}

// N(u), sorted, for client at ring position pos of perm (SecAgg+), or everyone else (SecAgg).
std::vector<int> NeighboursAt(const SecAggParams& p, const std::vector<int>& perm, int u,
                              std::size_t pos) {
  std::vector<int> out;
  const int n = p.num_clients;
  const int k = p.num_neighbours;
  if (k == 0) {
    out.reserve(static_cast<std::size_t>(n - 1));
    for (int v = 0; v < n; ++v) {
      if (v != u) out.push_back(v);
    }
    return out;
  }
  out.reserve(static_cast<std::size_t>(k));
  const std::size_t nn = static_cast<std::size_t>(n);
  for (int d = 1; d <= k / 2; ++d) {
    const std::size_t dd = static_cast<std::size_t>(d);
    out.push_back(perm[(pos + dd) % nn]);
    out.push_back(perm[(pos + nn - dd) % nn]);
  }
  if (k % 2 == 1) out.push_back(perm[(pos + nn / 2) % nn]);
  std::sort(out.begin(), out.end());
  return out;
}

int NeighbourhoodSize(const SecAggParams& p) {
  return p.num_neighbours == 0 ? p.num_clients : p.num_neighbours + 1;
}

bool Contains(const std::vector<int>& sorted, int v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

// Checks that ids are strictly increasing and within 0..n-1.
Status CheckIdList(const std::vector<int>& ids, int n, const std::string& what) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n) {
      return Status::InvalidArgument(what + " lists client " + Str(ids[i]) + ", outside 0.." +
                                     Str(n - 1));
    }
    if (i > 0 && ids[i] <= ids[i - 1]) {
      return Status::InvalidArgument(what + " is not strictly increasing (" + Str(ids[i - 1]) +
                                     " then " + Str(ids[i]) + ")");
    }
  }
  return Status::Ok();
}

// The share-pair plaintext sealed from `from` to `to`.
Bytes EncodeSharePlaintext(int from, int to, const sec::ShamirShare& s_share,
                           const sec::ShamirShare& b_share) {
  // Reserved in full before any secret is written: a reallocation would leave a copy behind.
  ByteWriter w = Header("FSAP", kSharePlaintextBytes);
  PutId(w, from);
  PutId(w, to);
  Bytes e = sec::EncodeShare(s_share);
  w.Blob(e);
  Wipe(e);
  e = sec::EncodeShare(b_share);
  w.Blob(e);
  Wipe(e);
  return w.Take();
}

Status CheckSecretShare(const sec::ShamirShare& s, const std::string& what) {
  if (s.secret_bytes != kSecretBytes || s.y.size() != kSecretChunks) {
    return Status::InvalidArgument(what + " is not a share of a 32-byte secret (" +
                                   std::to_string(s.secret_bytes) + " bytes, " + Str(s.y.size()) +
                                   " chunks)");
  }
  if (s.x < 1 || s.x > static_cast<std::uint32_t>(sec::kShamirMaxShares)) {
    return Status::InvalidArgument(what + " has x = " + std::to_string(s.x) + ", outside 1.." +
                                   Str(sec::kShamirMaxShares));
  }
  for (std::uint64_t y : s.y) {
    if (y >= sec::kShamirPrime) {
      return Status::InvalidArgument(what + " has a value outside the field");
    }
  }
  return Status::Ok();
}

Status DecodeSharePlaintext(const Bytes& pt, int from, int to, sec::ShamirShare* s_share,
                            sec::ShamirShare* b_share) {
  auto read = [&](ByteReader& r) -> Status {
    FEDML_ASSIGN_OR_RETURN(const int f, ReadId(r, "from"));
    FEDML_ASSIGN_OR_RETURN(const int t, ReadId(r, "to"));
    if (f != from || t != to) {
      return Status::InvalidArgument("names the pair " + Str(f) + "->" + Str(t));
    }
    FEDML_RETURN_IF_ERROR(ReadShare(r, s_share, "share of s"));
    return ReadShare(r, b_share, "share of b");
  };
  Status st = ReadMessage(pt, "share plaintext", "FSAP", read);
  if (st.ok()) st = CheckSecretShare(*s_share, "share of s");
  if (st.ok()) st = CheckSecretShare(*b_share, "share of b");
  if (!st.ok()) {
    Wipe(*s_share);
    Wipe(*b_share);
    return Status::InvalidArgument("shares from client " + Str(from) + " to client " + Str(to) +
                                   " are not a valid share pair: " + st.message());
  }
  return Status::Ok();
}

Status AbortStatus(int stage, std::size_t remain, int of, int threshold) {
  return Status::FailedPrecondition("secure aggregation aborted at stage " + Str(stage) + ": " +
                                    Str(remain) + " of " + Str(of) + " clients remain, threshold " +
                                    Str(threshold));
}
Status NeighbourhoodAbortStatus(int stage, std::size_t remain, int of, int u, int threshold) {
  return Status::FailedPrecondition(
      "secure aggregation aborted at stage " + Str(stage) + ": " + Str(remain) + " of " + Str(of) +
      " clients remain in the neighbourhood of client " + Str(u) + ", threshold " + Str(threshold));
}

}  // namespace

// ---- Parameters and graph ----

Status ValidateSecAggParams(const SecAggParams& p) {
  if (p.num_clients < 2 || p.num_clients > kSecAggMaxClients) {
    return Status::InvalidArgument("num_clients is " + Str(p.num_clients) + "; allowed: 2.." +
                                   Str(kSecAggMaxClients));
  }
  if (p.num_neighbours < 0 || p.num_neighbours >= p.num_clients) {
    return Status::InvalidArgument("num_neighbours is " + Str(p.num_neighbours) +
                                   "; allowed: 0 (everyone: SecAgg) or 1..num_clients - 1 = " +
                                   Str(p.num_clients - 1) + " (SecAgg+)");
  }
  if (p.num_neighbours % 2 == 1 && p.num_clients % 2 == 1) {
    return Status::InvalidArgument("num_neighbours is " + Str(p.num_neighbours) +
                                   ", odd, with num_clients " + Str(p.num_clients) +
                                   ", odd: no graph has every degree odd on an odd number of "
                                   "clients; use an even num_neighbours");
  }
  const int hood = NeighbourhoodSize(p);
  if (hood > sec::kShamirMaxShares) {
    return Status::InvalidArgument(
        "the neighbourhood has " + Str(hood) + " clients (num_clients " + Str(p.num_clients) +
        ", num_neighbours " + Str(p.num_neighbours) + "); Shamir sharing allows at most " +
        Str(sec::kShamirMaxShares) + ": set num_neighbours (SecAgg+) to at most " +
        Str(sec::kShamirMaxShares - 1));
  }
  if (p.threshold < 1 || p.threshold > hood) {
    return Status::InvalidArgument(
        "threshold is " + Str(p.threshold) + "; allowed: 1.." + Str(hood) +
        " (the neighbourhood size: " +
        (p.num_neighbours == 0 ? std::string("num_clients") : std::string("num_neighbours + 1")) +
        "); more than half of it is recommended");
  }
  const std::uint64_t m = p.modulus;
  if (m < 2 || m > (std::uint64_t{1} << 32) || (m & (m - 1)) != 0) {
    return Status::InvalidArgument("modulus is " + std::to_string(m) +
                                   "; allowed: a power of two in [2, 2^32]");
  }
  if (p.vector_length < 1 || p.vector_length > kSecAggMaxVectorLength) {
    return Status::InvalidArgument("vector_length is " + Str(p.vector_length) + "; allowed: 1.." +
                                   Str(kSecAggMaxVectorLength));
  }
  return Status::Ok();
}

std::vector<std::vector<int>> SecAggNeighbours(const SecAggParams& p) {
  if (!ValidateSecAggParams(p).ok()) return {};
  const std::size_t n = static_cast<std::size_t>(p.num_clients);
  std::vector<std::vector<int>> out(n);
  if (p.num_neighbours == 0) {
    for (std::size_t u = 0; u < n; ++u) out[u] = NeighboursAt(p, {}, static_cast<int>(u), 0);
    return out;
  }
  const std::vector<int> perm = RingOrder(p);
  for (std::size_t pos = 0; pos < n; ++pos) {
    const int u = perm[pos];
    out[static_cast<std::size_t>(u)] = NeighboursAt(p, perm, u, pos);
  }
  return out;
}

// ---- Encoding ----

Bytes Encode(const SecAggKeys& m) {
  ByteWriter w = Header("FSAK");
  PutKeys(w, m);
  return w.Take();
}

Result<SecAggKeys> DecodeSecAggKeys(const Bytes& bytes) {
  return DecodeMessage<SecAggKeys>(bytes, "SecAggKeys", "FSAK", ReadKeys);
}

Bytes Encode(const SecAggKeyList& m) {
  ByteWriter w = Begin("FSAL", m.round_id, m.id);
  PutIds(w, m.survivors);
  w.U32(static_cast<std::uint32_t>(m.neighbours.size()));
  for (const auto& k : m.neighbours) PutKeys(w, k);
  return w.Take();
}

Result<SecAggKeyList> DecodeSecAggKeyList(const Bytes& bytes) {
  return DecodeMessage<SecAggKeyList>(
      bytes, "SecAggKeyList", "FSAL", [](ByteReader& r, SecAggKeyList* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_RETURN_IF_ERROR(ReadIds(r, &m->survivors, "survivors"));
        FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count("neighbours", kMinKeysBytes));
        m->neighbours.resize(n);
        for (auto& k : m->neighbours) FEDML_RETURN_IF_ERROR(ReadKeys(r, &k));
        return Status::Ok();
      });
}

Bytes Encode(const SecAggEncryptedShares& m) {
  ByteWriter w = Begin("FSAE", m.round_id, m.id);
  PutCiphertexts(w, m.ciphertexts);
  w.Blob(m.self_mask_commitment);
  return w.Take();
}

Result<SecAggEncryptedShares> DecodeSecAggEncryptedShares(const Bytes& bytes) {
  return DecodeMessage<SecAggEncryptedShares>(
      bytes, "SecAggEncryptedShares", "FSAE",
      [](ByteReader& r, SecAggEncryptedShares* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_RETURN_IF_ERROR(ReadCiphertexts(r, &m->ciphertexts));
        FEDML_RETURN_IF_ERROR(r.Blob(&m->self_mask_commitment, "self_mask_commitment"));
        if (m->self_mask_commitment.size() != kCommitmentBytes) {
          return r.Error("self_mask_commitment is " + Str(m->self_mask_commitment.size()) +
                         " bytes; commitments are 32");
        }
        return Status::Ok();
      });
}

Bytes Encode(const SecAggSharesForYou& m) {
  ByteWriter w = Begin("FSAS", m.round_id, m.id);
  PutIds(w, m.survivors);
  PutCiphertexts(w, m.ciphertexts);
  return w.Take();
}

Result<SecAggSharesForYou> DecodeSecAggSharesForYou(const Bytes& bytes) {
  return DecodeMessage<SecAggSharesForYou>(
      bytes, "SecAggSharesForYou", "FSAS", [](ByteReader& r, SecAggSharesForYou* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_RETURN_IF_ERROR(ReadIds(r, &m->survivors, "survivors"));
        return ReadCiphertexts(r, &m->ciphertexts);
      });
}

Bytes Encode(const SecAggMaskedInput& m) {
  // One exact reservation: the vector is the round's bulk.
  ByteWriter w = Begin("FSAM", m.round_id, m.id,
                       8 + 8 + 4 + 8 + 4 * m.masked.size() + 4 + 4 * m.accused.size());
  w.U64(m.masked.size()).U32s(m.masked.data(), m.masked.size());
  PutIds(w, m.accused);
  return w.Take();
}

Result<SecAggMaskedInput> DecodeSecAggMaskedInput(const Bytes& bytes) {
  return DecodeMessage<SecAggMaskedInput>(
      bytes, "SecAggMaskedInput", "FSAM", [](ByteReader& r, SecAggMaskedInput* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_ASSIGN_OR_RETURN(const std::uint64_t n, r.U64("masked count"));
        FEDML_RETURN_IF_ERROR(r.U32s(n, &m->masked, "masked"));
        return ReadIds(r, &m->accused, "accused");
      });
}

Bytes Encode(const SecAggUnmaskRequest& m) {
  ByteWriter w = Begin("FSAR", m.round_id, m.id);
  PutIds(w, m.survivors);
  PutIds(w, m.dropped);
  return w.Take();
}

Result<SecAggUnmaskRequest> DecodeSecAggUnmaskRequest(const Bytes& bytes) {
  return DecodeMessage<SecAggUnmaskRequest>(
      bytes, "SecAggUnmaskRequest", "FSAR", [](ByteReader& r, SecAggUnmaskRequest* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_RETURN_IF_ERROR(ReadIds(r, &m->survivors, "survivors"));
        return ReadIds(r, &m->dropped, "dropped");
      });
}

Bytes Encode(const SecAggUnmaskReply& m) {
  ByteWriter w = Begin("FSAU", m.round_id, m.id);
  w.U32(static_cast<std::uint32_t>(m.shares.size()));
  for (const auto& s : m.shares) {
    PutId(w, s.owner);
    w.U8(static_cast<std::uint8_t>(s.kind)).Blob(sec::EncodeShare(s.share));
  }
  return w.Take();
}

Result<SecAggUnmaskReply> DecodeSecAggUnmaskReply(const Bytes& bytes) {
  return DecodeMessage<SecAggUnmaskReply>(
      bytes, "SecAggUnmaskReply", "FSAU", [](ByteReader& r, SecAggUnmaskReply* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count("shares", 4 + 1 + 4 + 16));
        m->shares.resize(n);
        for (auto& s : m->shares) {
          FEDML_ASSIGN_OR_RETURN(s.owner, ReadId(r, "share owner"));
          FEDML_ASSIGN_OR_RETURN(const std::uint8_t kind, r.U8("share kind"));
          if (kind != static_cast<std::uint8_t>(SecAggShareKind::kSelfMaskSeed) &&
              kind != static_cast<std::uint8_t>(SecAggShareKind::kMaskKey)) {
            return r.Error("share kind " + std::to_string(kind) +
                           " is neither 1 (self-mask seed) nor 2 (mask key)");
          }
          s.kind = static_cast<SecAggShareKind>(kind);
          FEDML_RETURN_IF_ERROR(ReadShare(r, &s.share, "share"));
        }
        return Status::Ok();
      });
}

// ---- Encoding of the authenticated round's messages (secagg_auth.h) ----

namespace {

void PutCredential(ByteWriter& w, const SecAggKeyCredential& c) {
  PutId(w, c.id);
  w.U64(static_cast<std::uint64_t>(c.client_id)).Blob(c.signature).String(c.certificate);
}
constexpr std::size_t kMinCredentialBytes = 4 + 8 + 4 + 4;
Status ReadCredential(ByteReader& r, SecAggKeyCredential* c) {
  FEDML_ASSIGN_OR_RETURN(c->id, ReadId(r, "credential id"));
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t client, r.U64("client_id"));
  if (client > static_cast<std::uint64_t>(INT64_MAX)) return r.Error("client_id is negative");
  c->client_id = static_cast<std::int64_t>(client);
  FEDML_RETURN_IF_ERROR(r.Blob(&c->signature, "signature", sec::kMaxSignatureBytes));
  FEDML_ASSIGN_OR_RETURN(c->certificate, r.String("certificate", sec::kMaxCertificatePemBytes));
  return Status::Ok();
}
// A nested message: its encoding as a blob, decoded by `decode`.
template <class T, class Decode>
Status ReadNested(ByteReader& r, const char* field, Decode decode, T* out) {
  Bytes inner;
  FEDML_RETURN_IF_ERROR(r.Blob(&inner, field));
  Result<T> m = decode(inner);
  if (!m.ok()) return r.Error(std::string(field) + ": " + m.status().message());
  *out = std::move(m).value();
  return Status::Ok();
}

}  // namespace

Bytes Encode(const SecAggSignedKeys& m) {
  ByteWriter w = Header("FSAA");
  w.Blob(Encode(m.keys));
  PutCredential(w, m.credential);
  return w.Take();
}

Result<SecAggSignedKeys> DecodeSecAggSignedKeys(const Bytes& bytes) {
  return DecodeMessage<SecAggSignedKeys>(
      bytes, "SecAggSignedKeys", "FSAA", [](ByteReader& r, SecAggSignedKeys* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadNested(r, "keys", DecodeSecAggKeys, &m->keys));
        return ReadCredential(r, &m->credential);
      });
}

Bytes Encode(const SecAggSignedKeyList& m) {
  ByteWriter w = Header("FSAB");
  w.Blob(Encode(m.list)).U32(static_cast<std::uint32_t>(m.credentials.size()));
  for (const auto& c : m.credentials) PutCredential(w, c);
  return w.Take();
}

Result<SecAggSignedKeyList> DecodeSecAggSignedKeyList(const Bytes& bytes) {
  return DecodeMessage<SecAggSignedKeyList>(
      bytes, "SecAggSignedKeyList", "FSAB", [](ByteReader& r, SecAggSignedKeyList* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadNested(r, "list", DecodeSecAggKeyList, &m->list));
        FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count("credentials", kMinCredentialBytes));
        m->credentials.resize(n);
        for (auto& c : m->credentials) FEDML_RETURN_IF_ERROR(ReadCredential(r, &c));
        return Status::Ok();
      });
}

Bytes Encode(const SecAggConsistencyRequest& m) {
  ByteWriter w = Begin("FSAC", m.round_id, m.id);
  PutIds(w, m.survivors);
  return w.Take();
}

Result<SecAggConsistencyRequest> DecodeSecAggConsistencyRequest(const Bytes& bytes) {
  return DecodeMessage<SecAggConsistencyRequest>(
      bytes, "SecAggConsistencyRequest", "FSAC",
      [](ByteReader& r, SecAggConsistencyRequest* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        return ReadIds(r, &m->survivors, "survivors");
      });
}

Bytes Encode(const SecAggSurvivorSignature& m) {
  ByteWriter w = Begin("FSAG", m.round_id, m.id);
  w.Blob(m.signature);
  return w.Take();
}

Result<SecAggSurvivorSignature> DecodeSecAggSurvivorSignature(const Bytes& bytes) {
  return DecodeMessage<SecAggSurvivorSignature>(
      bytes, "SecAggSurvivorSignature", "FSAG",
      [](ByteReader& r, SecAggSurvivorSignature* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadRoundAndId(r, &m->round_id, &m->id));
        return r.Blob(&m->signature, "signature", sec::kMaxSignatureBytes);
      });
}

Bytes Encode(const SecAggSignedUnmaskRequest& m) {
  ByteWriter w = Header("FSAP");
  w.Blob(Encode(m.request));
  PutIds(w, m.survivors);
  w.U32(static_cast<std::uint32_t>(m.signatures.size()));
  for (const auto& s : m.signatures) {
    PutId(w, s.id);
    w.Blob(s.signature);
  }
  return w.Take();
}

Result<SecAggSignedUnmaskRequest> DecodeSecAggSignedUnmaskRequest(const Bytes& bytes) {
  return DecodeMessage<SecAggSignedUnmaskRequest>(
      bytes, "SecAggSignedUnmaskRequest", "FSAP",
      [](ByteReader& r, SecAggSignedUnmaskRequest* m) -> Status {
        FEDML_RETURN_IF_ERROR(ReadNested(r, "request", DecodeSecAggUnmaskRequest, &m->request));
        FEDML_RETURN_IF_ERROR(ReadIds(r, &m->survivors, "survivors"));
        FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, r.Count("signatures", 4 + 4));
        m->signatures.resize(n);
        for (auto& s : m->signatures) {
          s.round_id = m->request.round_id;
          FEDML_ASSIGN_OR_RETURN(s.id, ReadId(r, "signature id"));
          FEDML_RETURN_IF_ERROR(r.Blob(&s.signature, "signature", sec::kMaxSignatureBytes));
        }
        return Status::Ok();
      });
}

// ---- Client ----

namespace {
enum class ClientStage { kAdvertise, kShare, kMask, kUnmask, kDone };
}  // namespace

struct SecAggClient::Impl {
  int id;
  SecAggParams params;
  std::uint64_t round_id;
  Status invalid;  // non-OK when params or id are unusable
  ClientStage stage = ClientStage::kAdvertise;
  Bytes salt;
  std::vector<int> neighbours;        // N(u), sorted
  std::vector<int> ring;              // SecAgg+: the graph's ring order (position -> client)
  std::vector<std::size_t> ring_pos;  // SecAgg+: client -> position
  sec::X25519KeyPair c_keys, s_keys;
  std::map<int, SecAggKeys> peer_keys;  // N(u) n U1
  std::vector<int> u1, u2;
  Bytes b_seed;
  // Shares held for each owner of the neighbourhood (this client included): of s and of b.
  std::map<int, std::pair<sec::ShamirShare, sec::ShamirShare>> held;

  ~Impl() { WipeSecrets(); }

  void WipeSecrets() {
    Wipe(c_keys.private_key);
    Wipe(s_keys.private_key);
    Wipe(b_seed);
    for (auto& [owner, pair] : held) {
      Wipe(pair.first);
      Wipe(pair.second);
    }
    held.clear();
  }

  Status Expect(ClientStage want, const char* call) const {
    if (!invalid.ok()) return invalid;
    if (stage == want) return Status::Ok();
    static const char* const kNames[] = {"AdvertiseKeys", "ShareKeys", "MaskInput", "Unmask",
                                         "none (the client is done)"};
    return Status::FailedPrecondition(std::string("SecAggClient ") + Str(id) + ": " + call +
                                      " called out of order; the next call must be " +
                                      kNames[static_cast<int>(stage)]);
  }

  Status CheckMessage(std::uint64_t msg_round, int msg_id, const char* what) const {
    if (msg_round != round_id) {
      return Status::InvalidArgument(std::string(what) + " is for round " +
                                     std::to_string(msg_round) + ", this client's round is " +
                                     std::to_string(round_id));
    }
    if (msg_id != id) {
      return Status::InvalidArgument(std::string(what) + " is addressed to client " + Str(msg_id) +
                                     ", this is client " + Str(id));
    }
    return Status::Ok();
  }

  // N(v) for any client v (a peer's, to know the x of this client's share from it).
  std::vector<int> NeighboursOfPeer(int v) const {
    if (params.num_neighbours == 0) return NeighboursAt(params, {}, v, 0);
    return NeighboursAt(params, ring, v, ring_pos[static_cast<std::size_t>(v)]);
  }

  // The x of this client's shares of v's secrets (ShareX without building N(v) for SecAgg).
  std::uint32_t XFrom(int v) const {
    if (params.num_neighbours == 0) return static_cast<std::uint32_t>(id) + 1;
    return ShareX(NeighboursOfPeer(v), v, id);
  }

  // (N(u) + u) n set, sorted.
  std::vector<int> HoodWithin(const std::vector<int>& set) const {
    std::vector<int> out;
    for (int v : set) {
      if (v == id || Contains(neighbours, v)) out.push_back(v);
    }
    return out;
  }
};

SecAggClient::SecAggClient(int id, SecAggParams params, std::uint64_t round_id)
    : impl_(std::make_unique<Impl>()) {
  impl_->id = id;
  impl_->params = params;
  impl_->round_id = round_id;
  impl_->invalid = ValidateSecAggParams(params);
  if (impl_->invalid.ok() && (id < 0 || id >= params.num_clients)) {
    impl_->invalid = Status::InvalidArgument("client id " + Str(id) + " is outside 0.." +
                                             Str(params.num_clients - 1));
  }
  if (impl_->invalid.ok()) {
    impl_->salt = Salt(round_id);
    if (params.num_neighbours != 0) {
      impl_->ring = RingOrder(params);
      impl_->ring_pos.resize(impl_->ring.size());
      for (std::size_t p = 0; p < impl_->ring.size(); ++p) {
        impl_->ring_pos[static_cast<std::size_t>(impl_->ring[p])] = p;
      }
    }
    impl_->neighbours = impl_->NeighboursOfPeer(id);
  }
}

SecAggClient::~SecAggClient() = default;
SecAggClient::SecAggClient(SecAggClient&&) noexcept = default;
SecAggClient& SecAggClient::operator=(SecAggClient&&) noexcept = default;

int SecAggClient::id() const { return impl_->id; }

Result<SecAggKeys> SecAggClient::AdvertiseKeys() {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ClientStage::kAdvertise, "AdvertiseKeys"));
  FEDML_ASSIGN_OR_RETURN(sec::X25519KeyPair c, sec::GenerateX25519());
  Result<sec::X25519KeyPair> s = sec::GenerateX25519();
  if (!s.ok()) {
    Wipe(c.private_key);
    return s.status();
  }
  m.c_keys = std::move(c);
  m.s_keys = std::move(s).value();
  m.stage = ClientStage::kShare;
  SecAggKeys out;
  out.round_id = m.round_id;
  out.id = m.id;
  out.c_public = m.c_keys.public_key;
  out.s_public = m.s_keys.public_key;
  return out;
}

Result<SecAggEncryptedShares> SecAggClient::ShareKeys(const SecAggKeyList& list) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ClientStage::kShare, "ShareKeys"));
  FEDML_RETURN_IF_ERROR(m.CheckMessage(list.round_id, list.id, "SecAggKeyList"));
  const int n = m.params.num_clients;
  const int t = m.params.threshold;
  FEDML_RETURN_IF_ERROR(CheckIdList(list.survivors, n, "SecAggKeyList survivors (U1)"));
  for (int v : list.survivors) {
    if (v != m.id && !Contains(m.neighbours, v)) {
      return Status::InvalidArgument("SecAggKeyList survivors (U1) list client " + Str(v) +
                                     ", not in the neighbourhood of client " + Str(m.id));
    }
  }
  if (!Contains(list.survivors, m.id)) {
    return Status::InvalidArgument("SecAggKeyList survivors (U1) do not list this client (" +
                                   Str(m.id) + ")");
  }
  if (static_cast<int>(list.survivors.size()) < t) {
    return Status::FailedPrecondition("SecAggKeyList lists " + Str(list.survivors.size()) +
                                      " survivors in the neighbourhood, fewer than the "
                                      "threshold " +
                                      Str(t));
  }
  std::map<int, SecAggKeys> peers;
  for (const SecAggKeys& k : list.neighbours) {
    if (!Contains(m.neighbours, k.id)) {
      return Status::InvalidArgument("SecAggKeyList has keys of client " + Str(k.id) +
                                     ", not a neighbour of client " + Str(m.id));
    }
    if (!Contains(list.survivors, k.id)) {
      return Status::InvalidArgument("SecAggKeyList has keys of client " + Str(k.id) +
                                     ", not listed as a survivor");
    }
    if (k.round_id != m.round_id) {
      return Status::InvalidArgument("SecAggKeyList: the keys of client " + Str(k.id) +
                                     " are for round " + std::to_string(k.round_id));
    }
    if (k.c_public.size() != kKeyBytes || k.s_public.size() != kKeyBytes) {
      return Status::InvalidArgument("SecAggKeyList: the keys of client " + Str(k.id) +
                                     " are not 32 bytes each");
    }
    if (!peers.emplace(k.id, k).second) {
      return Status::InvalidArgument("SecAggKeyList has the keys of client " + Str(k.id) +
                                     " twice");
    }
  }
  const std::vector<int>& holders = list.survivors;  // (N(u) + u) n U1, increasing
  for (int v : holders) {
    if (v != m.id && peers.count(v) == 0) {
      return Status::InvalidArgument("SecAggKeyList lists neighbour " + Str(v) +
                                     " as a survivor but has no keys for it");
    }
  }

  FEDML_ASSIGN_OR_RETURN(Bytes b_seed, sec::SecureRandomBytes(kSecretBytes));
  std::vector<sec::ShamirShare> s_shares, b_shares;
  Defer wipe([&] {
    Wipe(b_seed);
    Wipe(s_shares);
    Wipe(b_shares);
  });
  // Shares for the whole neighbourhood, share i at x = i + 1 (ShareX); those of holders that
  // are not in U1 are never sent.
  const int hood_n = NeighbourhoodSize(m.params);
  FEDML_ASSIGN_OR_RETURN(s_shares, sec::ShamirSplit(m.s_keys.private_key, t, hood_n));
  FEDML_ASSIGN_OR_RETURN(b_shares, sec::ShamirSplit(b_seed, t, hood_n));

  FEDML_ASSIGN_OR_RETURN(const sec::X25519PrivateKey c_key,
                         sec::X25519PrivateKey::Load(m.c_keys.private_key));
  SecAggEncryptedShares out;
  out.round_id = m.round_id;
  out.id = m.id;
  FEDML_ASSIGN_OR_RETURN(out.self_mask_commitment, SelfMaskCommitment(b_seed, m.salt));
  out.ciphertexts.reserve(holders.size() - 1);
  const std::size_t own = ShareX(m.neighbours, m.id, m.id) - 1;
  for (int v : holders) {
    if (v == m.id) continue;
    const std::size_t i = ShareX(m.neighbours, m.id, v) - 1;
    Bytes plaintext = EncodeSharePlaintext(m.id, v, s_shares[i], b_shares[i]);
    Result<Bytes> key = DeriveKey(c_key, peers[v].c_public, m.salt, ShareInfo(m.id, v));
    if (!key.ok()) {
      Wipe(plaintext);
      return key.status().WithContext("agreeing the share key with client " + Str(v));
    }
    Result<Bytes> sealed =
        sec::AeadSeal(key.value(), plaintext, ShareAssociatedData(m.round_id, m.id, v));
    Wipe(key.value());
    Wipe(plaintext);
    if (!sealed.ok()) return sealed.status();
    out.ciphertexts.push_back({m.id, v, std::move(sealed).value()});
  }
  // Commit.
  m.peer_keys = std::move(peers);
  m.u1 = list.survivors;
  m.b_seed = std::move(b_seed);
  b_seed.clear();
  auto& mine = m.held[m.id];
  mine.first = std::move(s_shares[own]);
  mine.second = std::move(b_shares[own]);
  m.stage = ClientStage::kMask;
  return out;
}

Result<SecAggMaskedInput> SecAggClient::MaskInput(const SecAggSharesForYou& shares,
                                                  const std::uint32_t* input) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ClientStage::kMask, "MaskInput"));
  FEDML_RETURN_IF_ERROR(m.CheckMessage(shares.round_id, shares.id, "SecAggSharesForYou"));
  const std::size_t len = m.params.vector_length;
  const std::uint64_t modulus = m.params.modulus;
  if (input == nullptr) return Status::InvalidArgument("MaskInput: input is null");
  if (modulus < (std::uint64_t{1} << 32)) {
    for (std::size_t i = 0; i < len; ++i) {
      if (input[i] >= modulus) {
        return Status::InvalidArgument("MaskInput: input[" + Str(i) +
                                       "] = " + std::to_string(input[i]) +
                                       " is not below the modulus " + std::to_string(modulus));
      }
    }
  }
  const int t = m.params.threshold;
  FEDML_RETURN_IF_ERROR(
      CheckIdList(shares.survivors, m.params.num_clients, "SecAggSharesForYou survivors (U2)"));
  for (int v : shares.survivors) {
    if (!Contains(m.u1, v)) {
      return Status::InvalidArgument("SecAggSharesForYou survivors (U2) list client " + Str(v) +
                                     ", which is not in U1");
    }
  }
  if (!Contains(shares.survivors, m.id)) {
    return Status::InvalidArgument("SecAggSharesForYou survivors (U2) do not list this client (" +
                                   Str(m.id) + ")");
  }
  if (static_cast<int>(shares.survivors.size()) < t) {
    return Status::FailedPrecondition("SecAggSharesForYou lists " + Str(shares.survivors.size()) +
                                      " survivors in the neighbourhood, fewer than the "
                                      "threshold " +
                                      Str(t));
  }
  const std::vector<int> hood2 = m.HoodWithin(shares.survivors);  // (N(u) + u) n U2
  std::map<int, const SecAggShareCiphertext*> by_sender;
  for (const auto& c : shares.ciphertexts) {
    if (c.to != m.id) {
      return Status::InvalidArgument("SecAggSharesForYou has a ciphertext for client " + Str(c.to) +
                                     " (from " + Str(c.from) + ")");
    }
    if (c.from == m.id || !Contains(hood2, c.from)) {
      return Status::InvalidArgument("SecAggSharesForYou has a ciphertext from client " +
                                     Str(c.from) + ", not a neighbour in U2");
    }
    if (!by_sender.emplace(c.from, &c).second) {
      return Status::InvalidArgument("SecAggSharesForYou has two ciphertexts from client " +
                                     Str(c.from));
    }
  }
  for (int v : hood2) {
    if (v != m.id && by_sender.count(v) == 0) {
      return Status::InvalidArgument("SecAggSharesForYou lists neighbour " + Str(v) +
                                     " in U2 but has no ciphertext from it");
    }
  }

  // Open every ciphertext before anything is committed.
  std::map<int, std::pair<sec::ShamirShare, sec::ShamirShare>> opened;
  Defer wipe_opened([&] {
    for (auto& [v, pair] : opened) {
      Wipe(pair.first);
      Wipe(pair.second);
    }
  });
  FEDML_ASSIGN_OR_RETURN(const sec::X25519PrivateKey c_key,
                         sec::X25519PrivateKey::Load(m.c_keys.private_key));
  // A ciphertext that does not open to v's shares for this client at this client's point is
  // v's doing (or the server's, which routes it; a semi-honest server does not): v is accused
  // and this client goes on without its shares, so that it is not dropped in v's place.
  std::vector<int> accused;
  for (const auto& [v, c] : by_sender) {
    FEDML_ASSIGN_OR_RETURN(Bytes key,
                           DeriveKey(c_key, m.peer_keys[v].c_public, m.salt, ShareInfo(v, m.id)));
    Result<Bytes> plaintext =
        sec::AeadOpen(key, c->ciphertext, ShareAssociatedData(m.round_id, v, m.id));
    Wipe(key);
    if (!plaintext.ok()) {
      if (plaintext.status().code() != StatusCode::kDataLoss) {
        return plaintext.status().WithContext("opening the shares from client " + Str(v));
      }
      accused.push_back(v);  // failed authentication: altered, or sealed for another pair
      continue;
    }
    std::pair<sec::ShamirShare, sec::ShamirShare> pair;
    Status st = DecodeSharePlaintext(plaintext.value(), v, m.id, &pair.first, &pair.second);
    Wipe(plaintext.value());
    const std::uint32_t x = m.XFrom(v);
    if (!st.ok() || pair.first.x != x || pair.second.x != x) {
      Wipe(pair.first);
      Wipe(pair.second);
      accused.push_back(v);
      continue;
    }
    opened[v] = std::move(pair);
  }

  // y = x + PRG(b_u) + sum_v sign(u, v) PRG(k_uv).
  SecAggMaskedInput out;
  out.round_id = m.round_id;
  out.id = m.id;
  out.accused = std::move(accused);  // increasing: by_sender is ordered
  // All seeds first, then one pass of every mask over the vector (ApplyMasks).
  std::vector<MaskTerm> terms;
  Defer wipe_terms([&] { Wipe(terms); });
  terms.reserve(hood2.size());
  terms.push_back({m.b_seed, true});
  FEDML_ASSIGN_OR_RETURN(const sec::X25519PrivateKey s_key,
                         sec::X25519PrivateKey::Load(m.s_keys.private_key));
  for (int v : hood2) {
    if (v == m.id) continue;
    Result<Bytes> seed = DeriveKey(s_key, m.peer_keys[v].s_public, m.salt, kMaskInfo);
    if (!seed.ok()) return seed.status().WithContext("agreeing the mask with client " + Str(v));
    terms.push_back({std::move(seed).value(), m.id < v});
  }
  out.masked.assign(input, input + len);
  FEDML_RETURN_IF_ERROR(ApplyMasks(terms, out.masked.data(), len, modulus, 1));
  // Commit.
  for (auto& [v, pair] : opened) m.held[v] = std::move(pair);
  opened.clear();
  m.u2 = shares.survivors;
  m.stage = ClientStage::kUnmask;
  return out;
}

Result<SecAggUnmaskReply> SecAggClient::Unmask(const SecAggUnmaskRequest& request) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ClientStage::kUnmask, "Unmask"));
  FEDML_RETURN_IF_ERROR(m.CheckMessage(request.round_id, request.id, "SecAggUnmaskRequest"));
  const int n = m.params.num_clients;
  // The safeguard first, whatever else is wrong with the lists.
  std::vector<char> alive(static_cast<std::size_t>(n), 0);
  for (int v : request.survivors) {
    if (v >= 0 && v < n) alive[static_cast<std::size_t>(v)] = 1;
  }
  for (int v : request.dropped) {
    if (v >= 0 && v < n && alive[static_cast<std::size_t>(v)]) {
      return Status::PermissionDenied(
          "SecAggUnmaskRequest asked for both the self-mask seed and the mask key of client " +
          Str(v) + " (listed as a survivor and as dropped): refusing, both would expose its input");
    }
    if (v == m.id) {
      return Status::PermissionDenied(
          "SecAggUnmaskRequest lists this client (" + Str(m.id) +
          ") as dropped: refusing to reveal its mask key, which would expose its input");
    }
  }
  FEDML_RETURN_IF_ERROR(CheckIdList(request.survivors, n, "SecAggUnmaskRequest survivors (U3)"));
  FEDML_RETURN_IF_ERROR(CheckIdList(request.dropped, n, "SecAggUnmaskRequest dropped"));
  if (!Contains(request.survivors, m.id)) {
    return Status::InvalidArgument("SecAggUnmaskRequest survivors (U3) do not list this client (" +
                                   Str(m.id) + ")");
  }
  if (request.survivors.size() + request.dropped.size() != m.u2.size()) {
    return Status::InvalidArgument(
        "SecAggUnmaskRequest: survivors (" + Str(request.survivors.size()) + ") and dropped (" +
        Str(request.dropped.size()) + ") do not add up to U2 (" + Str(m.u2.size()) + " clients)");
  }
  for (const auto* list : {&request.survivors, &request.dropped}) {
    for (int v : *list) {
      if (!Contains(m.u2, v)) {
        return Status::InvalidArgument("SecAggUnmaskRequest lists client " + Str(v) +
                                       ", which is not in U2");
      }
    }
  }
  if (static_cast<int>(request.survivors.size()) < m.params.threshold) {
    return Status::FailedPrecondition("SecAggUnmaskRequest lists " + Str(request.survivors.size()) +
                                      " survivors in the neighbourhood, fewer than the "
                                      "threshold " +
                                      Str(m.params.threshold));
  }
  SecAggUnmaskReply out;
  out.round_id = m.round_id;
  out.id = m.id;
  out.shares.reserve(m.held.size());
  for (const auto& [owner, pair] : m.held) {  // (N(u) + u) n U2, increasing
    SecAggRevealedShare r;
    r.owner = owner;
    if (alive[static_cast<std::size_t>(owner)]) {
      r.kind = SecAggShareKind::kSelfMaskSeed;
      r.share = pair.second;
    } else {
      r.kind = SecAggShareKind::kMaskKey;
      r.share = pair.first;
    }
    out.shares.push_back(std::move(r));
  }
  m.WipeSecrets();
  m.stage = ClientStage::kDone;
  return out;
}

// ---- Server ----

namespace {
enum class ServerStage { kAdvertise, kSharing, kMasking, kUnmasking, kDone, kFailed };
}  // namespace

struct SecAggServer::Impl {
  SecAggParams params;
  std::uint64_t round_id;
  Status invalid;
  ServerStage stage = ServerStage::kAdvertise;
  Status failure;
  Bytes salt;
  std::vector<std::vector<int>> graph;
  std::vector<SecAggKeys> keys;                           // by id; id -1 while absent
  std::vector<char> in1, in2, in3, in4;                   // membership of U1..U4
  std::vector<int> u1, u2, u3, dropped;                   // increasing
  std::vector<std::vector<SecAggShareCiphertext>> inbox;  // by recipient
  std::vector<std::uint32_t> sum;
  // Masked inputs not yet in sum: folded kMaxModFold at a time (FoldPending), so that sum crosses
  // memory once per kMaxModFold clients, as FedAvg's fold does for plaintext updates.
  std::vector<std::vector<std::uint32_t>> pending;
  std::vector<std::vector<sec::ShamirShare>> revealed;  // by owner
  std::vector<std::vector<int>> revealed_by;            // by owner: the holder of each share
  std::vector<Bytes> commitments;                       // by id: C_u
  std::vector<std::vector<int>> accused;                // by accuser, increasing
  std::map<int, std::string> blamed;
  std::vector<int> survivors;  // U3 once stage 2 is closed
  int threads = 1;             // for Finish's masks

  void Blame(int who, const std::string& why) {
    std::string& entry = blamed[who];
    entry += entry.empty() ? why : "; " + why;
  }

  // Whether holder v accused owner u (and so holds none of its shares).
  bool Accuses(int v, int u) const { return Contains(accused[static_cast<std::size_t>(v)], u); }

  ~Impl() { WipeAll(); }

  void WipeAll() {
    for (auto& v : revealed) Wipe(v);
  }

  std::size_t N() const { return static_cast<std::size_t>(params.num_clients); }

  Status Expect(ServerStage want, const char* call) const {
    if (!invalid.ok()) return invalid;
    if (stage == ServerStage::kFailed) return failure;
    if (stage == want) return Status::Ok();
    static const char* const kNames[] = {"AdvertiseKeys (AddKeys, EndAdvertise)",
                                         "ShareKeys (AddShares, EndSharing)",
                                         "MaskedInput (AddMaskedInput, EndMasking)",
                                         "Unmasking (AddUnmaskReply, Finish)",
                                         "done (the sum was returned)",
                                         "failed"};
    return Status::FailedPrecondition(std::string("SecAggServer: ") + call +
                                      " does not belong to the current stage, " +
                                      kNames[static_cast<int>(stage)]);
  }

  Status CheckRound(std::uint64_t r, const char* what) const {
    if (r == round_id) return Status::Ok();
    return Status::InvalidArgument(std::string(what) + " is for round " + std::to_string(r) +
                                   ", this server's round is " + std::to_string(round_id));
  }

  // An id that must be in the set `member` (the previous stage's survivors) and not yet in
  // `done`.
  Status CheckSender(int id, const std::vector<char>* member, const std::vector<char>& done,
                     const char* what, const char* set_name) const {
    if (id < 0 || id >= params.num_clients) {
      return Status::InvalidArgument(std::string(what) + " from client " + Str(id) +
                                     ", outside 0.." + Str(params.num_clients - 1));
    }
    const std::size_t i = static_cast<std::size_t>(id);
    if (member != nullptr && !(*member)[i]) {
      return Status::InvalidArgument(std::string(what) + " from client " + Str(id) +
                                     ", which is not in " + set_name);
    }
    if (done[i]) {
      return Status(StatusCode::kAlreadyExists,
                    std::string(what) + " from client " + Str(id) + " arrived already");
    }
    return Status::Ok();
  }

  void FoldPending() {
    if (pending.empty()) return;
    const std::uint32_t* xs[sec::kMaxModFold];
    for (std::size_t j = 0; j < pending.size(); ++j) xs[j] = pending[j].data();
    sec::AddModInPlace(sum.data(), xs, pending.size(), sum.size(), params.modulus);
    pending.clear();  // keeps the outer capacity; the vectors go with their messages' memory
  }

  // The terms that take dropped client u's pairwise masks out of the sum, one per neighbour in
  // U3, from u's reconstructed mask key. Reads only (several threads may run it for different
  // u); a failure is DATA_LOSS or INTERNAL naming u, for the caller to abort with.
  // *bad_holder: the holder of a bad share found on the way, or -1.
  Status PairwiseTerms(int u, std::vector<MaskTerm>* out, int* bad_holder) const {
    const Bytes& s_public = keys[static_cast<std::size_t>(u)].s_public;
    auto matches = [&](const Bytes& candidate) {
      if (candidate.size() != kSecretBytes) return false;
      Result<sec::X25519PrivateKey> k = sec::X25519PrivateKey::Load(candidate);
      Result<Bytes> pub = k.ok() ? k->PublicKey() : Result<Bytes>(k.status());
      return pub.ok() && sec::ConstantTimeEqual(pub.value(), s_public);
    };
    Result<Bytes> s = RobustCombine(u, matches, bad_holder);
    if (!s.ok()) {
      return Status::DataLoss("the shares of client " + Str(u) +
                              "'s mask key do not reconstruct it (no set of them tried gives the "
                              "key of its public key)");
    }
    Bytes key = std::move(s).value();
    Defer wipe_key([&] { Wipe(key); });
    // Loaded again (matches checked it): every pairwise mask with it.
    Result<sec::X25519PrivateKey> loaded = sec::X25519PrivateKey::Load(key);
    if (!loaded.ok()) return loaded.status().WithContext("the mask key of client " + Str(u));
    for (int v : graph[static_cast<std::size_t>(u)]) {
      if (!in3[static_cast<std::size_t>(v)]) continue;
      Result<Bytes> seed =
          DeriveKey(loaded.value(), keys[static_cast<std::size_t>(v)].s_public, salt, kMaskInfo);
      if (!seed.ok()) return seed.status().WithContext("mask of " + Str(u) + " and " + Str(v));
      // v added sign(v, u) PRG(k_uv): +1 when v < u. Take it back out.
      out->push_back({std::move(seed).value(), v > u});
    }
    return Status::Ok();
  }

  // Owner u's secret from its revealed shares: the first t when `valid` takes the result (the
  // honest case: one interpolation and one check), else the first t + 1 leaving out one in
  // turn, which finds one bad share among them (*bad_holder = its holder). A bad share beyond
  // the first t + 1 is never used. DATA_LOSS when nothing tried passes.
  Result<Bytes> RobustCombine(int u, const std::function<bool(const Bytes&)>& valid,
                              int* bad_holder) const {
    *bad_holder = -1;
    const auto& shares = revealed[static_cast<std::size_t>(u)];
    const std::size_t t = static_cast<std::size_t>(params.threshold);
    Result<Bytes> first = sec::ShamirCombine(shares, params.threshold);
    if (first.ok() && valid(first.value())) return first;
    if (first.ok()) Wipe(first.value());
    if (shares.size() > t) {
      std::vector<sec::ShamirShare> subset;
      Defer wipe_subset([&] { Wipe(subset); });
      for (std::size_t skip = 0; skip <= t; ++skip) {
        Wipe(subset);
        for (std::size_t i = 0; i <= t; ++i) {
          if (i != skip) subset.push_back(shares[i]);
        }
        Result<Bytes> r = sec::ShamirCombine(subset, params.threshold);
        if (r.ok() && valid(r.value())) {
          *bad_holder = revealed_by[static_cast<std::size_t>(u)][skip];
          return r;
        }
        if (r.ok()) Wipe(r.value());
      }
    }
    return Status::DataLoss("no reconstruction passes its check");
  }

  Status Abort(Status s) {
    stage = ServerStage::kFailed;
    failure = std::move(s);
    inbox.clear();
    pending.clear();
    Wipe(sum);
    WipeAll();
    return failure;
  }

  // Holders of owner u's shares with flag set: u and its neighbours that did not accuse it.
  std::size_t HolderCount(int u, const std::vector<char>& flag) const {
    std::size_t c = flag[static_cast<std::size_t>(u)] ? 1 : 0;
    for (int v : graph[static_cast<std::size_t>(u)]) {
      c += flag[static_cast<std::size_t>(v)] && !Accuses(v, u) ? 1 : 0;
    }
    return c;
  }

  // Aborts at `stage_no` unless `set` (marked by `flag`) holds >= t clients, globally and in the
  // neighbourhood of every client of `owners`.
  Status CheckSurvivors(int stage_no, const std::vector<int>& set, const std::vector<char>& flag,
                        const std::vector<int>& owners) {
    const int t = params.threshold;
    if (static_cast<int>(set.size()) < t) {
      return Abort(AbortStatus(stage_no, set.size(), params.num_clients, t));
    }
    for (int u : owners) {
      const std::size_t c = HolderCount(u, flag);
      if (static_cast<int>(c) < t) {
        return Abort(NeighbourhoodAbortStatus(stage_no, c, NeighbourhoodSize(params), u, t));
      }
    }
    return Status::Ok();
  }

  // (N(u) + u) n {flag set}, increasing.
  std::vector<int> HoodMembers(int u, const std::vector<char>& flag) const {
    std::vector<int> out;
    const std::vector<int>& nu = graph[static_cast<std::size_t>(u)];
    out.reserve(nu.size() + 1);
    bool placed = false;
    for (int v : nu) {
      if (!placed && v > u) {
        out.push_back(u);
        placed = true;
      }
      if (flag[static_cast<std::size_t>(v)]) out.push_back(v);
    }
    if (!placed) out.push_back(u);
    if (!flag[static_cast<std::size_t>(u)]) out.erase(std::find(out.begin(), out.end(), u));
    return out;
  }

  static std::vector<int> Members(const std::vector<char>& flag) {
    std::vector<int> out;
    for (std::size_t i = 0; i < flag.size(); ++i) {
      if (flag[i]) out.push_back(static_cast<int>(i));
    }
    return out;
  }
};

SecAggServer::SecAggServer(SecAggParams params, std::uint64_t round_id, int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.params = params;
  m.round_id = round_id;
  m.invalid = ValidateSecAggParams(params);
  if (!m.invalid.ok()) return;
  m.salt = Salt(round_id);
  m.threads = MaskThreads(threads);
  m.graph = SecAggNeighbours(params);
  const std::size_t n = m.N();
  m.keys.resize(n);
  m.in1.assign(n, 0);
  m.in2.assign(n, 0);
  m.in3.assign(n, 0);
  m.in4.assign(n, 0);
  m.commitments.resize(n);
  m.accused.assign(n, {});
}

SecAggServer::~SecAggServer() = default;
SecAggServer::SecAggServer(SecAggServer&&) noexcept = default;
SecAggServer& SecAggServer::operator=(SecAggServer&&) noexcept = default;

const std::vector<int>& SecAggServer::survivors() const { return impl_->survivors; }

const std::map<int, std::string>& SecAggServer::blamed() const { return impl_->blamed; }

Status SecAggServer::AddKeys(const SecAggKeys& k) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kAdvertise, "AddKeys"));
  FEDML_RETURN_IF_ERROR(m.CheckRound(k.round_id, "SecAggKeys"));
  FEDML_RETURN_IF_ERROR(m.CheckSender(k.id, nullptr, m.in1, "SecAggKeys", ""));
  if (k.c_public.size() != kKeyBytes || k.s_public.size() != kKeyBytes) {
    return Status::InvalidArgument("SecAggKeys from client " + Str(k.id) + ": c_public is " +
                                   Str(k.c_public.size()) + " bytes and s_public " +
                                   Str(k.s_public.size()) + "; X25519 keys are 32");
  }
  m.keys[static_cast<std::size_t>(k.id)] = k;
  m.in1[static_cast<std::size_t>(k.id)] = 1;
  return Status::Ok();
}

Result<std::map<int, SecAggKeyList>> SecAggServer::EndAdvertise() {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kAdvertise, "EndAdvertise"));
  m.u1 = Impl::Members(m.in1);
  FEDML_RETURN_IF_ERROR(m.CheckSurvivors(0, m.u1, m.in1, m.u1));
  std::map<int, SecAggKeyList> out;
  for (int u : m.u1) {
    SecAggKeyList& l = out[u];
    l.round_id = m.round_id;
    l.id = u;
    l.survivors = m.HoodMembers(u, m.in1);
    for (int v : m.graph[static_cast<std::size_t>(u)]) {
      if (m.in1[static_cast<std::size_t>(v)])
        l.neighbours.push_back(m.keys[static_cast<std::size_t>(v)]);
    }
  }
  m.inbox.assign(m.N(), {});
  m.stage = ServerStage::kSharing;
  return out;
}

Status SecAggServer::AddShares(const SecAggEncryptedShares& s) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kSharing, "AddShares"));
  FEDML_RETURN_IF_ERROR(m.CheckRound(s.round_id, "SecAggEncryptedShares"));
  FEDML_RETURN_IF_ERROR(m.CheckSender(s.id, &m.in1, m.in2, "SecAggEncryptedShares", "U1"));
  const std::vector<int>& hood = m.graph[static_cast<std::size_t>(s.id)];
  std::vector<int> seen;  // recipients so far
  seen.reserve(s.ciphertexts.size());
  std::size_t expected = 0;
  for (int v : hood) expected += m.in1[static_cast<std::size_t>(v)] ? 1 : 0;
  const std::string who = "SecAggEncryptedShares from client " + Str(s.id);
  for (const auto& c : s.ciphertexts) {
    if (c.from != s.id) {
      return Status::InvalidArgument(who + " has a ciphertext marked from client " + Str(c.from));
    }
    if (c.to < 0 || c.to >= m.params.num_clients || !Contains(hood, c.to) ||
        !m.in1[static_cast<std::size_t>(c.to)]) {
      return Status::InvalidArgument(who + " has a ciphertext for client " + Str(c.to) +
                                     ", not a neighbour in U1");
    }
    seen.push_back(c.to);
    if (c.ciphertext.size() != kSecAggShareCiphertextBytes) {
      return Status::InvalidArgument(who + ": the ciphertext for client " + Str(c.to) + " is " +
                                     Str(c.ciphertext.size()) + " bytes, expected " +
                                     Str(kSecAggShareCiphertextBytes));
    }
  }
  std::sort(seen.begin(), seen.end());
  const auto twice = std::adjacent_find(seen.begin(), seen.end());
  if (twice != seen.end()) {
    return Status::InvalidArgument(who + " has two ciphertexts for client " + Str(*twice));
  }
  if (s.ciphertexts.size() != expected) {
    return Status::InvalidArgument(who + " has " + Str(s.ciphertexts.size()) +
                                   " ciphertexts; its neighbours in U1 are " + Str(expected));
  }
  if (s.self_mask_commitment.size() != kCommitmentBytes) {
    return Status::InvalidArgument(who + ": the self-mask commitment is " +
                                   Str(s.self_mask_commitment.size()) + " bytes, expected 32");
  }
  m.commitments[static_cast<std::size_t>(s.id)] = s.self_mask_commitment;
  for (const auto& c : s.ciphertexts) m.inbox[static_cast<std::size_t>(c.to)].push_back(c);
  m.in2[static_cast<std::size_t>(s.id)] = 1;
  return Status::Ok();
}

Result<std::map<int, SecAggSharesForYou>> SecAggServer::EndSharing() {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kSharing, "EndSharing"));
  m.u2 = Impl::Members(m.in2);
  FEDML_RETURN_IF_ERROR(m.CheckSurvivors(1, m.u2, m.in2, m.u2));
  std::map<int, SecAggSharesForYou> out;
  for (int u : m.u2) {
    SecAggSharesForYou& f = out[u];
    f.round_id = m.round_id;
    f.id = u;
    f.survivors = m.HoodMembers(u, m.in2);
    f.ciphertexts = std::move(m.inbox[static_cast<std::size_t>(u)]);
  }
  m.inbox.clear();
  m.inbox.shrink_to_fit();
  m.sum.assign(m.params.vector_length, 0);
  m.stage = ServerStage::kMasking;
  return out;
}

Status SecAggServer::AddMaskedInput(SecAggMaskedInput in) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kMasking, "AddMaskedInput"));
  FEDML_RETURN_IF_ERROR(m.CheckRound(in.round_id, "SecAggMaskedInput"));
  FEDML_RETURN_IF_ERROR(m.CheckSender(in.id, &m.in2, m.in3, "SecAggMaskedInput", "U2"));
  const std::size_t len = m.params.vector_length;
  if (in.masked.size() != len) {
    return Status::InvalidArgument("SecAggMaskedInput from client " + Str(in.id) + " has " +
                                   Str(in.masked.size()) + " words, expected vector_length " +
                                   Str(len));
  }
  const std::uint64_t modulus = m.params.modulus;
  if (modulus < (std::uint64_t{1} << 32)) {
    for (std::size_t i = 0; i < len; ++i) {
      if (in.masked[i] >= modulus) {
        return Status::InvalidArgument("SecAggMaskedInput from client " + Str(in.id) + ": word " +
                                       Str(i) + " is not below the modulus " +
                                       std::to_string(modulus));
      }
    }
  }
  FEDML_RETURN_IF_ERROR(CheckIdList(in.accused, m.params.num_clients,
                                    "SecAggMaskedInput from client " + Str(in.id) + ": accused"));
  for (int v : in.accused) {
    if (!Contains(m.graph[static_cast<std::size_t>(in.id)], v) ||
        !m.in2[static_cast<std::size_t>(v)]) {
      return Status::InvalidArgument("SecAggMaskedInput from client " + Str(in.id) +
                                     " accuses client " + Str(v) + ", not a neighbour in U2");
    }
  }
  for (int v : in.accused) {
    m.Blame(v, "its shares for client " + Str(in.id) +
                   " did not open to shares at that client's point (accused by client " +
                   Str(in.id) + ")");
  }
  m.accused[static_cast<std::size_t>(in.id)] = std::move(in.accused);
  // One thread: splitting a 4 MB add between two threads made a 1000-client round's adds twice
  // as slow on a busy 2-core machine (a thread start per message, and a wait for a core).
  // Folding kMaxModFold inputs per pass instead took a fifth off the adds there.
  m.in3[static_cast<std::size_t>(in.id)] = 1;
  m.pending.push_back(std::move(in.masked));
  if (m.pending.size() == sec::kMaxModFold) m.FoldPending();
  return Status::Ok();
}

Result<std::map<int, SecAggUnmaskRequest>> SecAggServer::EndMasking() {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kMasking, "EndMasking"));
  m.FoldPending();
  m.u3 = Impl::Members(m.in3);
  // Every owner in U2 needs threshold holders among U3 (U4 can only be smaller).
  FEDML_RETURN_IF_ERROR(m.CheckSurvivors(2, m.u3, m.in3, m.u2));
  m.dropped.clear();
  for (int u : m.u2) {
    if (!m.in3[static_cast<std::size_t>(u)]) m.dropped.push_back(u);
  }
  m.survivors = m.u3;
  m.revealed.assign(m.N(), {});
  m.revealed_by.assign(m.N(), {});
  std::map<int, SecAggUnmaskRequest> out;
  for (int u : m.u3) {
    SecAggUnmaskRequest& r = out[u];
    r.round_id = m.round_id;
    r.id = u;
    for (int v : m.HoodMembers(u, m.in2)) {
      (m.in3[static_cast<std::size_t>(v)] ? r.survivors : r.dropped).push_back(v);
    }
  }
  m.stage = ServerStage::kUnmasking;
  return out;
}

Status SecAggServer::AddUnmaskReply(const SecAggUnmaskReply& reply) {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kUnmasking, "AddUnmaskReply"));
  FEDML_RETURN_IF_ERROR(m.CheckRound(reply.round_id, "SecAggUnmaskReply"));
  FEDML_RETURN_IF_ERROR(m.CheckSender(reply.id, &m.in3, m.in4, "SecAggUnmaskReply", "U3"));
  const std::string who = "SecAggUnmaskReply from client " + Str(reply.id);
  // Expected owners: (N(id) + id) n U2 less those it accused, increasing.
  std::vector<int> owners;
  for (int v : m.graph[static_cast<std::size_t>(reply.id)]) {
    if (m.in2[static_cast<std::size_t>(v)] && !m.Accuses(reply.id, v)) owners.push_back(v);
  }
  owners.insert(std::lower_bound(owners.begin(), owners.end(), reply.id), reply.id);
  if (reply.shares.size() != owners.size()) {
    return Status::InvalidArgument(who + " has " + Str(reply.shares.size()) +
                                   " shares; its neighbourhood within U2 (less the clients it "
                                   "accused) has " +
                                   Str(owners.size()) + " clients");
  }
  for (std::size_t i = 0; i < owners.size(); ++i) {
    const SecAggRevealedShare& s = reply.shares[i];
    if (s.owner != owners[i]) {
      return Status::InvalidArgument(who + ": share " + Str(i) + " is of client " + Str(s.owner) +
                                     ", expected client " + Str(owners[i]) +
                                     " (one per neighbour in U2, increasing)");
    }
    const bool alive = m.in3[static_cast<std::size_t>(s.owner)] != 0;
    const SecAggShareKind want = alive ? SecAggShareKind::kSelfMaskSeed : SecAggShareKind::kMaskKey;
    if (s.kind != want) {
      return Status::InvalidArgument(
          who + ": the share of client " + Str(s.owner) + " is of the " +
          (s.kind == SecAggShareKind::kMaskKey ? "mask key" : "self-mask seed") + ", but client " +
          Str(s.owner) +
          (alive ? " survived (the self-mask seed is due)" : " dropped (the mask key is due)"));
    }
    FEDML_RETURN_IF_ERROR(CheckSecretShare(s.share, who + ": the share of client " + Str(s.owner)));
    const std::uint32_t x = ShareX(m.graph[static_cast<std::size_t>(s.owner)], s.owner, reply.id);
    if (s.share.x != x) {
      return Status::InvalidArgument(
          who + ": the share of client " + Str(s.owner) + " has x = " + std::to_string(s.share.x) +
          "; client " + Str(reply.id) + "'s shares of it are at x = " + std::to_string(x));
    }
  }
  for (const auto& s : reply.shares) {
    m.revealed[static_cast<std::size_t>(s.owner)].push_back(s.share);
    m.revealed_by[static_cast<std::size_t>(s.owner)].push_back(reply.id);
  }
  m.in4[static_cast<std::size_t>(reply.id)] = 1;
  return Status::Ok();
}

Result<std::vector<std::uint32_t>> SecAggServer::Finish() {
  Impl& m = *impl_;
  FEDML_RETURN_IF_ERROR(m.Expect(ServerStage::kUnmasking, "Finish"));
  const std::vector<int> u4 = Impl::Members(m.in4);
  FEDML_RETURN_IF_ERROR(m.CheckSurvivors(3, u4, m.in4, m.u2));
  const std::uint64_t modulus = m.params.modulus;
  // Every seed first (reconstruction errors abort before the sum is touched; the abort would
  // wipe it anyway), then one pass of all masks over the sum (ApplyMasks).
  std::vector<MaskTerm> terms;
  Defer wipe_terms([&] { Wipe(terms); });

  auto blame_share = [&](int holder, int owner, const char* what) {
    m.Blame(holder, "its share of client " + Str(owner) + "'s " + what +
                        " broke the reconstruction (left out, the others reconstruct it)");
  };
  // Self masks of the survivors, each checked against its commitment.
  for (int u : m.u3) {
    const Bytes& commitment = m.commitments[static_cast<std::size_t>(u)];
    auto matches = [&](const Bytes& candidate) {
      if (candidate.size() != kSecretBytes) return false;
      Result<Bytes> c = SelfMaskCommitment(candidate, m.salt);
      return c.ok() && sec::ConstantTimeEqual(c.value(), commitment);
    };
    int bad = -1;
    Result<Bytes> b = m.RobustCombine(u, matches, &bad);
    if (!b.ok()) {
      return m.Abort(Status::DataLoss("the shares of client " + Str(u) +
                                      "'s self-mask seed do not reconstruct it (no set of them "
                                      "tried matches its commitment)"));
    }
    if (bad >= 0) blame_share(bad, u, "self-mask seed");
    terms.push_back({std::move(b).value(), false});
  }
  // Pairwise masks between each dropped client and its neighbours in U3: an X25519 agreement per
  // pair (~1800 of ~80 us at n = 1000, k = 20, 10% dropout), so the dropped clients are split
  // between Finish's threads, each collecting its own terms; their order does not matter to the
  // sum. Errors come back in the order of m.dropped, whatever the split.
  std::vector<std::vector<MaskTerm>> pairwise(m.dropped.size());
  std::vector<int> bad_holders(m.dropped.size(), -1);
  Defer wipe_pairwise([&] {
    for (auto& p : pairwise) Wipe(p);
  });
  Status derived = core::ParallelRanges(
      m.dropped.size(), m.threads, kDroppedPerThread, 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
          FEDML_RETURN_IF_ERROR(m.PairwiseTerms(m.dropped[i], &pairwise[i], &bad_holders[i]));
        }
        return Status::Ok();
      });
  if (!derived.ok()) return m.Abort(derived);
  for (std::size_t i = 0; i < m.dropped.size(); ++i) {
    if (bad_holders[i] >= 0) blame_share(bad_holders[i], m.dropped[i], "mask key");
  }
  for (auto& p : pairwise) {
    for (auto& term : p) terms.push_back(std::move(term));
    p.clear();
  }
  Status st = ApplyMasks(terms, m.sum.data(), m.sum.size(), modulus, m.threads);
  if (!st.ok()) return m.Abort(st);
  m.WipeAll();
  m.stage = ServerStage::kDone;
  return std::move(m.sum);
}

}  // namespace fedml::algorithms
