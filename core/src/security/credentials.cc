// Credentials for deployment (fedml/core/security/credentials.h): `fedml certs` (the CA, server
// and client certificates and tokens, with OpenSSL), and the server's ClientRegistry (tokens,
// revocations re-read while it runs, certificate serials).
//
// Why one file of this size: issuing certificates and checking them share the OpenSSL handles,
// the file helpers (atomic writes, reads that tell "missing" from "unreadable") and the parsers of
// the folder's text files; split, each half would carry a copy of them.
#include "fedml/core/security/credentials.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string_view>
#include <utility>

#include "fedml/core/bytes.h"
#include "fedml/core/security/crypto.h"
#include "openssl_util.h"

namespace fedml::core::security {
namespace {

namespace fs = std::filesystem;

// ---- OpenSSL handles ---------------------------------------------------------------------------

struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;

// Overwrites a string holding key material or a token when it goes out of scope.
class ScopedCleanse {
 public:
  explicit ScopedCleanse(std::string& s) : s_(s) {}
  ~ScopedCleanse() { OPENSSL_cleanse(s_.data(), s_.size()); }
  ScopedCleanse(const ScopedCleanse&) = delete;
  ScopedCleanse& operator=(const ScopedCleanse&) = delete;

 private:
  std::string& s_;
};

// A status for a failed system call on `path`, with the code that fits errno.
Status ErrnoStatus(int err, const std::string& what, const std::string& path) {
  std::string message = what + " '" + path + "': " + std::strerror(err);
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(std::move(message));
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(std::move(message));
    case ENOSPC:
    case EDQUOT:
      return Status::ResourceExhausted(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

// A canonical non-negative decimal int: digits only, no sign, no leading zeros (except "0").
bool ParseId(std::string_view s, int* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  int value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = value;
  return true;
}

// A field of a credentials file for an error message: quoted when short and printable, otherwise
// only its length, so that a token pasted into the wrong file never reaches a log.
std::string DescribeField(std::string_view s) {
  bool printable = s.size() <= 12;
  for (char c : s) printable = printable && std::isprint(static_cast<unsigned char>(c));
  if (printable) return "'" + std::string(s) + "'";
  return "a " + std::to_string(s.size()) + "-character field";
}

// ---- files
// ---------------------------------------------------------------------------------------

// Reads `path` whole; on failure returns false with errno in *err.
bool ReadWholeFile(const std::string& path, std::string* out, int* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  out->clear();
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof buf);  // the file may hold a key or a token
  return true;
}

// Writes `data` to `path` atomically: a new temporary file next to it created with `mode`
// (O_EXCL, so never an existing file or a symlink), fsync, rename over `path`.
Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", tmp);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoStatus(err, "cannot write", tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot fsync", tmp);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot close", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot rename a temporary file to", path);
  }
  return Status::Ok();
}

constexpr mode_t kSecretMode = 0600;
constexpr mode_t kPublicMode = 0644;

// ---- keys and certificates ---------------------------------------------------------------------

Result<PkeyPtr> NewP256Key() {
  char curve[] = "P-256";
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  if (!key) return OpensslError("cannot generate an EC P-256 key");
  return key;
}

// Unencrypted PKCS#8 PEM; the caller cleanses the string.
Result<std::string> PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpensslError("cannot encode a private key as PEM");
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  if (mem == nullptr) return OpensslError("cannot encode a private key as PEM");
  return std::string(mem->data, mem->length);
}

Result<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpensslError("cannot encode a certificate as PEM");
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  if (mem == nullptr) return OpensslError("cannot encode a certificate as PEM");
  return std::string(mem->data, mem->length);
}

// Random positive 128-bit serial number.
Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  BnPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) return OpensslError("RAND_bytes failed");
    bn.reset(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) return OpensslError("cannot make a serial number");
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpensslError("cannot set a serial number");
  }
  return Status::Ok();
}

struct Extension {
  int nid;
  const char* value;  // OpenSSL's config syntax, e.g. "critical,CA:TRUE"
};

