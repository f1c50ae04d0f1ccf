// Cryptographic building blocks for secure aggregation (SecAgg, Bonawitz et al. CCS 2017;
// SecAgg+, Bell et al. CCS 2020): random bytes, X25519 key agreement, HKDF-SHA256,
// AES-256-GCM authenticated encryption, and the AES-256-CTR mask generator (the PRG that expands
// a 32-byte seed into a pairwise or self mask).
//
// Everything is OpenSSL 3's (EVP APIs); nothing here is hand-rolled, and this header does not
// include OpenSSL's. Every free function is stateless and safe to call from any number of threads
// at once (X25519PrivateKey says what its own calls allow). No error message quotes a key, a
// secret or a plaintext.
//
// Secrets returned in a Bytes (private keys, shared secrets, HKDF output, opened plaintexts) are
// the caller's: wipe them with OPENSSL_cleanse (or let them go out of scope if the threat model
// allows) when done. Buffers this module allocates for its own use are wiped before they are
// freed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/status.h"

struct evp_pkey_st;        // OpenSSL's EVP_PKEY, kept out of this header
struct evp_cipher_ctx_st;  // and its EVP_CIPHER_CTX

namespace fedml::core::security {

// `Bytes` is fedml::core::Bytes (std::vector<std::uint8_t>), found from this namespace.

inline constexpr std::size_t kX25519KeyBytes = 32;
inline constexpr std::size_t kAeadKeyBytes = 32;
inline constexpr std::size_t kAeadNonceBytes = 12;
inline constexpr std::size_t kAeadTagBytes = 16;
inline constexpr std::size_t kMaskSeedBytes = 32;
/// The longest HKDF-SHA256 output (RFC 5869: 255 hash lengths).
inline constexpr std::size_t kHkdfSha256MaxLength = 255 * 32;

/// n bytes from OpenSSL's CSPRNG (RAND_bytes); n == 0 gives an empty Bytes. INTERNAL when
/// OpenSSL's generator fails (for instance when it cannot be seeded).
Result<Bytes> SecureRandomBytes(std::size_t n);

/// An X25519 (RFC 7748) key pair in raw form: 32 bytes each.
struct X25519KeyPair {
  Bytes private_key;  // secret: wipe with OPENSSL_cleanse when done
  Bytes public_key;
};

/// A fresh key pair from OpenSSL's CSPRNG. INTERNAL when OpenSSL fails.
Result<X25519KeyPair> GenerateX25519();

/// The key pair of a known 32-byte private key (any 32 bytes: X25519 clamps them), with its
/// public key derived. INVALID_ARGUMENT when private_key is not 32 bytes; INTERNAL when OpenSSL
/// fails.
Result<X25519KeyPair> X25519FromPrivate(const Bytes& private_key);

/// The 32-byte X25519 shared secret of my_private and their_public (EVP_PKEY_derive). Both sides
/// of a pair derive the same bytes. Use it as HKDF input, never directly as a key.
/// Errors: INVALID_ARGUMENT when either key is not 32 bytes, or when their_public is a low-order
/// point (the shared secret would be all zeros, RFC 7748 section 6.1: a malicious or broken
/// peer); INTERNAL when OpenSSL fails otherwise.
Result<Bytes> X25519SharedSecret(const Bytes& my_private, const Bytes& their_public);

/// An X25519 private key loaded into OpenSSL once, for agreements with many peers. Loading a raw
/// private key makes OpenSSL compute its public key, a scalar multiplication that costs as much
/// as an agreement, so X25519SharedSecret pays it on every call; a client that agrees with each
/// of its k neighbours, or a server that recomputes a dropped client's pairwise masks, loads once.
/// Owns the OpenSSL key, which OpenSSL cleanses when it is freed. Movable, not copyable; a
/// moved-from key may only be destroyed or assigned to. Const calls may run from several threads
/// at once (each derivation makes its own OpenSSL context).
class X25519PrivateKey {
 public:
  /// Any 32 bytes (X25519 clamps them). INVALID_ARGUMENT when private_key is not 32 bytes;
  /// INTERNAL when OpenSSL fails.
  static Result<X25519PrivateKey> Load(const Bytes& private_key);

