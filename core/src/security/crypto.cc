#include "fedml/core/security/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "openssl_util.h"

namespace fedml::core::security {
namespace {

// ---- OpenSSL handles ---------------------------------------------------------------------------

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct KdfFree {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using KdfPtr = std::unique_ptr<EVP_KDF, KdfFree>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, KdfCtxFree>;

Status WrongSize(const char* what, std::size_t got, std::size_t want) {
  return Status::InvalidArgument(std::string(what) + " is " + std::to_string(got) +
                                 " bytes; it must be exactly " + std::to_string(want) + " bytes");
}

// RAND_bytes into out[0..n), in pieces that fit its int length.
Status FillRandom(std::uint8_t* out, std::size_t n) {
  while (n > 0) {
    const int piece = static_cast<int>(std::min<std::size_t>(n, INT_MAX));
    if (RAND_bytes(out, piece) != 1) {
      return Status::Internal("OpenSSL's RAND_bytes failed to produce random bytes: " +
                              OpensslReasons());
    }
    out += piece;
    n -= static_cast<std::size_t>(piece);
  }
  return Status::Ok();
}

// The raw 32-byte private and public halves of an X25519 key.
Result<X25519KeyPair> RawKeyPair(EVP_PKEY* key) {
  X25519KeyPair pair;
  pair.private_key.resize(kX25519KeyBytes);
  pair.public_key.resize(kX25519KeyBytes);
  std::size_t priv_len = pair.private_key.size();
  std::size_t pub_len = pair.public_key.size();
  if (EVP_PKEY_get_raw_private_key(key, pair.private_key.data(), &priv_len) != 1 ||
      EVP_PKEY_get_raw_public_key(key, pair.public_key.data(), &pub_len) != 1 ||
      priv_len != kX25519KeyBytes || pub_len != kX25519KeyBytes) {
    OPENSSL_cleanse(pair.private_key.data(), pair.private_key.size());
    return OpensslError("cannot read the raw X25519 key pair");
  }
  return pair;
}

// EVP_EncryptUpdate / DecryptUpdate over a buffer of any size (they take an int length).
constexpr std::size_t kMaxUpdate = std::size_t{1} << 30;

bool CipherUpdate(EVP_CIPHER_CTX* ctx, std::uint8_t* out, const std::uint8_t* in, std::size_t n,
                  bool encrypt) {
  while (n > 0) {
    const int piece = static_cast<int>(std::min(n, kMaxUpdate));
    int len = 0;
    const int ok = encrypt ? EVP_EncryptUpdate(ctx, out, &len, in, piece)
                           : EVP_DecryptUpdate(ctx, out, &len, in, piece);
    if (ok != 1 || (out != nullptr && len != piece)) return false;
    if (out != nullptr) out += piece;
    in += piece;
    n -= static_cast<std::size_t>(piece);
  }
  return true;
}

// Feeds associated data to a GCM context (output pointer null).
bool CipherAad(EVP_CIPHER_CTX* ctx, const Bytes& aad, bool encrypt) {
  return CipherUpdate(ctx, nullptr, aad.data(), aad.size(), encrypt);
}

// The keystream is produced by encrypting this block of zeros: 16 KiB stays in L1 cache, the
// same block size as `openssl speed -bytes 16384`, and large enough that EVP's per-call overhead
// is lost in the noise.
constexpr std::size_t kMaskBlockBytes = 16 * 1024;
const std::uint8_t kZeros[kMaskBlockBytes] = {};

}  // namespace

Result<Bytes> SecureRandomBytes(std::size_t n) {
  Bytes out(n);
  FEDML_RETURN_IF_ERROR(FillRandom(out.data(), n));
  return out;
}

Result<X25519KeyPair> GenerateX25519() {
  ERR_clear_error();
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!key) return OpensslError("cannot generate an X25519 key");
  return RawKeyPair(key.get());
}

Result<X25519PrivateKey> X25519PrivateKey::Load(const Bytes& private_key) {
  if (private_key.size() != kX25519KeyBytes) {
    return WrongSize("the X25519 private key", private_key.size(), kX25519KeyBytes);
  }
  ERR_clear_error();
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(),
                                               private_key.size());
  if (key == nullptr) return OpensslError("cannot load the X25519 private key");
  return X25519PrivateKey(key);
}