struct CertSpec {
  std::string common_name;
  EVP_PKEY* key = nullptr;         // the subject's key pair (its public half is certified)
  X509* issuer = nullptr;          // nullptr: self-signed
  EVP_PKEY* issuer_key = nullptr;  // signs; the subject's key when self-signed
  int valid_days = 0;
  std::vector<Extension> extensions;
  const GENERAL_NAMES* subject_alt_names = nullptr;
};

Result<X509Ptr> MakeCertificate(const CertSpec& spec) {
  const std::string what = "cannot build the certificate for '" + spec.common_name + "'";
  X509Ptr cert(X509_new());
  if (!cert) return OpensslError(what);
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) return OpensslError(what);
  FEDML_RETURN_IF_ERROR(SetRandomSerial(x));
  // Valid from 5 minutes ago, so that a peer whose clock is slightly behind accepts it.
  if (X509_gmtime_adj(X509_getm_notBefore(x), -5 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), spec.valid_days, 0, nullptr) == nullptr) {
    return OpensslError(what + " (validity)");
  }
  if (X509_set_pubkey(x, spec.key) != 1) return OpensslError(what + " (public key)");
  X509_NAME* subject = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    return OpensslError(what + " (subject)");
  }
  X509_NAME* issuer_name = spec.issuer ? X509_get_subject_name(spec.issuer) : subject;
  if (X509_set_issuer_name(x, issuer_name) != 1) return OpensslError(what + " (issuer)");

  X509V3_CTX ctx{};
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, spec.issuer ? spec.issuer : x, x, nullptr, nullptr, 0);
  for (const Extension& ext : spec.extensions) {
    X509_EXTENSION* e = X509V3_EXT_nconf_nid(nullptr, &ctx, ext.nid, ext.value);
    if (e == nullptr) {
      return OpensslError(what + " (extension " + OBJ_nid2sn(ext.nid) + " = " + ext.value + ")");
    }
    const int added = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (added != 1) return OpensslError(what + " (extension " + OBJ_nid2sn(ext.nid) + ")");
  }
  if (spec.subject_alt_names != nullptr &&
      X509_add1_ext_i2d(x, NID_subject_alt_name, const_cast<GENERAL_NAMES*>(spec.subject_alt_names),
                        0, X509V3_ADD_DEFAULT) != 1) {
    return OpensslError(what + " (subjectAltName)");
  }
  if (X509_sign(x, spec.issuer_key, EVP_sha256()) <= 0) return OpensslError(what + " (signing)");
  return cert;
}

// A DNS name for a subjectAltName: labels of letters, digits, '-' and '_' separated by '.', and
// optionally a leading "*." wildcard.
bool IsDnsName(const std::string& name) {
  std::string_view rest = name;
  if (rest.size() > 2 && rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  if (rest.empty() || rest.size() > 253 || rest.front() == '.' || rest.back() == '.') return false;
  char prev = '\0';
  for (char c : rest) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

std::string Printable(const std::string& s, std::size_t max_chars = 64) {
  std::string out;
  for (char c : s.substr(0, max_chars)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  }
  if (s.size() > max_chars) out += "...";
  return out;
}

Result<GeneralNamesPtr> SubjectAltNames(const std::vector<std::string>& names) {
  if (names.empty()) {
    return Status::InvalidArgument(
        "server_names is empty: the server certificate needs at least one DNS name or IP address "
        "(e.g. localhost, 127.0.0.1 or the server's host name)");
  }
  GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
  if (!gens) return OpensslError("cannot build the subjectAltName");
  for (const std::string& name : names) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    if (gen == nullptr) return OpensslError("cannot build the subjectAltName");
    // Owned by `gens` from here on, so that every path below frees it.
    if (sk_GENERAL_NAME_push(gens.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return OpensslError("cannot build the subjectAltName");
    }
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str())) {
      GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
      continue;
    }
    ERR_clear_error();  // a2i_IPADDRESS leaves an error behind for a non-address
    if (!IsDnsName(name)) {
      return Status::InvalidArgument("server name '" + Printable(name) +
                                     "' is neither an IPv4/IPv6 address nor a DNS name (letters, "
                                     "digits, '-', '_' and '.', optionally a leading '*.')");
    }
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      return OpensslError("cannot build the subjectAltName");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
  }
  return gens;
}