  X25519PrivateKey(X25519PrivateKey&& other) noexcept;
  X25519PrivateKey& operator=(X25519PrivateKey&& other) noexcept;
  X25519PrivateKey(const X25519PrivateKey&) = delete;
  X25519PrivateKey& operator=(const X25519PrivateKey&) = delete;
  ~X25519PrivateKey();

  /// The 32-byte public key OpenSSL computed when loading. INTERNAL when OpenSSL cannot give it.
  Result<Bytes> PublicKey() const;
  /// The shared secret with their_public: the same bytes and errors as X25519SharedSecret.
  Result<Bytes> SharedSecret(const Bytes& their_public) const;

 private:
  explicit X25519PrivateKey(evp_pkey_st* key) : key_(key) {}
  evp_pkey_st* key_ = nullptr;  // owned
};

/// HKDF-SHA256 (RFC 5869, extract then expand) of `secret` with `salt` (empty: HashLen zero
/// bytes, as the RFC says) and the context string `info` (any bytes, may be empty), `length`
/// bytes long. Errors: INVALID_ARGUMENT when secret is empty, when length is 0 or above
/// kHkdfSha256MaxLength (8160), or when info is longer than 1024 bytes (early OpenSSL 3.0
/// releases allow no more); INTERNAL when OpenSSL fails.
Result<Bytes> HkdfSha256(const Bytes& secret, const Bytes& salt, const std::string& info,
                         std::size_t length);

/// AES-256-GCM encryption of `plaintext` (may be empty) under the 32-byte `key32`, authenticating
/// `associated_data` (may be empty) too. Returns nonce (12 random bytes from RAND_bytes) ||
/// ciphertext (plaintext.size() bytes) || tag (16 bytes).
/// With random nonces, seal at most 2^32 messages under one key (NIST SP 800-38D); SecAgg uses a
/// key per pair of clients and round, far below that.
/// Errors: INVALID_ARGUMENT when key32 is not 32 bytes; INTERNAL when OpenSSL fails.
Result<Bytes> AeadSeal(const Bytes& key32, const Bytes& plaintext, const Bytes& associated_data);

/// Opens what AeadSeal returned: checks the tag over nonce, ciphertext and associated_data and
/// returns the plaintext. Errors: INVALID_ARGUMENT when key32 is not 32 bytes or `sealed` is
/// shorter than 28 bytes (nonce + tag); DATA_LOSS "AES-256-GCM authentication failed ..." when
/// anything differs from what was sealed (any bit of nonce, ciphertext or tag, the associated
/// data, or the key) -- no plaintext is returned then, and the unauthenticated one is wiped;
/// INTERNAL when OpenSSL fails.
Result<Bytes> AeadOpen(const Bytes& key32, const Bytes& sealed, const Bytes& associated_data);

/// The mask generator: fills out[0..n) with the AES-256-CTR keystream of key = seed32 (all 32
/// bytes) and an all-zero 16-byte initial counter block, i.e. the encryption of 4n zero bytes;
/// keystream bytes 4i..4i+3 read little-endian are out[i] (on any host). Deterministic: the same
/// seed always gives the same mask, so both clients of a pair derive the same pairwise mask. Use
/// each seed for one mask only (derive per-round, per-purpose seeds with HkdfSha256). The words
/// are uniform over [0, 2^32); for a power-of-two modulus below 2^32 reduce them with a mask
/// (AddModInPlace does).
/// Runs at the speed of OpenSSL's AES-CTR (AES-NI where present), in 16 KiB blocks, writing
/// straight into `out` without a temporary buffer.
/// Errors: INVALID_ARGUMENT when seed32 is not 32 bytes or out is null with n > 0 (or 4n
/// overflows); INTERNAL when OpenSSL fails. n == 0 writes nothing. On error out is unspecified.
Status ExpandMask(const Bytes& seed32, std::uint32_t* out, std::size_t n);

/// A keyed stream of uniform random bytes, read in order: the AES-256-CTR keystream of a 32-byte
/// key from an all-zero initial counter block (ExpandMask's construction; it reads one). With a
/// secret key it is a cryptographically secure generator (CTR_DRBG's generate function, NIST SP
/// 800-90A, without reseeding: far below its 2^48-request limit for the lengths used here); the
/// same key always gives the same bytes, so a key derived from a public seed keeps a simulation
/// reproducible. Owns its OpenSSL context; movable, not copyable; one thread at a time. Buffered
/// reads (Next64) keep 4 KiB of keystream, wiped on destruction.
class Keystream {
 public:
  /// INVALID_ARGUMENT when key32 is not 32 bytes; INTERNAL when OpenSSL fails.
  static Result<Keystream> Create(const Bytes& key32);
  Keystream(Keystream&& other) noexcept;
  Keystream& operator=(Keystream&& other) noexcept;
  Keystream(const Keystream&) = delete;
  Keystream& operator=(const Keystream&) = delete;
  ~Keystream();

