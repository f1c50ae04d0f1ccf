// TLS certificates and client credentials: what GenerateCredentials writes, checked with OpenSSL,
// and how ClientRegistry authenticates tokens.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fedml/core/security/credentials.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using fedml::StatusCode;
using namespace fedml::core::security;

namespace {

// A fresh directory, removed at scope exit.
class ScratchDir : public fedml::testing::TempDir {
 public:
  ScratchDir() : TempDir("credentials", fs::path(FEDML_BINARY_DIR) / "tests") {}
};

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr LoadCert(const std::string& path) {
  auto pem = ReadTextFile(path);
  REQUIRE(pem.ok());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem->data(), (int)pem->size()),
                                                &BIO_free);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(cert != nullptr);
  return cert;
}

PkeyPtr LoadKey(const std::string& path) {
  auto pem = ReadTextFile(path);
  REQUIRE(pem.ok());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem->data(), (int)pem->size()),
                                                &BIO_free);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(key != nullptr);
  return key;
}

// X509_verify_cert of `cert` against a store holding only `ca`, for TLS `purpose`
// (X509_PURPOSE_SSL_SERVER / _CLIENT, which also checks the extendedKeyUsage) or 0 for any.
// Returns X509_V_OK or the verification error.
int Verify(X509* ca, X509* cert, int purpose = 0) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  REQUIRE(X509_STORE_add_cert(store.get(), ca) == 1);
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) == 1);
  if (purpose != 0) REQUIRE(X509_STORE_CTX_set_purpose(ctx.get(), purpose) == 1);
  const int ok = X509_verify_cert(ctx.get());
  const int err = X509_STORE_CTX_get_error(ctx.get());
  if (ok == 1) REQUIRE(err == X509_V_OK);
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

std::string CommonName(X509* cert) {
  char buf[256] = {};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  REQUIRE(n > 0);
  return std::string(buf, static_cast<std::size_t>(n));
}

