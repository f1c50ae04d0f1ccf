// Red team, attack 8a of docs/security.md: a client the operator revokes keeps working. The
// revocation list was read once at start and named client ids only, so a client whose key leaked
// stayed in until the server restarted, and revoking its id also shut out the re-issued
// certificate of the honest owner. Over real gRPC with mutual TLS: the operator edits revoked.txt
// while the server runs; the revoked certificate is refused at its next call, the rest go on.
#include <catch2/catch.hpp>

#include <cctype>
#include <fstream>

#include "fedml/core/comm/grpc.h"
#include "fedml/core/security/credentials.h"
#include "mtls_harness.h"

using namespace fedml;
namespace sec = fedml::core::security;

namespace {

Result<std::unique_ptr<core::Communicator>> Connect(const fedml::testing::TempDir& dir, int port,
                                                    int id) {
  core::grpc_comm::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(port);
  co.client_id = id;
  co.security = {false, true, dir.File("certs")};
  co.connect_timeout = std::chrono::seconds(20);
  return core::grpc_comm::ConnectClient(co);
}

void AppendToRevoked(const fedml::testing::TempDir& dir, const std::string& text) {
  std::ofstream out(dir.File("certs/revoked.txt"), std::ios::app);
  out << text;
  REQUIRE(out.good());
}

}  // namespace

TEST_CASE("a certificate revoked while the server runs is refused at its next call",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_revocation");
  fedml::testing::MakeCredentials(dir, 3);
  auto server = fedml::testing::StartMtlsServer(dir, 3);
  const int port = server->bound_port();
  auto client0 = Connect(dir, port, 0);
  auto client1 = Connect(dir, port, 1);
  REQUIRE(client0.ok());
  REQUIRE(client1.ok());

  // Client 1's certificate leaked: the operator revokes that certificate by its serial (upper
  // case, as `openssl x509 -noout -serial` prints it), and client 2 by its id.
  auto pem = sec::ReadTextFile(dir.File("certs/client-1.pem"));
  REQUIRE(pem.ok());
  auto serial = sec::CertificateSerialHex(*pem);
  REQUIRE(serial.ok());
  std::string upper = *serial;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  AppendToRevoked(dir, "serial:" + upper + "  # leaked\n2\n");

  // The connected holder of the revoked certificate is cut off at its next call.
  auto cut = (*client1)->Recv(0, core::DeadlineAfter(std::chrono::seconds(20)));
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.status().message().find("revoked") != std::string::npos);
  // It cannot come back, and neither can the revoked id.
  auto again = Connect(dir, port, 1);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message().find("serial " + *serial) != std::string::npos);
  auto revoked_id = Connect(dir, port, 2);
  REQUIRE_FALSE(revoked_id.ok());
  CHECK(revoked_id.status().message().find("client 2 is revoked") != std::string::npos);

  // A damaged edit leaves the previous list in force (fail closed for what was revoked).
  AppendToRevoked(dir, "not-an-id\n");
  auto still = Connect(dir, port, 2);
  REQUIRE_FALSE(still.ok());
  CHECK(still.status().message().find("client 2 is revoked") != std::string::npos);

  // Client 0 is served throughout.
  REQUIRE(server->Send(1, {1, 2, 3}).ok());
  auto got = (*client0)->Recv(0, core::DeadlineAfter(std::chrono::seconds(20)));
  REQUIRE(got.ok());
  CHECK(got->payload == std::vector<std::uint8_t>{1, 2, 3});
}
