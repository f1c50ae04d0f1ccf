#include "fedml/core/security/shamir.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "fedml/core/bytes.h"

namespace fedml::core::security {
namespace {

constexpr std::uint64_t kP = kShamirPrime;
constexpr std::size_t kHeaderBytes = 16;
constexpr std::string_view kMagic = "FSS";

// a < p, b < p. Branch-free: the secret's chunks and coefficients go through these.
inline std::uint64_t AddMod(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = a + b;  // < 2p < 2^62
  r -= kP & (0 - static_cast<std::uint64_t>(r >= kP));
  return r;
}

inline std::uint64_t SubMod(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = a - b;  // wraps when a < b
  r += kP & (0 - static_cast<std::uint64_t>(a < b));
  return r;
}

inline std::uint64_t MulMod(std::uint64_t a, std::uint64_t b) {
  const unsigned __int128 prod = static_cast<unsigned __int128>(a) * b;  // < 2^122
  // 2^61 == 1 (mod p): fold the high bits onto the low 61.
  std::uint64_t r =
      (static_cast<std::uint64_t>(prod) & kP) + static_cast<std::uint64_t>(prod >> 61);
  r -= kP & (0 - static_cast<std::uint64_t>(r >= kP));  // r <= 2p - 1 before
  return r;
}

// a^(p-2) = a^-1 for a != 0 (Fermat's little theorem).
std::uint64_t InvMod(std::uint64_t a) {
  std::uint64_t result = 1;
  std::uint64_t base = a;
  for (std::uint64_t e = kP - 2; e > 0; e >>= 1) {
    if (e & 1) result = MulMod(result, base);
    base = MulMod(base, base);
  }
  return result;
}

std::size_t ChunkCount(std::uint32_t secret_bytes) {
  return (static_cast<std::size_t>(secret_bytes) + 3) / 4;
}

// Field elements uniform over [0, p): 64 random bits cut to 61, the single value p rejected.
Status UniformFieldElements(std::vector<std::uint64_t>* out) {
  const std::size_t n = out->size();
  if (n == 0) return Status::Ok();
  FEDML_ASSIGN_OR_RETURN(Bytes bytes, SecureRandomBytes(n * 8));
  std::size_t pos = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (;;) {
      if (pos == bytes.size()) {  // only after a rejection (probability 2^-61 each)
        OPENSSL_cleanse(bytes.data(), bytes.size());
        FEDML_ASSIGN_OR_RETURN(bytes, SecureRandomBytes(8));
        pos = 0;
      }
      std::uint64_t v = 0;
      std::memcpy(&v, bytes.data() + pos, 8);
      pos += 8;
      v &= kP;  // 61 bits: [0, p]
      if (v != kP) {
        (*out)[i] = v;
        break;
      }
    }
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return Status::Ok();
}

// Wipes a vector of secret field elements when it goes out of scope.
class CleanseOnExit {
 public:
  explicit CleanseOnExit(std::vector<std::uint64_t>& v) : v_(v) {}
  ~CleanseOnExit() { OPENSSL_cleanse(v_.data(), v_.size() * sizeof(std::uint64_t)); }
  CleanseOnExit(const CleanseOnExit&) = delete;
  CleanseOnExit& operator=(const CleanseOnExit&) = delete;