int FileMode(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

std::string Token(const ScratchDir& dir, int id) {
  auto token = ReadTextFile(dir.File("client-" + std::to_string(id) + ".token"), /*trim=*/true);
  REQUIRE(token.ok());
  return *token;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

void Generate(const ScratchDir& dir, int clients) {
  CertOptions options;
  options.out_dir = dir.path();
  options.clients = clients;
  const fedml::Status st = GenerateCredentials(options);
  INFO(st.ToString());
  REQUIRE(st.ok());
}

}  // namespace

TEST_CASE("GenerateCredentials writes a CA, a server and clients that chain to it",
          "[credentials]") {
  ScratchDir dir;
  Generate(dir, 3);

  for (const char* name : {"ca.pem", "ca.key", "server.pem", "server.key", "tokens.txt",
                           "revoked.txt", "client-0.pem", "client-2.key", "client-2.token"}) {
    INFO(name);
    CHECK(fs::is_regular_file(dir.File(name)));
  }
  CHECK_FALSE(fs::exists(dir.File("client-3.pem")));
  CHECK(fs::file_size(dir.File("revoked.txt")) == 0);
  // No temporary file is left behind.
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  }

  X509Ptr ca = LoadCert(dir.File("ca.pem"));
  X509Ptr server = LoadCert(dir.File("server.pem"));
  X509Ptr client1 = LoadCert(dir.File("client-1.pem"));

  SECTION("every certificate chains to the CA, for its TLS role") {
    CHECK(Verify(ca.get(), ca.get()) == X509_V_OK);
    CHECK(Verify(ca.get(), server.get(), X509_PURPOSE_SSL_SERVER) == X509_V_OK);
    CHECK(Verify(ca.get(), client1.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
    for (int id : {0, 2}) {
      X509Ptr c = LoadCert(dir.File("client-" + std::to_string(id) + ".pem"));
      CHECK(Verify(ca.get(), c.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
    }
    // The EKUs keep the roles apart: a client certificate cannot serve, nor the server's be a
    // client's.
    CHECK(Verify(ca.get(), client1.get(), X509_PURPOSE_SSL_SERVER) == X509_V_ERR_INVALID_PURPOSE);
    CHECK(Verify(ca.get(), server.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_ERR_INVALID_PURPOSE);
  }

  SECTION("names, extensions and signatures are as specified") {
    CHECK(CommonName(ca.get()) == "fedml-ca");
    CHECK(CommonName(server.get()) == "fedml-server");
    CHECK(CommonName(client1.get()) == "client-1");
    auto id = ClientIdFromCommonName(CommonName(client1.get()));
    REQUIRE(id.ok());
    CHECK(*id == 1);

    for (X509* c : {ca.get(), server.get(), client1.get()}) {
      CHECK(X509_get_version(c) == X509_VERSION_3);
      CHECK(X509_get_signature_nid(c) == NID_ecdsa_with_SHA256);
      std::unique_ptr<BIGNUM, BnFree> serial(
          ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr));
      REQUIRE(serial != nullptr);
      CHECK_FALSE(BN_is_negative(serial.get()));
      CHECK_FALSE(BN_is_zero(serial.get()));
      CHECK(BN_num_bits(serial.get()) <= 128);
      CHECK(BN_num_bits(serial.get()) > 64);  // random 128 bits: below 2^64 w.p. 2^-64
    }
    // Serials differ.
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(server.get()),
                           X509_get0_serialNumber(client1.get())) != 0);

    // CA: basicConstraints CA:TRUE (critical), keyCertSign + cRLSign, a subject key id.
    CHECK(X509_check_ca(ca.get()) == 1);
    CHECK(X509_get_ext_by_critical(ca.get(), 1, -1) >= 0);
    const int bc_index = X509_get_ext_by_NID(ca.get(), NID_basic_constraints, -1);
    REQUIRE(bc_index >= 0);
    CHECK(X509_EXTENSION_get_critical(X509_get_ext(ca.get(), bc_index)) == 1);
    CHECK(X509_get_key_usage(ca.get()) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    CHECK(X509_get0_subject_key_id(ca.get()) != nullptr);

    // Server: not a CA, serverAuth only, digitalSignature + keyEncipherment, AKI = CA's SKI.
    CHECK(X509_check_ca(server.get()) == 0);
    CHECK(X509_get_extended_key_usage(server.get()) == XKU_SSL_SERVER);
    CHECK(X509_get_key_usage(server.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    REQUIRE(X509_get0_authority_key_id(server.get()) != nullptr);
    CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(server.get()),
                                X509_get0_subject_key_id(ca.get())) == 0);

    // Client: not a CA, clientAuth only.
    CHECK(X509_check_ca(client1.get()) == 0);
    CHECK(X509_get_extended_key_usage(client1.get()) == XKU_SSL_CLIENT);
  }

  SECTION("the server's subjectAltName holds DNS:localhost and IP:127.0.0.1") {
    std::unique_ptr<GENERAL_NAMES, NamesFree> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(server.get(), NID_subject_alt_name, nullptr, nullptr)));
    REQUIRE(names != nullptr);
    std::set<std::string> dns, ips;
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
      if (gen->type == GEN_DNS) {
        dns.insert(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gen->d.dNSName)),
                               ASN1_STRING_length(gen->d.dNSName)));
      } else if (gen->type == GEN_IPADD) {
        const unsigned char* b = ASN1_STRING_get0_data(gen->d.iPAddress);
        REQUIRE(ASN1_STRING_length(gen->d.iPAddress) == 4);
        ips.insert(std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) +
                   "." + std::to_string(b[3]));
      }
    }
    CHECK(dns == std::set<std::string>{"localhost"});
    CHECK(ips == std::set<std::string>{"127.0.0.1"});
    CHECK(X509_check_host(server.get(), "localhost", 0, 0, nullptr) == 1);
    CHECK(X509_check_ip_asc(server.get(), "127.0.0.1", 0) == 1);
    CHECK(X509_check_host(server.get(), "example.com", 0, 0, nullptr) == 0);
  }

  SECTION("keys are EC P-256, match their certificates, and are mode 0600") {
    const std::vector<std::pair<std::string, X509*>> pairs = {
        {"ca", ca.get()}, {"server", server.get()}, {"client-1", client1.get()}};
    for (const auto& [name, cert] : pairs) {
      INFO(name);
      PkeyPtr key = LoadKey(dir.File(name + ".key"));
      CHECK(EVP_PKEY_is_a(key.get(), "EC"));
      char group[64] = {};
      REQUIRE(EVP_PKEY_get_group_name(key.get(), group, sizeof group, nullptr) == 1);
      CHECK(std::string(group) == "prime256v1");
      CHECK(X509_check_private_key(cert, key.get()) == 1);
      CHECK(FileMode(dir.File(name + ".key")) == 0600);
    }
    for (int id = 0; id < 3; ++id) {
      CHECK(FileMode(dir.File("client-" + std::to_string(id) + ".key")) == 0600);
      CHECK(FileMode(dir.File("client-" + std::to_string(id) + ".token")) == 0600);
    }
    // The server's key does not match the client's certificate.
    PkeyPtr server_key = LoadKey(dir.File("server.key"));
    CHECK(X509_check_private_key(client1.get(), server_key.get()) != 1);
  }

  SECTION("a certificate from an independent CA does not verify against this CA") {
    ScratchDir other;
    Generate(other, 2);
    X509Ptr other_ca = LoadCert(other.File("ca.pem"));
    X509Ptr other_server = LoadCert(other.File("server.pem"));
    X509Ptr other_client = LoadCert(other.File("client-1.pem"));
    // Same names, different keys: nothing verifies across the two.
    CHECK(CommonName(other_client.get()) == "client-1");
    CHECK(Verify(ca.get(), other_client.get()) != X509_V_OK);
    CHECK(Verify(ca.get(), other_server.get()) != X509_V_OK);
    CHECK(Verify(ca.get(), other_ca.get()) != X509_V_OK);
    CHECK(Verify(other_ca.get(), client1.get()) != X509_V_OK);
    CHECK(Verify(other_ca.get(), other_client.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  }
}

TEST_CASE("tokens are random hex, stored hashed, and identify their client", "[credentials]") {
  ScratchDir dir;
  Generate(dir, 3);

  std::set<std::string> tokens;
  for (int id = 0; id < 3; ++id) {
    const std::string token = Token(dir, id);
    CHECK(token.size() == 64);
    CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
    tokens.insert(token);
  }
  CHECK(tokens.size() == 3);
  // tokens.txt holds hashes, never a token itself.
  auto hashes = ReadTextFile(dir.File("tokens.txt"));
  REQUIRE(hashes.ok());
  for (const std::string& token : tokens) CHECK(hashes->find(token) == std::string::npos);

  auto registry = ClientRegistry::Load(dir.path());
  INFO(registry.status().ToString());
  REQUIRE(registry.ok());
  CHECK(registry->token_count() == 3);

  const std::string token2 = Token(dir, 2);
  auto id = registry->IdentifyByToken(token2);
  REQUIRE(id.ok());
  CHECK(*id == 2);
  auto id0 = registry->IdentifyByToken(Token(dir, 0));
  REQUIRE(id0.ok());
  CHECK(*id0 == 0);

  auto wrong = registry->IdentifyByToken(std::string(64, 'a'));
  CHECK(wrong.status().code() == StatusCode::kPermissionDenied);
  CHECK(wrong.status().message() == "unknown client token");
  std::string changed = token2;
  changed[17] = changed[17] == '0' ? '1' : '0';
  auto one_off = registry->IdentifyByToken(changed);
  CHECK(one_off.status().code() == StatusCode::kPermissionDenied);
  CHECK(one_off.status().message() == "unknown client token");
  CHECK(registry->IdentifyByToken(token2 + "\n").status().code() == StatusCode::kPermissionDenied);
  CHECK(registry->IdentifyByToken("").status().code() == StatusCode::kPermissionDenied);

  CHECK(registry->CheckAllowed(0).ok());
  CHECK(registry->CheckAllowed(2).ok());
  const fedml::Status unlisted = registry->CheckAllowed(3);
  CHECK(unlisted.code() == StatusCode::kPermissionDenied);
  CHECK(unlisted.message().find("client 3") != std::string::npos);
  CHECK(registry->CheckAllowed(-1).code() == StatusCode::kPermissionDenied);

  SECTION("a revoked client is refused by token and by id") {
    WriteFile(dir.File("revoked.txt"), "1\n");
    auto revoked = ClientRegistry::Load(dir.path());
    REQUIRE(revoked.ok());
    CHECK(revoked->IsRevoked(1));
    CHECK_FALSE(revoked->IsRevoked(2));
    auto by_token = revoked->IdentifyByToken(Token(dir, 1));
    CHECK(by_token.status().code() == StatusCode::kPermissionDenied);
    CHECK(by_token.status().message().find("client 1 is revoked") != std::string::npos);
    const fedml::Status by_id = revoked->CheckAllowed(1);
    CHECK(by_id.code() == StatusCode::kPermissionDenied);
    CHECK(by_id.message().find("revoked") != std::string::npos);
    CHECK(by_id.message().find("client 1") != std::string::npos);
    // The others are unaffected.
    auto other = revoked->IdentifyByToken(token2);
    REQUIRE(other.ok());
    CHECK(*other == 2);
    CHECK(revoked->CheckAllowed(0).ok());
  }

  SECTION("revoked.txt allows comments and blank lines") {
    WriteFile(dir.File("revoked.txt"), "# lost laptop\n\n  0  # since March\n2\n");
    auto revoked = ClientRegistry::Load(dir.path());
    REQUIRE(revoked.ok());
    CHECK(revoked->IsRevoked(0));
    CHECK_FALSE(revoked->IsRevoked(1));
    CHECK(revoked->IsRevoked(2));
  }

  SECTION("a malformed revoked.txt line is an error naming file:line") {
    WriteFile(dir.File("revoked.txt"), "0\nclient-1\n");
    auto bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(bad.status().message().find(dir.File("revoked.txt") + ":2:") != std::string::npos);
  }

  SECTION("a malformed tokens.txt line is an error naming file:line") {
    auto lines = ReadTextFile(dir.File("tokens.txt"));
    REQUIRE(lines.ok());
    // Line 1 is the header, lines 2-4 the clients; line 5 is broken.
    WriteFile(dir.File("tokens.txt"), *lines + "7 not-a-hash\n");
    auto bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(bad.status().message().find(dir.File("tokens.txt") + ":5:") != std::string::npos);
    CHECK(bad.status().message().find(
              "the token hash of client 7 must be 64 hex digits (got 10 characters)") !=
          std::string::npos);
    // 64 characters, one of them not a hex digit.
    WriteFile(dir.File("tokens.txt"), "7 " + std::string(63, 'a') + "g\n");
    bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().message().find("must be 64 hex digits (got 64 characters)") !=
          std::string::npos);

    WriteFile(dir.File("tokens.txt"), "x " + std::string(64, 'a') + "\n");
    bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().message().find(dir.File("tokens.txt") + ":1:") != std::string::npos);

    // A token pasted in by mistake is refused without being quoted.
    WriteFile(dir.File("tokens.txt"), "\n" + token2 + "\n");
    bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().message().find(dir.File("tokens.txt") + ":2:") != std::string::npos);
    CHECK(bad.status().message().find(token2) == std::string::npos);

    // Duplicate ids and duplicate hashes are refused.
    const std::string h1(64, 'b'), h2(64, 'c');
    WriteFile(dir.File("tokens.txt"), "0 " + h1 + "\n0 " + h2 + "\n");
    bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().message().find(dir.File("tokens.txt") + ":2:") != std::string::npos);
    WriteFile(dir.File("tokens.txt"), "0 " + h1 + "\n1 " + h1 + "\n");
    bad = ClientRegistry::Load(dir.path());
    CHECK(bad.status().message().find(dir.File("tokens.txt") + ":2:") != std::string::npos);
  }

  SECTION("tokens.txt hashes may be written in uppercase") {
    auto lines = ReadTextFile(dir.File("tokens.txt"));
    REQUIRE(lines.ok());
    std::string upper = *lines;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    REQUIRE(upper != *lines);
    WriteFile(dir.File("tokens.txt"), upper);
    auto loaded = ClientRegistry::Load(dir.path());
    INFO(loaded.status().ToString());
    REQUIRE(loaded.ok());
    auto by_token = loaded->IdentifyByToken(token2);
    REQUIRE(by_token.ok());
    CHECK(*by_token == 2);
  }

  SECTION("missing tokens.txt and revoked.txt mean no tokens and none revoked") {
    fs::remove(dir.File("tokens.txt"));
    fs::remove(dir.File("revoked.txt"));
    auto empty = ClientRegistry::Load(dir.path());
    REQUIRE(empty.ok());
    CHECK(empty->token_count() == 0);
    CHECK(empty->IdentifyByToken(token2).status().code() == StatusCode::kPermissionDenied);
    CHECK(empty->CheckAllowed(5).ok());
    CHECK(empty->CheckAllowed(-1).code() == StatusCode::kPermissionDenied);
    CHECK(ClientRegistry::Load(dir.File("no-such-dir")).status().code() == StatusCode::kNotFound);
  }
}

