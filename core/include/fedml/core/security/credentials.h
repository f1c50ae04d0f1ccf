// TLS certificates and client credentials for gRPC deployments: what `fedml certs` writes and
// what the gRPC server and clients read back.
//
// A certs folder holds a private CA (ca.pem, ca.key), the server's certificate and key, one
// certificate, key and bearer token per client, and the server's view of the clients: SHA-256
// hashes of the tokens (tokens.txt) and the revoked client ids (revoked.txt). Clients authenticate
// either with their certificate (mutual TLS, common name "client-<id>") or, with mutual TLS off,
// with their token. Nothing in this module prints or logs keys or tokens, and no error message
// quotes one.
//
// Cryptography is OpenSSL 3's; this header does not include OpenSSL's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core::security {

struct CertOptions {
  std::string out_dir;  // created (with its parents) if missing
  int clients = 0;      // client ids 0..clients-1; 0 <= clients <= kMaxClients
  /// The server certificate's subjectAltNames: an entry that parses as an IPv4/IPv6 address
  /// becomes IP:, any other a DNS: name (letters, digits, '-', '.', '_', a leading "*." wildcard).
  /// At least one entry.
  std::vector<std::string> server_names = {"localhost", "127.0.0.1"};
  int valid_days = 365;  // 1 <= valid_days <= kMaxValidDays
};

inline constexpr int kMaxClients = 100000;
inline constexpr int kMaxValidDays = 36500;

/// Writes a complete set of credentials into options.out_dir:
///   ca.pem, ca.key           the CA (ca.key is only needed to issue more certificates; keep it
///                            off the server if you can)
///   server.pem, server.key   the server's certificate and key
///   client-<i>.pem, .key     client i's certificate and key (mutual TLS)
///   client-<i>.token         client i's bearer token for mutual TLS off: 32 bytes from RAND_bytes
///                            as 64 lowercase hex characters and a newline
///   tokens.txt               the server's side: a '#' header, then one line
///                            "<id> <sha256 hex of the token>" per client, so that the server never
///                            stores the tokens themselves
///   revoked.txt              created empty if missing; an existing one is kept as it is
/// Keys are EC P-256 (unencrypted PKCS#8 PEM). Keys and tokens are created with mode 0600 (by
/// open(), never chmod'ed afterwards), the other files with 0644 (less the umask).
/// Certificates are X.509 v3 with SHA-256 (ECDSA) signatures, random positive 128-bit serials,
/// valid from 5 minutes ago (clock skew) for valid_days days:
///   CA        CN "fedml-ca"; basicConstraints critical CA:TRUE; keyUsage critical
///             keyCertSign,cRLSign; subjectKeyIdentifier.
///   server    CN "fedml-server"; subjectAltName from server_names; extendedKeyUsage serverAuth;
///             keyUsage critical digitalSignature,keyEncipherment; basicConstraints critical
///             CA:FALSE; subject/authorityKeyIdentifier.
///   client i  CN "client-<i>"; extendedKeyUsage clientAuth; keyUsage critical digitalSignature;
///             basicConstraints critical CA:FALSE; subject/authorityKeyIdentifier.
/// Every file is written atomically (a temporary file in out_dir, fsync, rename). ca.pem and ca.key
/// are written last, so an interrupted run leaves no CA behind and can simply be repeated.
/// Errors: INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when out_dir already holds
/// ca.key or ca.pem and `overwrite` is false (nothing is written then); PERMISSION_DENIED,
/// RESOURCE_EXHAUSTED or INTERNAL naming the file that could not be written; INTERNAL with
/// OpenSSL's reason when OpenSSL fails. With `overwrite`, every file above is replaced except
/// revoked.txt; client files with ids >= clients from an earlier run are left alone (their
/// certificates do not chain to the new CA, and tokens.txt no longer lists their tokens).
Status GenerateCredentials(const CertOptions& options, bool overwrite = false);