 private:
  std::vector<std::uint64_t>& v_;
};

std::string ShareName(std::size_t index, std::uint32_t x) {
  return "share " + std::to_string(index) + " (x = " + std::to_string(x) + ")";
}

}  // namespace

Result<std::vector<ShamirShare>> ShamirSplit(const Bytes& secret, int threshold, int num_shares) {
  if (secret.empty()) {
    return Status::InvalidArgument("the secret to share is empty; give at least one byte");
  }
  if (secret.size() > kShamirMaxSecretBytes) {
    return Status::InvalidArgument("the secret to share is " + std::to_string(secret.size()) +
                                   " bytes; at most " + std::to_string(kShamirMaxSecretBytes) +
                                   " are allowed");
  }
  if (num_shares < 1 || num_shares > kShamirMaxShares) {
    return Status::InvalidArgument("num_shares is " + std::to_string(num_shares) +
                                   "; allowed: 1.." + std::to_string(kShamirMaxShares));
  }
  if (threshold < 1 || threshold > num_shares) {
    return Status::InvalidArgument("threshold is " + std::to_string(threshold) +
                                   "; allowed: 1..num_shares (" + std::to_string(num_shares) + ")");
  }
  const auto secret_bytes = static_cast<std::uint32_t>(secret.size());
  const std::size_t chunks = ChunkCount(secret_bytes);
  const auto t = static_cast<std::size_t>(threshold);

  // coeffs[j * t + 0] is chunk j, coeffs[j * t + k] (k >= 1) its random coefficient of x^k.
  std::vector<std::uint64_t> random((t - 1) * chunks);
  CleanseOnExit wipe_random(random);
  FEDML_RETURN_IF_ERROR(UniformFieldElements(&random));
  std::vector<std::uint64_t> coeffs(t * chunks);
  CleanseOnExit wipe_coeffs(coeffs);
  for (std::size_t j = 0; j < chunks; ++j) {
    std::uint32_t chunk = 0;
    for (std::size_t b = 0; b < 4 && 4 * j + b < secret.size(); ++b) {
      chunk |= static_cast<std::uint32_t>(secret[4 * j + b]) << (8 * b);
    }
    coeffs[j * t] = chunk;
    for (std::size_t k = 1; k < t; ++k) coeffs[j * t + k] = random[j * (t - 1) + (k - 1)];
  }

  std::vector<ShamirShare> shares(static_cast<std::size_t>(num_shares));
  for (std::size_t i = 0; i < shares.size(); ++i) {
    ShamirShare& share = shares[i];
    share.x = static_cast<std::uint32_t>(i + 1);
    share.secret_bytes = secret_bytes;
    share.y.resize(chunks);
    const std::uint64_t x = share.x;
    for (std::size_t j = 0; j < chunks; ++j) {
      const std::uint64_t* c = &coeffs[j * t];
      std::uint64_t acc = c[t - 1];  // Horner
      for (std::size_t k = t - 1; k > 0; --k) acc = AddMod(MulMod(acc, x), c[k - 1]);
      share.y[j] = acc;
    }
  }
  return shares;
}

Result<Bytes> ShamirCombine(const std::vector<ShamirShare>& shares, int threshold) {
  if (threshold < 1) {
    return Status::InvalidArgument("threshold is " + std::to_string(threshold) +
                                   "; it must be at least 1");
  }
  const auto t = static_cast<std::size_t>(threshold);
  if (shares.size() < t) {
    return Status::InvalidArgument("fewer than threshold shares: got " +
                                   std::to_string(shares.size()) + ", need " +
                                   std::to_string(threshold));
  }
  const std::uint32_t secret_bytes = shares[0].secret_bytes;
  if (secret_bytes == 0 || secret_bytes > kShamirMaxSecretBytes) {
    return Status::InvalidArgument(ShareName(0, shares[0].x) + " claims a secret of " +
                                   std::to_string(secret_bytes) + " bytes; allowed: 1.." +
                                   std::to_string(kShamirMaxSecretBytes));
  }
  const std::size_t chunks = ChunkCount(secret_bytes);
  std::vector<std::pair<std::uint32_t, std::size_t>> xs;  // (x, position), to find duplicates
  xs.reserve(shares.size());
  for (std::size_t i = 0; i < shares.size(); ++i) {
    const ShamirShare& s = shares[i];
    if (s.x == 0) {
      return Status::InvalidArgument(ShareName(i, s.x) +
                                     " has x == 0, the point of the secret itself; share "
                                     "indices start at 1");
    }
    if (s.secret_bytes != secret_bytes) {
      return Status::InvalidArgument(ShareName(i, s.x) + " is of a " +
                                     std::to_string(s.secret_bytes) +
                                     "-byte secret, share 0 of a " + std::to_string(secret_bytes) +
                                     "-byte one: the shares are not of the same secret");
    }
    if (s.y.size() != chunks) {
      return Status::InvalidArgument(ShareName(i, s.x) + " has " + std::to_string(s.y.size()) +
                                     " chunks; a " + std::to_string(secret_bytes) +
                                     "-byte secret has " + std::to_string(chunks));
    }
    for (std::size_t j = 0; j < chunks; ++j) {
      if (s.y[j] >= kP) {
        return Status::InvalidArgument(ShareName(i, s.x) + ": chunk " + std::to_string(j) +
                                       " is not a field element (>= 2^61 - 1)");
      }
    }
    xs.emplace_back(s.x, i);
  }
  std::sort(xs.begin(), xs.end());
  for (std::size_t i = 1; i < xs.size(); ++i) {
    if (xs[i].first == xs[i - 1].first) {
      return Status::InvalidArgument("duplicate x: shares " + std::to_string(xs[i - 1].second) +
                                     " and " + std::to_string(xs[i].second) +
                                     " both have x = " + std::to_string(xs[i].first) +
                                     "; every share must come from a different participant");
    }
  }

  // Lagrange basis at 0 over the first t shares: l_i = prod_{k != i} x_k / (x_k - x_i).
  std::vector<std::uint64_t> lagrange(t);
  for (std::size_t i = 0; i < t; ++i) {
    std::uint64_t num = 1, den = 1;
    const std::uint64_t xi = shares[i].x;
    for (std::size_t k = 0; k < t; ++k) {
      if (k == i) continue;
      const std::uint64_t xk = shares[k].x;
      num = MulMod(num, xk);
      den = MulMod(den, SubMod(xk, xi));
    }
    lagrange[i] = MulMod(num, InvMod(den));  // den != 0: the x are distinct and < p
  }

  std::vector<std::uint64_t> values(chunks, 0);
  CleanseOnExit wipe_values(values);
  for (std::size_t i = 0; i < t; ++i) {
    const std::uint64_t li = lagrange[i];
    const std::uint64_t* y = shares[i].y.data();
    for (std::size_t j = 0; j < chunks; ++j) values[j] = AddMod(values[j], MulMod(li, y[j]));
  }

  const Status inconsistent = Status::DataLoss(
      "shares do not reconstruct a secret (inconsistent or tampered): shares of different "
      "secrets or splits, a changed share, or a threshold below the one the secret was split "
      "with");
  // Any chunk >= 2^32 (or padding that is not zero) means the interpolated polynomial is not one
  // ShamirSplit made. Accumulated without early exit, so the time does not depend on which chunk.
  std::uint64_t bad = 0;
  for (std::size_t j = 0; j < chunks; ++j) bad |= values[j] >> 32;
  const std::size_t tail = secret_bytes % 4;
  if (tail != 0) bad |= values[chunks - 1] >> (8 * tail);
  if (bad != 0) return inconsistent;

  Bytes secret(secret_bytes);
  for (std::size_t b = 0; b < secret.size(); ++b) {
    secret[b] = static_cast<std::uint8_t>(values[b / 4] >> (8 * (b % 4)));
  }
  return secret;
}

Bytes EncodeShare(const ShamirShare& share) {
  // Exactly sized up front: the share is secret, and a reallocation would leave a copy behind.
  ByteWriter w(kHeaderBytes + 8 * share.y.size());
  w.Raw(kMagic).U8(kShamirShareFormatVersion);
  w.U32(share.x).U32(share.secret_bytes).U32(static_cast<std::uint32_t>(share.y.size()));
  for (std::uint64_t v : share.y) w.U64(v);
  return w.Take();
}

Result<ShamirShare> DecodeShare(const Bytes& encoded) {
  ByteReader r(encoded, "encoded Shamir share");
  FEDML_RETURN_IF_ERROR(r.Magic(kMagic));
  FEDML_RETURN_IF_ERROR(r.Version8(kShamirShareFormatVersion));
  ShamirShare share;
  FEDML_ASSIGN_OR_RETURN(share.x, r.U32("x"));
  FEDML_ASSIGN_OR_RETURN(share.secret_bytes, r.U32("secret_bytes"));
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t chunks, r.U32("the chunk count"));
  if (share.x == 0) {
    return Status::InvalidArgument("encoded Shamir share has x == 0; share indices start at 1");
  }
  if (share.secret_bytes == 0 || share.secret_bytes > kShamirMaxSecretBytes) {
    return Status::InvalidArgument("encoded Shamir share claims a secret of " +
                                   std::to_string(share.secret_bytes) + " bytes; allowed: 1.." +
                                   std::to_string(kShamirMaxSecretBytes));
  }
  if (chunks != ChunkCount(share.secret_bytes)) {
    return Status::InvalidArgument("encoded Shamir share has " + std::to_string(chunks) +
                                   " chunks; a " + std::to_string(share.secret_bytes) +
                                   "-byte secret has " +
                                   std::to_string(ChunkCount(share.secret_bytes)));
  }
  // The whole size, before anything is allocated for the chunks.
  const std::size_t want = kHeaderBytes + 8 * static_cast<std::size_t>(chunks);
  if (encoded.size() != want) {
    return Status::InvalidArgument("encoded Shamir share is " + std::to_string(encoded.size()) +
                                   " bytes; its header describes " + std::to_string(want) +
                                   (encoded.size() < want ? " (truncated)" : " (trailing bytes)"));
  }
  share.y.resize(chunks);
  for (std::size_t j = 0; j < chunks; ++j) {
    FEDML_ASSIGN_OR_RETURN(share.y[j], r.U64("y"));
    if (share.y[j] >= kP) {
      return Status::InvalidArgument("encoded Shamir share: chunk " + std::to_string(j) +
                                     " is not a field element (>= 2^61 - 1)");
    }
  }
  return share;
}

}  // namespace fedml::core::security