X25519PrivateKey::X25519PrivateKey(X25519PrivateKey&& other) noexcept
    : key_(std::exchange(other.key_, nullptr)) {}

X25519PrivateKey& X25519PrivateKey::operator=(X25519PrivateKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(key_);
    key_ = std::exchange(other.key_, nullptr);
  }
  return *this;
}

X25519PrivateKey::~X25519PrivateKey() { EVP_PKEY_free(key_); }

Result<Bytes> X25519PrivateKey::PublicKey() const {
  Bytes out(kX25519KeyBytes);
  std::size_t len = out.size();
  ERR_clear_error();
  if (EVP_PKEY_get_raw_public_key(key_, out.data(), &len) != 1 || len != kX25519KeyBytes) {
    return OpensslError("cannot read the X25519 public key");
  }
  return out;
}

Result<Bytes> X25519PrivateKey::SharedSecret(const Bytes& their_public) const {
  if (their_public.size() != kX25519KeyBytes) {
    return WrongSize("the peer's X25519 public key", their_public.size(), kX25519KeyBytes);
  }
  ERR_clear_error();
  PkeyPtr theirs(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, their_public.data(),
                                             their_public.size()));
  if (!theirs) return OpensslError("cannot load the peer's X25519 public key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_, nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) {
    return OpensslError("cannot set up X25519 key agreement");
  }
  const Status low_order = Status::InvalidArgument(
      "the peer's X25519 public key is a low-order point: the shared secret would be all zeros "
      "(RFC 7748 section 6.1); refuse this peer");
  if (EVP_PKEY_derive_set_peer(ctx.get(), theirs.get()) != 1) {
    return Status::InvalidArgument("the peer's X25519 public key is not valid: " +
                                   OpensslReasons());
  }
  Bytes secret(kX25519KeyBytes);
  std::size_t len = secret.size();
  if (EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1) {
    // For X25519 the only input that makes the derivation itself fail is a low-order point
    // (OpenSSL refuses the all-zero result).
    OPENSSL_cleanse(secret.data(), secret.size());
    ERR_clear_error();
    return low_order;
  }
  if (len != kX25519KeyBytes) {
    OPENSSL_cleanse(secret.data(), secret.size());
    return Status::Internal("X25519 produced " + std::to_string(len) + " bytes instead of 32");
  }
  // OpenSSL already refuses the all-zero secret; checked again in constant time in case a
  // provider does not.
  static const std::uint8_t kZeroKey[kX25519KeyBytes] = {};
  if (CRYPTO_memcmp(secret.data(), kZeroKey, kX25519KeyBytes) == 0) return low_order;
  return secret;
}

Result<X25519KeyPair> X25519FromPrivate(const Bytes& private_key) {
  FEDML_ASSIGN_OR_RETURN(X25519PrivateKey key, X25519PrivateKey::Load(private_key));
  X25519KeyPair pair;
  FEDML_ASSIGN_OR_RETURN(pair.public_key, key.PublicKey());
  pair.private_key = private_key;
  return pair;
}

Result<Bytes> X25519SharedSecret(const Bytes& my_private, const Bytes& their_public) {
  FEDML_ASSIGN_OR_RETURN(X25519PrivateKey mine, X25519PrivateKey::Load(my_private));
  return mine.SharedSecret(their_public);
}