  /// The next n bytes of the stream into out (null only with n == 0), unbuffered, after any
  /// bytes Next64 has buffered. INTERNAL when OpenSSL fails (out is then unspecified).
  Status Fill(std::uint8_t* out, std::size_t n);
  /// The next 8 bytes as a little-endian word (on any host). If OpenSSL fails it returns 0 from
  /// then on and status() says why: a caller that draws many words checks status() once after.
  std::uint64_t Next64() {
    if (pos_ + 8 > kBufferBytes && !Refill()) return 0;
    std::uint64_t w = 0;
    for (int i = 7; i >= 0; --i) w = (w << 8) | buffer_[pos_ + static_cast<std::size_t>(i)];
    pos_ += 8;
    return w;
  }
  /// OK, or the OpenSSL failure that stopped the stream.
  const Status& status() const { return status_; }

 private:
  static constexpr std::size_t kBufferBytes = 4096;
  explicit Keystream(evp_cipher_ctx_st* ctx) : ctx_(ctx) {}
  bool Refill();

  evp_cipher_ctx_st* ctx_ = nullptr;  // owned
  std::array<std::uint8_t, kBufferBytes> buffer_{};
  std::size_t pos_ = kBufferBytes;  // buffer_[pos_..) not yet read
  Status status_;
};

/// One mask of a sum: ExpandMask(seed)'s words, added (add) or subtracted. seed: 32 bytes.
struct MaskTerm {
  Bytes seed;
  bool add = true;
};
/// acc[i] = acc[i] + sum over terms of +-ExpandMask(seed)[i], mod modulus (a power of two
/// <= 2^32), for i in [0, len): the words ExpandMask gives, produced in 16 KiB chunks and added as
/// they come, so the accumulator crosses memory once per 64 masks and no mask is materialised.
/// max_threads (0 = the hardware's concurrency) threads each own a slice of acc and are joined
/// before return; the result does not depend on their number. Keystream scratch is wiped.
/// INVALID_ARGUMENT for a seed other than 32 bytes, INTERNAL when OpenSSL fails (acc may then be
/// partly updated).
Status ApplyMasks(const std::vector<MaskTerm>& terms, std::uint32_t* acc, std::size_t len,
                  std::uint64_t modulus, int max_threads);

/// SHA-256 of data[0..n) (EVP_Digest); data may be null when n is 0. Thread-safe. INTERNAL when
/// OpenSSL fails.
Result<std::array<std::uint8_t, 32>> Sha256(const void* data, std::size_t n);
/// The same as 64 lowercase hex characters (for ledgers and logs).
Result<std::string> Sha256Hex(const void* data, std::size_t n);
/// Whether s has Sha256Hex's form: exactly 64 lowercase hex digits (uppercase is refused).
bool IsSha256Hex(std::string_view s);

/// Whether a and b are equal: false when the sizes differ (the size is not secret), otherwise
/// CRYPTO_memcmp, whose time does not depend on where the bytes differ. Two empty Bytes are equal.
bool ConstantTimeEqual(const Bytes& a, const Bytes& b);

}  // namespace fedml::core::security