/// "client-7" -> 7: exactly "client-" and a non-negative decimal int without leading zeros.
/// INVALID_ARGUMENT otherwise, naming what was seen and the expected form.
Result<int> ClientIdFromCommonName(const std::string& common_name);

/// The server's view of the client credentials in a certs folder: the token hashes of tokens.txt
/// and the revocations of revoked.txt. The tokens are fixed once loaded; the revocations follow
/// the file: Refresh re-reads revoked.txt when it changed, so an operator revokes a client while
/// the server runs. Thread-safe (checks and Refresh may run on any threads at once); copies share
/// one revocation list.
class ClientRegistry {
 public:
  /// Loads DIR/tokens.txt (missing file = no tokens) and DIR/revoked.txt (missing = none revoked).
  /// Both allow blank lines and '#' comments (to the end of the line). tokens.txt lines are
  /// "<id> <64 hex digits>"; revoked.txt lines are a client id (a non-negative decimal int), or
  /// "serial:<hex>" for one certificate by its serial number (as `openssl x509 -noout -serial`
  /// prints it, either case): revoking a serial refuses that certificate only, so a client whose
  /// key leaked can be issued a new certificate under the same id. Errors: NOT_FOUND when DIR is
  /// not a directory; INVALID_ARGUMENT naming "file:line" for a malformed line, a duplicate id or
  /// a duplicate hash in tokens.txt; NOT_FOUND / PERMISSION_DENIED naming the file when one exists
  /// but cannot be read.
  static Result<ClientRegistry> Load(const std::string& dir);

  /// Re-reads revoked.txt if its size, modification time or inode changed since the last read.
  /// On an error (a malformed line, an unreadable file) the previous list stays in force and the
  /// error is returned, naming the file and line; it is returned again only after the file
  /// changes again, so a caller may log every error it gets.
  Status Refresh() const;

  /// The client id whose token this is: the SHA-256 of `token` is compared in constant time
  /// (CRYPTO_memcmp) with every entry, never stopping early. PERMISSION_DENIED
  /// "unknown client token" when none matches, or "client N is revoked".
  Result<int> IdentifyByToken(const std::string& token) const;

  /// OK if client `id` is known (id >= 0 and, when tokens.txt lists any token, listed there), not
  /// revoked, and (when `serial_hex` is given: the serial of the certificate it presented, as
  /// CertificateSerialHex returns it) its certificate is not revoked; PERMISSION_DENIED naming the
  /// id and the reason otherwise.
  Status CheckAllowed(int id, const std::string& serial_hex = "") const;

  bool IsRevoked(int id) const;

  /// How many tokens tokens.txt lists.
  std::size_t token_count() const { return tokens_.size(); }

 private:
  struct TokenEntry {
    int id;
    std::array<unsigned char, 32> sha256;
  };
  struct Revocations;  // the list and the file stamp it was read at, behind a mutex

  ClientRegistry();
  Status Revoked(int id) const;

  std::string dir_;
  std::vector<TokenEntry> tokens_;
  std::set<int> token_ids_;
  std::shared_ptr<Revocations> revoked_;
};

/// The serial number of the certificate in `pem` as lowercase hex without leading zeros (the form
/// revoked.txt's "serial:" lines are compared in). INVALID_ARGUMENT when `pem` holds no
/// certificate.
Result<std::string> CertificateSerialHex(const std::string& pem);

/// Reads a whole file (PEM, token) into a string. With `trim`, trailing whitespace (the newline
/// of a .token file) is stripped. NOT_FOUND naming the path and the reason if it cannot be read.
Result<std::string> ReadTextFile(const std::string& path, bool trim = false);

/// 64 bits from OpenSSL's CSPRNG (RAND_bytes), for seeds that must stay secret: the DP noise of a
/// deployed server or client, which anyone who knows the run's random_seed could otherwise
/// subtract. INTERNAL when OpenSSL's generator fails.
Result<std::uint64_t> SecureRandomU64();

}  // namespace fedml::core::security
