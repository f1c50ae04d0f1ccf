// Signatures with a deployment's TLS credentials (credentials.h): the one place fedml signs and
// verifies with OpenSSL's EVP_DigestSign / EVP_DigestVerify (SHA-256; the keys `fedml certs`
// writes are P-256, so signatures are DER ECDSA), and checks that a client certificate was issued
// by the deployment's CA. Users: signed ledger heads (ledger_heads.h, the server's key) and
// secure aggregation's authenticated keys and consistency round (the clients' keys,
// fedml/algorithms/protocols/secagg_auth.h).
//
// Messages are signed as they are: callers build a domain-separated byte string (a fixed label
// first) so that a signature made for one purpose never verifies for another.
//
// Errors never quote key material. This header includes none of OpenSSL's. Objects are immutable
// after construction and cheap to copy (copies share the parsed key); every call is thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "fedml/core/bytes.h"
#include "fedml/core/status.h"

namespace fedml::core::security {

/// The longest signature accepted from a peer (a P-256 DER ECDSA signature is at most 72 bytes;
/// this leaves room for RSA-4096).
inline constexpr std::size_t kMaxSignatureBytes = 512;
/// The longest PEM certificate accepted from a peer (`fedml certs` writes ~700 bytes).
inline constexpr std::size_t kMaxCertificatePemBytes = 16 * 1024;

/// A private key that signs.
class SigningKey {
 public:
  SigningKey() = default;  // holds no key: Sign fails (FAILED_PRECONDITION)
  /// INVALID_ARGUMENT "not a PEM private key" when `key_pem` does not parse.
  static Result<SigningKey> FromPem(const std::string& key_pem);
  /// The signature of `message` (SHA-256). INTERNAL when OpenSSL fails.
  Result<Bytes> Sign(const Bytes& message) const;

 private:
  struct Impl;
  explicit SigningKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// The public key of a certificate, which verifies.
class VerifyingKey {
 public:
  VerifyingKey() = default;  // holds no key: Verify fails (FAILED_PRECONDITION)
  /// INVALID_ARGUMENT "not a PEM certificate" when `cert_pem` does not parse or is longer than
  /// kMaxCertificatePemBytes. The certificate is not checked against any CA (see
  /// CertificateAuthority for that).
  static Result<VerifyingKey> FromCertificate(const std::string& cert_pem);
  /// OK when `signature` is this key's signature of `message`; INVALID_ARGUMENT for an empty
  /// signature or one longer than kMaxSignatureBytes; PERMISSION_DENIED "the signature does not
  /// verify" otherwise (a truncated or altered signature, another key's, another message's).
  Status Verify(const Bytes& message, const Bytes& signature) const;

 private:
  struct Impl;
  friend class CertificateAuthority;
  explicit VerifyingKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// A client certificate checked against the CA: whose it is and its key.
struct CertifiedClient {
  int client_id = -1;
  VerifyingKey key;
};

/// The deployment's CA (ca.pem), as the TLS layer trusts it.
class CertificateAuthority {
 public:
  /// INVALID_ARGUMENT when `ca_pem` holds no certificate.
  static Result<CertificateAuthority> FromPem(const std::string& ca_pem);
  /// Checks that `cert_pem` (at most kMaxCertificatePemBytes) is a client certificate issued by
  /// this CA and valid now (X509_verify_cert, TLS client purpose) and that its common name names
  /// a client ("client-<id>", ClientIdFromCommonName). PERMISSION_DENIED naming the reason when it
  /// is not; INVALID_ARGUMENT when it does not parse or is too long.
  Result<CertifiedClient> VerifyClient(const std::string& cert_pem) const;

 private:
  struct Impl;
  explicit CertificateAuthority(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace fedml::core::security
