// Signatures with a deployment's credentials (fedml/core/security/signatures.h): a client key's
// signature verifies under its certificate only and not once altered or truncated; the CA check
// takes only client certificates of this CA and reads the client id from the common name; sizes
// are bounded.
#include <catch2/catch.hpp>

#include "../temp_dir.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/signatures.h"

using namespace fedml::core::security;
using fedml::StatusCode;
using fedml::core::Bytes;

namespace {

std::string Read(const std::string& path) {
  auto text = ReadTextFile(path);
  REQUIRE(text.ok());
  return *text;
}

void MakeCerts(const fedml::testing::TempDir& dir, const std::string& name, int clients) {
  CertOptions o;
  o.out_dir = dir.File(name);
  o.clients = clients;
  REQUIRE(GenerateCredentials(o).ok());
}

}  // namespace

TEST_CASE("a client key's signature verifies under its certificate only", "[signatures]") {
  const fedml::testing::TempDir dir("fedml_signatures");
  MakeCerts(dir, "a", 2);
  auto key = SigningKey::FromPem(Read(dir.File("a/client-0.key")));
  REQUIRE(key.ok());
  auto mine = VerifyingKey::FromCertificate(Read(dir.File("a/client-0.pem")));
  auto other = VerifyingKey::FromCertificate(Read(dir.File("a/client-1.pem")));
  REQUIRE(mine.ok());
  REQUIRE(other.ok());
  const Bytes message = {'h', 'e', 'l', 'l', 'o'};
  auto signature = key->Sign(message);
  REQUIRE(signature.ok());
  CHECK(mine->Verify(message, *signature).ok());
  // Wrong key, wrong message, altered, truncated, empty, oversized.
  CHECK(other->Verify(message, *signature).code() == StatusCode::kPermissionDenied);
  CHECK(mine->Verify(Bytes{'h', 'e', 'l', 'l'}, *signature).code() ==
        StatusCode::kPermissionDenied);
  Bytes altered = *signature;
  altered[altered.size() / 2] ^= 0x01;
  CHECK(mine->Verify(message, altered).code() == StatusCode::kPermissionDenied);
  Bytes truncated(signature->begin(), signature->end() - 1);
  CHECK(mine->Verify(message, truncated).code() == StatusCode::kPermissionDenied);
  CHECK(mine->Verify(message, Bytes{}).code() == StatusCode::kInvalidArgument);
  CHECK(mine->Verify(message, Bytes(kMaxSignatureBytes + 1, 0x30)).code() ==
        StatusCode::kInvalidArgument);
  // Keys that do not parse.
  CHECK(SigningKey::FromPem("not a key").status().code() == StatusCode::kInvalidArgument);
  CHECK(VerifyingKey::FromCertificate("not a cert").status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(SigningKey().Sign(message).status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("the CA check takes this CA's client certificates and names their client",
          "[signatures]") {
  const fedml::testing::TempDir dir("fedml_signatures_ca");
  MakeCerts(dir, "a", 3);
  MakeCerts(dir, "b", 3);
  auto ca = CertificateAuthority::FromPem(Read(dir.File("a/ca.pem")));
  REQUIRE(ca.ok());
  auto client = ca->VerifyClient(Read(dir.File("a/client-2.pem")));
  REQUIRE(client.ok());
  CHECK(client->client_id == 2);
  // Its key is the certificate's.
  auto key = SigningKey::FromPem(Read(dir.File("a/client-2.key")));
  REQUIRE(key.ok());
  const Bytes message = {1, 2, 3};
  auto signature = key->Sign(message);
  REQUIRE(signature.ok());
  CHECK(client->key.Verify(message, *signature).ok());

  // Another CA's client, with the same common name.
  auto foreign = ca->VerifyClient(Read(dir.File("b/client-2.pem")));
  CHECK(foreign.status().code() == StatusCode::kPermissionDenied);
  // The server's certificate (CN fedml-server, serverAuth only) is not a client's.
  CHECK(ca->VerifyClient(Read(dir.File("a/server.pem"))).status().code() ==
        StatusCode::kPermissionDenied);
  // The CA itself is not a client.
  CHECK(ca->VerifyClient(Read(dir.File("a/ca.pem"))).status().code() ==
        StatusCode::kPermissionDenied);
  // Oversized and malformed certificates are refused before parsing.
  std::string big = Read(dir.File("a/client-2.pem"));
  big += std::string(kMaxCertificatePemBytes, '\n');
  auto oversized = ca->VerifyClient(big);
  CHECK(oversized.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(oversized.status().message(), Catch::Matchers::Contains("longer than"));
  CHECK(ca->VerifyClient("garbage").status().code() == StatusCode::kInvalidArgument);
  CHECK(CertificateAuthority::FromPem("garbage").status().code() == StatusCode::kInvalidArgument);
}