// A random token: 32 bytes from RAND_bytes as 64 lowercase hex characters.
Result<std::string> NewToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpensslError("RAND_bytes failed");
  std::string token;
  token.reserve(2 * sizeof bytes + 1);  // room for the file's newline: no copy left behind
  AppendHex(bytes, sizeof bytes, &token);
  OPENSSL_cleanse(bytes, sizeof bytes);
  return token;
}

Status WriteKey(const fs::path& path, EVP_PKEY* key) {
  FEDML_ASSIGN_OR_RETURN(std::string pem, PrivateKeyPem(key));
  ScopedCleanse cleanse(pem);
  return WriteFileAtomically(path.string(), pem, kSecretMode);
}

Status WriteCertificate(const fs::path& path, X509* cert) {
  FEDML_ASSIGN_OR_RETURN(std::string pem, CertificatePem(cert));
  return WriteFileAtomically(path.string(), pem, kPublicMode);
}

bool PathExists(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Status ValidateOptions(const CertOptions& options) {
  if (options.out_dir.empty()) {
    return Status::InvalidArgument("out_dir is empty: name the folder to write credentials into");
  }
  if (options.clients < 0 || options.clients > kMaxClients) {
    return Status::InvalidArgument("clients is " + std::to_string(options.clients) +
                                   "; allowed: 0.." + std::to_string(kMaxClients));
  }
  if (options.valid_days < 1 || options.valid_days > kMaxValidDays) {
    return Status::InvalidArgument("valid_days is " + std::to_string(options.valid_days) +
                                   "; allowed: 1.." + std::to_string(kMaxValidDays));
  }
  return Status::Ok();
}

// Splits a line of a credentials file into whitespace-separated fields, dropping a '#' comment.
std::vector<std::string> Fields(const std::string& line) {
  std::istringstream in(line.substr(0, line.find('#')));
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(std::move(f));
  return fields;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  return lines;
}

// Reads an optional file: false in *present when it does not exist.
Status ReadOptionalFile(const std::string& path, std::string* out, bool* present) {
  int err = 0;
  *present = ReadWholeFile(path, out, &err);
  if (*present || err == ENOENT) return Status::Ok();
  return ErrnoStatus(err, "cannot read", path);
}

}  // namespace

