// Shamir t-of-n secret sharing (Shamir 1979) of byte strings, as SecAgg and SecAgg+ use it to
// share each client's mask seed and key-agreement private key among its neighbours.
//
// Arithmetic is over the prime field GF(p), p = 2^61 - 1 (a Mersenne prime: reduction is shifts
// and adds, products go through unsigned __int128). A secret of L bytes is cut into ceil(L/4)
// chunks, each a 32-bit little-endian word (the last one zero-padded), and every chunk is shared
// with its own random polynomial of degree t-1 whose constant term is the chunk; all chunks of a
// share are evaluated at the same point x = the share's index (1..n; x = 0 is the secret).
//
// Security: any t shares reveal the secret, and any t-1 shares reveal nothing about it
// (information-theoretically, against an unbounded adversary): for every candidate secret there
// is exactly one polynomial through the t-1 known points, so the t-1 values are uniform and
// independent of the secret. That argument needs the t-1 non-constant coefficients of every
// chunk's polynomial to be uniform over GF(p), which they are: 61-bit values from RAND_bytes with
// the single value p rejected. (A chunk being only 32 bits wide does not weaken this: the
// constant term may be any field element, and the shares are uniform whatever it is.)
//
// Shamir sharing is not authenticated: a participant can send a tampered share. ShamirCombine
// reports a reconstruction that is not a valid secret (a chunk >= 2^32, or non-zero padding),
// which catches random corruption with overwhelming probability but not a deliberate,
// well-crafted change; with more than t shares, combining two different t-subsets and comparing
// exposes any tampering with one share. Carry shares inside authenticated encryption (AeadSeal)
// as SecAgg does.
//
// All functions are stateless and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "fedml/core/security/crypto.h"
#include "fedml/core/status.h"

namespace fedml::core::security {

/// The field modulus 2^61 - 1.
inline constexpr std::uint64_t kShamirPrime = (std::uint64_t{1} << 61) - 1;
/// Largest number of shares of one secret (share indices 1..65535).
inline constexpr int kShamirMaxShares = 65535;
/// Largest secret ShamirSplit accepts (and DecodeShare describes), in bytes: 16 MiB. SecAgg's
/// secrets are 32-byte seeds and keys.
inline constexpr std::uint32_t kShamirMaxSecretBytes = std::uint32_t{1} << 24;

/// One share: the evaluation point x (1..n), one field element y[j] < kShamirPrime per 32-bit
/// chunk of the secret (ceil(secret_bytes / 4) of them), and the secret's length in bytes.
struct ShamirShare {
  std::uint32_t x = 0;
  std::vector<std::uint64_t> y;
  std::uint32_t secret_bytes = 0;
};

/// Splits `secret` into num_shares shares, any `threshold` of which reconstruct it; share i
/// (0-based) has x = i + 1. Polynomial coefficients come from SecureRandomBytes (uniform, see the
/// file comment) and are wiped before returning. threshold == 1 gives num_shares copies of the
/// secret's chunks (no secrecy), which is allowed for completeness.
/// Errors: INVALID_ARGUMENT when the secret is empty or longer than kShamirMaxSecretBytes, when
/// threshold < 1, threshold > num_shares, or num_shares > kShamirMaxShares (65535); INTERNAL
/// when OpenSSL's generator fails.
Result<std::vector<ShamirShare>> ShamirSplit(const Bytes& secret, int threshold, int num_shares);

/// Reconstructs the secret from `shares` by Lagrange interpolation at x = 0 (inverses by Fermat's
/// little theorem), using the first `threshold` shares of the list; any further shares are only
/// validated. Every share is checked first.
/// Errors, each naming the share (its position and x) where one is at fault:
///   INVALID_ARGUMENT  threshold < 1; fewer than threshold shares ("fewer than threshold shares:
///                     got N, need T"); a share with x == 0; two shares with the same x
///                     ("duplicate x"); shares whose secret lengths or chunk counts differ, or
///                     whose chunk count does not match ceil(secret_bytes / 4); secret_bytes 0 or
///                     above kShamirMaxSecretBytes; a y value >= kShamirPrime.
///   DATA_LOSS         "shares do not reconstruct a secret (inconsistent or tampered)": a
///                     reconstructed chunk >= 2^32 or non-zero padding bytes, i.e. shares from
///                     different secrets or splits, a changed share, or a threshold other than
///                     the one the secret was split with (too low).
/// A threshold higher than the split's still reconstructs the secret (the polynomial is the same).
Result<Bytes> ShamirCombine(const std::vector<ShamirShare>& shares, int threshold);

/// Current version of the EncodeShare format.
inline constexpr std::uint8_t kShamirShareFormatVersion = 1;

/// A compact binary form of a share, for sending it inside an AES-GCM ciphertext. All integers
/// little-endian:
///   "FSS" (3 bytes) | u8 version (1) | u32 x | u32 secret_bytes | u32 chunk count k | k x u64 y
/// 16 + 8k bytes. The share is written as it is; DecodeShare refuses one that is inconsistent.
Bytes EncodeShare(const ShamirShare& share);

/// Parses EncodeShare's form. INVALID_ARGUMENT naming what is wrong for anything but a valid
/// share: fewer than 16 bytes, a wrong magic, an unknown version, x == 0, secret_bytes 0 or above
/// kShamirMaxSecretBytes, a chunk count other than ceil(secret_bytes / 4), a length other than
/// 16 + 8k (truncated or trailing bytes), or a y value >= kShamirPrime.
Result<ShamirShare> DecodeShare(const Bytes& encoded);

}  // namespace fedml::core::security