TEST_CASE("GenerateCredentials refuses to replace an existing CA", "[credentials]") {
  ScratchDir dir;
  Generate(dir, 1);
  auto ca_key = ReadTextFile(dir.File("ca.key"));
  auto ca_pem = ReadTextFile(dir.File("ca.pem"));
  auto token = ReadTextFile(dir.File("client-0.token"));
  REQUIRE(ca_key.ok());
  WriteFile(dir.File("revoked.txt"), "0\n");

  CertOptions options;
  options.out_dir = dir.path();
  options.clients = 1;
  const fedml::Status again = GenerateCredentials(options);
  CHECK(again.code() == StatusCode::kFailedPrecondition);
  CHECK(again.message().find("ca.key") != std::string::npos);
  CHECK(*ReadTextFile(dir.File("ca.key")) == *ca_key);
  CHECK(*ReadTextFile(dir.File("ca.pem")) == *ca_pem);
  CHECK(*ReadTextFile(dir.File("client-0.token")) == *token);

  // With overwrite everything is new, except the operator's revoked.txt.
  REQUIRE(GenerateCredentials(options, /*overwrite=*/true).ok());
  CHECK(*ReadTextFile(dir.File("ca.key")) != *ca_key);
  CHECK(*ReadTextFile(dir.File("client-0.token")) != *token);
  CHECK(*ReadTextFile(dir.File("revoked.txt")) == "0\n");
  CHECK(FileMode(dir.File("ca.key")) == 0600);
  X509Ptr ca = LoadCert(dir.File("ca.pem"));
  X509Ptr client = LoadCert(dir.File("client-0.pem"));
  CHECK(Verify(ca.get(), client.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
}

TEST_CASE("GenerateCredentials validates its options", "[credentials]") {
  ScratchDir dir;
  CertOptions options;
  options.out_dir = dir.File("sub/dir");  // parents are created
  options.clients = 0;
  options.server_names = {"fl.example.com", "::1", "10.0.0.7", "*.edge.example.com"};
  REQUIRE(GenerateCredentials(options).ok());
  X509Ptr server = LoadCert(dir.File("sub/dir/server.pem"));
  CHECK(X509_check_host(server.get(), "fl.example.com", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(server.get(), "a.edge.example.com", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(server.get(), "::1", 0) == 1);
  CHECK(X509_check_ip_asc(server.get(), "10.0.0.7", 0) == 1);
  CHECK(X509_check_ip_asc(server.get(), "127.0.0.1", 0) == 0);

  auto fails = [&](CertOptions o, const std::string& needle) {
    o.out_dir = dir.File("bad");
    const fedml::Status st = GenerateCredentials(o);
    INFO(st.ToString());
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find(needle) != std::string::npos);
    CHECK_FALSE(fs::exists(dir.File("bad/ca.key")));
  };
  CertOptions o;
  o.clients = -1;
  fails(o, "clients");
  o = CertOptions{};
  o.valid_days = 0;
  fails(o, "valid_days");
  o = CertOptions{};
  o.server_names = {};
  fails(o, "server_names");
  o = CertOptions{};
  o.server_names = {"localhost", "bad name,DNS:evil"};
  fails(o, "bad name");
  o = CertOptions{};
  o.out_dir = "";
  CHECK(GenerateCredentials(o).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("ClientIdFromCommonName accepts exactly client-<id>", "[credentials]") {
  auto id = ClientIdFromCommonName("client-12");
  REQUIRE(id.ok());
  CHECK(*id == 12);
  auto zero = ClientIdFromCommonName("client-0");
  REQUIRE(zero.ok());
  CHECK(*zero == 0);
  for (const char* bad : {"client-", "server", "client-1x", "client--1", "client-+1", "client-01",
                          "Client-1", " client-1", "client-99999999999", "fedml-server", ""}) {
    INFO(bad);
    auto r = ClientIdFromCommonName(bad);
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("client-<id>") != std::string::npos);
  }
  CHECK(ClientIdFromCommonName("server").status().message().find("'server'") != std::string::npos);
}

TEST_CASE("ReadTextFile reads whole files and names the missing ones", "[credentials]") {
  ScratchDir dir;
  WriteFile(dir.File("a.token"), "abc \n\n");
  auto raw = ReadTextFile(dir.File("a.token"));
  REQUIRE(raw.ok());
  CHECK(*raw == "abc \n\n");
  auto trimmed = ReadTextFile(dir.File("a.token"), /*trim=*/true);
  REQUIRE(trimmed.ok());
  CHECK(*trimmed == "abc");
  auto missing = ReadTextFile(dir.File("nope.pem"));
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message().find(dir.File("nope.pem")) != std::string::npos);
}