Status GenerateCredentials(const CertOptions& options, bool overwrite) {
  FEDML_RETURN_IF_ERROR(ValidateOptions(options));
  ERR_clear_error();
  FEDML_ASSIGN_OR_RETURN(GeneralNamesPtr san, SubjectAltNames(options.server_names));
  const fs::path dir(options.out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), "cannot create the credentials folder", options.out_dir);
  }
  if (!fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("out_dir '" + options.out_dir +
                                   "' exists and is not a directory; name a folder");
  }
  if (!overwrite) {
    for (const char* name : {"ca.key", "ca.pem"}) {
      if (PathExists(dir / name)) {
        return Status::FailedPrecondition(
            (dir / name).string() +
            " already exists: refusing to replace an existing CA (clients holding certificates "
            "or tokens from it would be locked out); remove it or regenerate with overwrite on");
      }
    }
  }

  // The CA, kept in memory and written last.
  FEDML_ASSIGN_OR_RETURN(PkeyPtr ca_key, NewP256Key());
  CertSpec ca_spec;
  ca_spec.common_name = "fedml-ca";
  ca_spec.key = ca_key.get();
  ca_spec.issuer_key = ca_key.get();
  ca_spec.valid_days = options.valid_days;
  ca_spec.extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                        {NID_key_usage, "critical,keyCertSign,cRLSign"},
                        {NID_subject_key_identifier, "hash"}};
  FEDML_ASSIGN_OR_RETURN(X509Ptr ca_cert, MakeCertificate(ca_spec));

  std::string token_hashes =
      "# fedml client token hashes: <client id> <sha256 hex of client-<id>.token>\n";
  for (int id = 0; id < options.clients; ++id) {
    const std::string name = "client-" + std::to_string(id);
    FEDML_ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
    CertSpec spec;
    spec.common_name = name;
    spec.key = key.get();
    spec.issuer = ca_cert.get();
    spec.issuer_key = ca_key.get();
    spec.valid_days = options.valid_days;
    spec.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                       {NID_key_usage, "critical,digitalSignature"},
                       {NID_ext_key_usage, "clientAuth"},
                       {NID_subject_key_identifier, "hash"},
                       {NID_authority_key_identifier, "keyid:always"}};
    FEDML_ASSIGN_OR_RETURN(X509Ptr cert, MakeCertificate(spec));
    FEDML_RETURN_IF_ERROR(WriteCertificate(dir / (name + ".pem"), cert.get()));
    FEDML_RETURN_IF_ERROR(WriteKey(dir / (name + ".key"), key.get()));

    FEDML_ASSIGN_OR_RETURN(std::string token, NewToken());
    ScopedCleanse cleanse_token(token);
    FEDML_ASSIGN_OR_RETURN(const auto digest, Sha256(token.data(), token.size()));
    token_hashes += std::to_string(id) + " ";
    AppendHex(digest.data(), digest.size(), &token_hashes);
    token_hashes += '\n';
    token += '\n';
    FEDML_RETURN_IF_ERROR(
        WriteFileAtomically((dir / (name + ".token")).string(), token, kSecretMode));
  }

  FEDML_ASSIGN_OR_RETURN(PkeyPtr server_key, NewP256Key());
  CertSpec server_spec;
  server_spec.common_name = "fedml-server";
  server_spec.key = server_key.get();
  server_spec.issuer = ca_cert.get();
  server_spec.issuer_key = ca_key.get();
  server_spec.valid_days = options.valid_days;
  server_spec.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                            {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                            {NID_ext_key_usage, "serverAuth"},
                            {NID_subject_key_identifier, "hash"},
                            {NID_authority_key_identifier, "keyid:always"}};
  server_spec.subject_alt_names = san.get();
  FEDML_ASSIGN_OR_RETURN(X509Ptr server_cert, MakeCertificate(server_spec));
  FEDML_RETURN_IF_ERROR(WriteCertificate(dir / "server.pem", server_cert.get()));
  FEDML_RETURN_IF_ERROR(WriteKey(dir / "server.key", server_key.get()));

  FEDML_RETURN_IF_ERROR(
      WriteFileAtomically((dir / "tokens.txt").string(), token_hashes, kPublicMode));

  // An existing revoked.txt is the operator's and stays as it is.
  const std::string revoked = (dir / "revoked.txt").string();
  const int fd = ::open(revoked.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPublicMode);
  if (fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", revoked);
  }

  FEDML_RETURN_IF_ERROR(WriteCertificate(dir / "ca.pem", ca_cert.get()));
  FEDML_RETURN_IF_ERROR(WriteKey(dir / "ca.key", ca_key.get()));

  // Make the renames durable; a failure here loses nothing that was reported written.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

Result<int> ClientIdFromCommonName(const std::string& common_name) {
  static constexpr std::string_view kPrefix = "client-";
  int id = 0;
  if (common_name.size() <= kPrefix.size() ||
      std::string_view(common_name).substr(0, kPrefix.size()) != kPrefix ||
      !ParseId(std::string_view(common_name).substr(kPrefix.size()), &id)) {
    return Status::InvalidArgument("certificate common name '" + Printable(common_name) +
                                   "' is not of the form 'client-<id>' (id a non-negative "
                                   "decimal integer without leading zeros, e.g. 'client-7')");
  }
  return id;
}

namespace {
// What identifies one version of revoked.txt: re-read when any of it changes.
struct RevocationStamp {
  bool present = false;
  std::uint64_t inode = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const RevocationStamp& o) const {
    return present == o.present && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
  }
};
}  // namespace

struct ClientRegistry::Revocations {
  std::mutex mu;
  bool read = false;  // Refresh has run once
  RevocationStamp stamp;
  std::set<int> ids;
  std::set<std::string> serials;  // lowercase hex, no leading zeros
};

ClientRegistry::ClientRegistry() : revoked_(std::make_shared<Revocations>()) {}