Result<Bytes> HkdfSha256(const Bytes& secret, const Bytes& salt, const std::string& info,
                         std::size_t length) {
  if (secret.empty()) {
    return Status::InvalidArgument("the HKDF input secret is empty; give the key material");
  }
  if (length == 0 || length > kHkdfSha256MaxLength) {
    return Status::InvalidArgument("HKDF-SHA256 output length is " + std::to_string(length) +
                                   "; allowed: 1.." + std::to_string(kHkdfSha256MaxLength) +
                                   " bytes (255 hash lengths, RFC 5869)");
  }
  if (info.size() > 1024) {
    return Status::InvalidArgument(
        "the HKDF info string is " + std::to_string(info.size()) +
        " bytes; at most 1024 are allowed (the smallest limit of the OpenSSL 3.0 releases)");
  }
  ERR_clear_error();
  KdfPtr kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return OpensslError("OpenSSL has no HKDF");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return OpensslError("cannot set up HKDF");

  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  std::size_t p = 0;
  params[p++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[p++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()), secret.size());
  // An absent salt is HashLen zeros in OpenSSL as in the RFC; an empty octet string is refused by
  // some versions, so it is left out.
  if (!salt.empty()) {
    params[p++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size());
  }
  if (!info.empty()) {
    params[p++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                    const_cast<char*>(info.data()), info.size());
  }
  params[p] = OSSL_PARAM_construct_end();

  Bytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return OpensslError("HKDF-SHA256 failed");
  }
  return out;
}

Result<Bytes> AeadSeal(const Bytes& key32, const Bytes& plaintext, const Bytes& associated_data) {
  if (key32.size() != kAeadKeyBytes) {
    return WrongSize("the AES-256-GCM key", key32.size(), kAeadKeyBytes);
  }
  if (plaintext.size() >
      std::numeric_limits<std::size_t>::max() - kAeadNonceBytes - kAeadTagBytes) {
    return Status::InvalidArgument("the plaintext is too large to seal");
  }
  ERR_clear_error();
  Bytes sealed(kAeadNonceBytes + plaintext.size() + kAeadTagBytes);
  std::uint8_t* nonce = sealed.data();
  std::uint8_t* body = nonce + kAeadNonceBytes;
  std::uint8_t* tag = body + plaintext.size();
  FEDML_RETURN_IF_ERROR(FillRandom(nonce, kAeadNonceBytes));

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kAeadNonceBytes),
                          nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key32.data(), nonce) != 1) {
    return OpensslError("cannot set up AES-256-GCM");
  }
  int len = 0;
  if (!CipherAad(ctx.get(), associated_data, true) ||
      !CipherUpdate(ctx.get(), body, plaintext.data(), plaintext.size(), true) ||
      EVP_EncryptFinal_ex(ctx.get(), tag, &len) != 1 || len != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagBytes), tag) !=
          1) {
    return OpensslError("AES-256-GCM encryption failed");
  }
  return sealed;
}

Result<Bytes> AeadOpen(const Bytes& key32, const Bytes& sealed, const Bytes& associated_data) {
  if (key32.size() != kAeadKeyBytes) {
    return WrongSize("the AES-256-GCM key", key32.size(), kAeadKeyBytes);
  }
  if (sealed.size() < kAeadNonceBytes + kAeadTagBytes) {
    return Status::InvalidArgument("the sealed message is " + std::to_string(sealed.size()) +
                                   " bytes; an AES-256-GCM " + "message is at least " +
                                   std::to_string(kAeadNonceBytes + kAeadTagBytes) +
                                   " bytes (12-byte nonce, ciphertext, 16-byte tag)");
  }
  ERR_clear_error();
  const std::uint8_t* nonce = sealed.data();
  const std::uint8_t* body = nonce + kAeadNonceBytes;
  const std::size_t body_len = sealed.size() - kAeadNonceBytes - kAeadTagBytes;
  const std::uint8_t* tag = body + body_len;

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kAeadNonceBytes),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key32.data(), nonce) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAeadTagBytes),
                          const_cast<std::uint8_t*>(tag)) != 1) {
    return OpensslError("cannot set up AES-256-GCM");
  }
  Bytes plaintext(body_len);
  if (!CipherAad(ctx.get(), associated_data, false) ||
      !CipherUpdate(ctx.get(), plaintext.data(), body, body_len, false)) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return OpensslError("AES-256-GCM decryption failed");
  }
  int len = 0;
  std::uint8_t final_block[16];
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &len) != 1) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    ERR_clear_error();
    return Status::DataLoss(
        "AES-256-GCM authentication failed: the nonce, ciphertext, tag or associated data was "
        "changed, or the key is not the one it was sealed with");
  }
  return plaintext;
}

