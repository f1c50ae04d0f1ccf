#include "fedml/core/security/ledger_heads.h"

#include <charconv>

#include "fedml/core/bytes.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/signatures.h"
#include "fedml/core/text.h"

namespace fedml::core::security {
namespace {

constexpr std::string_view kHeadDomain = "fedml-ledger-head-v1";

// What a head's signature covers.
Bytes SignedBytes(std::int64_t seq, const std::string& hash) {
  ByteWriter w;
  w.Raw(kHeadDomain).U64(static_cast<std::uint64_t>(seq)).Raw(hash);
  return w.Take();
}

Status CheckHead(std::int64_t seq, const std::string& hash) {
  if (seq < 0) return Status::InvalidArgument("a ledger head's seq must be >= 0");
  if (!IsSha256Hex(hash)) {
    return Status::InvalidArgument("a ledger head's hash must be 64 lowercase hex digits");
  }
  return Status::Ok();
}

}  // namespace

Result<SignedLedgerHead> SignLedgerHead(std::int64_t seq, const std::string& hash,
                                        const std::string& key_pem) {
  FEDML_RETURN_IF_ERROR(CheckHead(seq, hash));
  auto key = SigningKey::FromPem(key_pem);
  if (!key.ok()) {
    return Status::InvalidArgument("the ledger signing key is not a PEM private key");
  }
  auto signature = key->Sign(SignedBytes(seq, hash));
  if (!signature.ok()) return signature.status().WithContext("the ledger head");
  return SignedLedgerHead{seq, hash, HexEncode(*signature)};
}

Status VerifyLedgerHead(const SignedLedgerHead& head, const std::string& cert_pem) {
  FEDML_RETURN_IF_ERROR(CheckHead(head.seq, head.hash));
  auto signature = HexDecode(head.signature, HexCase::kLowerOnly);
  if (!signature.ok() || signature->empty()) {
    return Status::InvalidArgument("a ledger head's signature must be lowercase hex");
  }
  auto key = VerifyingKey::FromCertificate(cert_pem);
  if (!key.ok()) {
    return Status::InvalidArgument("the server certificate is not a PEM certificate");
  }
  const Status verified = key->Verify(SignedBytes(head.seq, head.hash), *signature);
  if (verified.code() == StatusCode::kPermissionDenied ||
      verified.code() == StatusCode::kInvalidArgument) {
    return Status::PermissionDenied("the head of record " + std::to_string(head.seq) +
                                    " is not signed by this server");
  }
  return verified;
}

std::string LedgerHeadLine(const SignedLedgerHead& head) {
  return std::to_string(head.seq) + " " + head.hash + " " + head.signature;
}

Result<SignedLedgerHead> ParseLedgerHeadLine(std::string_view line) {
  const std::vector<std::string> fields = SplitTrimmed(std::string(line), ' ');
  SignedLedgerHead head;
  const bool three = fields.size() == 3;
  const auto parsed =
      three ? std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), head.seq)
            : std::from_chars_result{nullptr, std::errc::invalid_argument};
  if (!three || parsed.ec != std::errc() || parsed.ptr != fields[0].data() + fields[0].size()) {
    return Status::InvalidArgument("expected '<seq> <hash> <signature>'");
  }
  head.hash = fields[1];
  head.signature = fields[2];
  FEDML_RETURN_IF_ERROR(CheckHead(head.seq, head.hash));
  return head;
}

Status CheckLedgerHeads(const std::vector<LedgerRecord>& records, std::string_view heads_text,
                        const std::string& heads_name, const std::string& cert_pem) {
  const std::vector<std::string> lines = SplitTrimmed(std::string(heads_text), '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string line = Trim(lines[i].substr(0, lines[i].find('#')));
    if (line.empty()) continue;
    const std::string where = heads_name + ":" + std::to_string(i + 1) + ": ";
    auto head = ParseLedgerHeadLine(line);
    if (!head.ok()) return head.status().WithContext(where.substr(0, where.size() - 2));
    const Status signed_by_server = VerifyLedgerHead(*head, cert_pem);
    if (!signed_by_server.ok()) {
      return signed_by_server.WithContext(where.substr(0, where.size() - 2));
    }
    const auto seq = static_cast<std::size_t>(head->seq);
    if (seq >= records.size()) {
      return Status::DataLoss(where + "the ledger ends at record " +
                              std::to_string(static_cast<std::int64_t>(records.size()) - 1) +
                              " but the server signed record " + std::to_string(head->seq) +
                              ": records were dropped from its end");
    }
    if (records[seq].hash != head->hash) {
      return Status::DataLoss(where + "record " + std::to_string(head->seq) +
                              " was rewritten: the server signed hash " + head->hash +
                              " for it, the ledger holds " + records[seq].hash);
    }
  }
  return Status::Ok();
}

}  // namespace fedml::core::security