Result<ClientRegistry> ClientRegistry::Load(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::NotFound("certs folder '" + dir +
                            "' is not a directory; give the folder `fedml certs` wrote");
  }
  ClientRegistry registry;
  registry.dir_ = dir;

  const std::string tokens_path = (fs::path(dir) / "tokens.txt").string();
  std::string text;
  bool present = false;
  FEDML_RETURN_IF_ERROR(ReadOptionalFile(tokens_path, &text, &present));
  if (present) {
    std::map<int, int> id_line;  // id -> line it is on
    const std::vector<std::string> lines = Lines(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const int line_no = static_cast<int>(i) + 1;
      const std::string where = tokens_path + ":" + std::to_string(line_no) + ": ";
      const std::vector<std::string> fields = Fields(lines[i]);
      if (fields.empty()) continue;
      if (fields.size() != 2) {
        return Status::InvalidArgument(where +
                                       "expected '<client id> <sha256 hex of the token>', got " +
                                       std::to_string(fields.size()) + " field(s)");
      }
      TokenEntry entry{};
      if (!ParseId(fields[0], &entry.id)) {
        return Status::InvalidArgument(where + "client id " + DescribeField(fields[0]) +
                                       " is not a non-negative decimal integer");
      }
      // Either case of digit is accepted here (a hand-edited tokens.txt), though `fedml certs`
      // writes lowercase.
      const std::string& hex = fields[1];
      Result<Bytes> digest = HexDecode(hex, HexCase::kAnyCase);
      if (!digest.ok() || digest->size() != entry.sha256.size()) {
        return Status::InvalidArgument(where + "the token hash of client " +
                                       std::to_string(entry.id) + " must be 64 hex digits (got " +
                                       std::to_string(hex.size()) + " characters)");
      }
      std::copy(digest->begin(), digest->end(), entry.sha256.begin());
      const auto [it, inserted] = id_line.emplace(entry.id, line_no);
      if (!inserted) {
        return Status::InvalidArgument(where + "client " + std::to_string(entry.id) +
                                       " is listed twice (also on line " +
                                       std::to_string(it->second) + "); one line per client");
      }
      for (const TokenEntry& other : registry.tokens_) {
        if (other.sha256 == entry.sha256) {
          return Status::InvalidArgument(where + "client " + std::to_string(entry.id) +
                                         " has the same token hash as client " +
                                         std::to_string(other.id) + "; every token must differ");
        }
      }
      registry.tokens_.push_back(entry);
      registry.token_ids_.insert(entry.id);
    }
  }

  FEDML_RETURN_IF_ERROR(registry.Refresh());
  return registry;
}