Result<Keystream> Keystream::Create(const Bytes& key32) {
  if (key32.size() != kMaskSeedBytes) return WrongSize("the keystream key", key32.size(), 32);
  ERR_clear_error();
  static const std::uint8_t kZeroIv[16] = {};
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr, key32.data(), kZeroIv) != 1) {
    return OpensslError("cannot set up AES-256-CTR for a keystream");
  }
  return Keystream(ctx.release());
}

Keystream::Keystream(Keystream&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)),
      buffer_(other.buffer_),
      pos_(other.pos_),
      status_(std::move(other.status_)) {
  OPENSSL_cleanse(other.buffer_.data(), other.buffer_.size());
}

Keystream& Keystream::operator=(Keystream&& other) noexcept {
  if (this != &other) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    buffer_ = other.buffer_;
    OPENSSL_cleanse(other.buffer_.data(), other.buffer_.size());
    pos_ = other.pos_;
    status_ = std::move(other.status_);
  }
  return *this;
}

Keystream::~Keystream() {
  EVP_CIPHER_CTX_free(ctx_);  // cleanses the expanded key
  OPENSSL_cleanse(buffer_.data(), buffer_.size());
}

Status Keystream::Fill(std::uint8_t* out, std::size_t n) {
  if (!status_.ok() || n == 0) return status_;
  const std::size_t buffered = std::min(n, kBufferBytes - pos_);
  std::memcpy(out, buffer_.data() + pos_, buffered);
  pos_ += buffered;
  out += buffered;
  n -= buffered;
  while (n > 0) {
    const std::size_t piece = std::min(n, kMaskBlockBytes);
    int len = 0;
    if (ctx_ == nullptr ||
        EVP_EncryptUpdate(ctx_, out, &len, kZeros, static_cast<int>(piece)) != 1 ||
        len != static_cast<int>(piece)) {
      status_ = OpensslError("AES-256-CTR failed while producing a keystream");
      return status_;
    }
    out += piece;
    n -= piece;
  }
  return Status::Ok();
}

bool Keystream::Refill() {
  // Unread bytes at the end are dropped: words are never split across refills.
  pos_ = kBufferBytes;
  if (!Fill(buffer_.data(), kBufferBytes).ok()) return false;
  pos_ = 0;
  return true;
}

Status ExpandMask(const Bytes& seed32, std::uint32_t* out, std::size_t n) {
  if (seed32.size() != kMaskSeedBytes) {
    return WrongSize("the mask seed", seed32.size(), kMaskSeedBytes);
  }
  if (n == 0) return Status::Ok();
  if (out == nullptr) {
    return Status::InvalidArgument("ExpandMask: out is null for a mask of " + std::to_string(n) +
                                   " words");
  }
  if (n > std::numeric_limits<std::size_t>::max() / sizeof(std::uint32_t)) {
    return Status::InvalidArgument("ExpandMask: " + std::to_string(n) + " words do not fit memory");
  }
  FEDML_ASSIGN_OR_RETURN(Keystream stream, Keystream::Create(seed32));
  // std::uint8_t may alias anything, so the keystream goes straight into the words.
  if (Status st = stream.Fill(reinterpret_cast<std::uint8_t*>(out), n * sizeof(std::uint32_t));
      !st.ok()) {
    return Status::Internal("while expanding a mask: " + st.message());
  }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  for (std::size_t i = 0; i < n; ++i) out[i] = __builtin_bswap32(out[i]);
#endif
  return Status::Ok();
}

Result<std::array<std::uint8_t, 32>> Sha256(const void* data, std::size_t n) {
  std::array<std::uint8_t, 32> digest{};
  unsigned int len = 0;
  static const unsigned char kEmpty = 0;
  if (EVP_Digest(n == 0 ? &kEmpty : data, n, digest.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != digest.size()) {
    return OpensslError("SHA-256 failed");
  }
  return digest;
}

Result<std::string> Sha256Hex(const void* data, std::size_t n) {
  FEDML_ASSIGN_OR_RETURN(const auto digest, Sha256(data, n));
  return HexEncode(digest.data(), digest.size());
}

bool IsSha256Hex(std::string_view s) {
  return s.size() == 64 && HexDecode(s, HexCase::kLowerOnly).ok();
}

bool ConstantTimeEqual(const Bytes& a, const Bytes& b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace fedml::core::security