Status ClientRegistry::Refresh() const {
  const std::string path = (fs::path(dir_) / "revoked.txt").string();
  struct stat st {};
  RevocationStamp stamp;
  if (::stat(path.c_str(), &st) == 0) {
    stamp = {true, static_cast<std::uint64_t>(st.st_ino), static_cast<std::int64_t>(st.st_size),
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  } else if (errno != ENOENT) {
    return ErrnoStatus(errno, "cannot read", path);
  }
  {
    std::lock_guard<std::mutex> lock(revoked_->mu);
    if (revoked_->read && revoked_->stamp == stamp) return Status::Ok();
    revoked_->read = true;
    revoked_->stamp = stamp;  // a bad file is reported once per change, not on every check
  }
  std::string text;
  bool present = false;
  FEDML_RETURN_IF_ERROR(ReadOptionalFile(path, &text, &present));
  std::set<int> ids;
  std::set<std::string> serials;
  const std::vector<std::string> lines = Lines(text);
  for (std::size_t i = 0; i < lines.size() && present; ++i) {
    const std::vector<std::string> fields = Fields(lines[i]);
    if (fields.empty()) continue;
    const std::string where = path + ":" + std::to_string(i + 1) + ": ";
    if (fields.size() != 1) {
      return Status::InvalidArgument(where + "expected one entry per line, got " +
                                     std::to_string(fields.size()) +
                                     " fields; '#' starts a comment");
    }
    const std::string& f = fields[0];
    int id = 0;
    if (f.rfind("serial:", 0) == 0) {
      std::string hex = f.substr(7);
      for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const bool is_hex = !hex.empty() && hex.size() <= 64 &&
                          hex.find_first_not_of("0123456789abcdef") == std::string::npos;
      if (!is_hex) {
        return Status::InvalidArgument(
            where + "a serial must be 1 to 64 hex digits after 'serial:', got " + DescribeField(f));
      }
      hex.erase(0, std::min(hex.find_first_not_of('0'), hex.size() - 1));
      serials.insert(hex);
    } else if (ParseId(f, &id)) {
      ids.insert(id);
    } else {
      return Status::InvalidArgument(where +
                                     "expected a client id (a non-negative decimal integer) or "
                                     "'serial:<hex>', got " +
                                     DescribeField(f) + "; '#' starts a comment");
    }
  }
  std::lock_guard<std::mutex> lock(revoked_->mu);
  revoked_->ids = std::move(ids);
  revoked_->serials = std::move(serials);
  return Status::Ok();
}

Result<int> ClientRegistry::IdentifyByToken(const std::string& token) const {
  FEDML_ASSIGN_OR_RETURN(const auto digest, Sha256(token.data(), token.size()));
  // Every entry is compared, and the match is selected without a branch, so that the time taken
  // does not say which entry (if any) matched.
  unsigned int found = ~0u;
  for (const TokenEntry& entry : tokens_) {
    const unsigned int equal = static_cast<unsigned int>(
        CRYPTO_memcmp(entry.sha256.data(), digest.data(), digest.size()) == 0);
    const unsigned int mask = 0u - equal;
    found = (found & ~mask) | (static_cast<unsigned int>(entry.id) & mask);
  }
  if (found == ~0u) return Status::PermissionDenied("unknown client token");
  const int id = static_cast<int>(found);
  FEDML_RETURN_IF_ERROR(Revoked(id));
  return id;
}

Status ClientRegistry::CheckAllowed(int id, const std::string& serial_hex) const {
  if (id < 0) {
    return Status::PermissionDenied("client id " + std::to_string(id) +
                                    " is not valid: client ids are non-negative");
  }
  if (!token_ids_.empty() && token_ids_.count(id) == 0) {
    return Status::PermissionDenied("client " + std::to_string(id) + " is not listed in " +
                                    (fs::path(dir_) / "tokens.txt").string());
  }
  FEDML_RETURN_IF_ERROR(Revoked(id));
  if (!serial_hex.empty()) {
    std::lock_guard<std::mutex> lock(revoked_->mu);
    if (revoked_->serials.count(serial_hex) != 0) {
      return Status::PermissionDenied("client " + std::to_string(id) + "'s certificate (serial " +
                                      serial_hex + ") is revoked (listed in " +
                                      (fs::path(dir_) / "revoked.txt").string() + ")");
    }
  }
  return Status::Ok();
}

Status ClientRegistry::Revoked(int id) const {
  if (!IsRevoked(id)) return Status::Ok();
  return Status::PermissionDenied("client " + std::to_string(id) + " is revoked (listed in " +
                                  (fs::path(dir_) / "revoked.txt").string() + ")");
}

bool ClientRegistry::IsRevoked(int id) const {
  std::lock_guard<std::mutex> lock(revoked_->mu);
  return revoked_->ids.count(id) != 0;
}

Result<std::string> CertificateSerialHex(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    return Status::InvalidArgument("no PEM certificate to read a serial number from");
  }
  BnPtr bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert.get()), nullptr));
  char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
  if (hex == nullptr) return OpensslError("cannot read the certificate's serial number");
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  out.erase(0, std::min(out.find_first_not_of('0'), out.size() - 1));
  return out;
}

Result<std::string> ReadTextFile(const std::string& path, bool trim) {
  std::string text;
  int err = 0;
  if (!ReadWholeFile(path, &text, &err)) {
    return Status::NotFound("cannot read '" + path + "': " + std::strerror(err));
  }
  if (trim) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  }
  return text;
}

Result<std::uint64_t> SecureRandomU64() {
  FEDML_ASSIGN_OR_RETURN(Bytes bytes, SecureRandomBytes(8));
  std::uint64_t v = 0;
  for (std::uint8_t b : bytes) v = (v << 8) | b;
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return v;
}

}  // namespace fedml::core::security
