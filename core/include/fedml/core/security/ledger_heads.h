// Signed ledger heads: evidence that the operator did not rewrite the ledger (ledger.h). The hash
// chain alone is unkeyed, so whoever holds the file can regenerate all of it consistently. After
// every record the server signs the record's hash with its TLS key and hands the signed head to
// the round's clients with their next task; each keeps the heads it was given. A later ledger that
// does not hold, at a kept head's seq, the hash the server signed was rewritten, and the server's
// own signature on the kept head proves what it had recorded.
//
// A head is one text line: "<seq> <hash> <signature>", seq decimal, hash the record's 64 lowercase
// hex, signature the lowercase hex DER of an ECDSA (the key of server.pem: P-256) signature with
// SHA-256 over the bytes "fedml-ledger-head-v1" | seq as 8 little-endian bytes | the 64 hash
// characters. A heads file is such lines, one per record, '\n'-ended; blank lines and '#'
// comments are ignored.
//
// Cryptography is OpenSSL 3's (EVP_DigestSign / EVP_DigestVerify); this header includes none of
// it. Every function is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fedml/core/security/ledger.h"
#include "fedml/core/status.h"

namespace fedml::core::security {

struct SignedLedgerHead {
  std::int64_t seq = 0;
  std::string hash;       // 64 lowercase hex
  std::string signature;  // lowercase hex DER
};

/// Signs record `seq`'s `hash` with the PEM private key `key_pem` (the server's server.key).
/// INVALID_ARGUMENT for a seq < 0, a hash not in Sha256Hex's form or a key that does not parse
/// (the key itself never appears in a message); INTERNAL when OpenSSL fails.
Result<SignedLedgerHead> SignLedgerHead(std::int64_t seq, const std::string& hash,
                                        const std::string& key_pem);

/// OK when `head`'s signature verifies under the public key of the PEM certificate `cert_pem`;
/// PERMISSION_DENIED "not signed by this server" otherwise; INVALID_ARGUMENT for a certificate
/// that does not parse or a malformed head.
Status VerifyLedgerHead(const SignedLedgerHead& head, const std::string& cert_pem);

/// The head's line, without '\n'.
std::string LedgerHeadLine(const SignedLedgerHead& head);
/// Parses one line; INVALID_ARGUMENT naming what is wrong.
Result<SignedLedgerHead> ParseLedgerHeadLine(std::string_view line);

/// Checks the heads in `heads_text` (a heads file's contents, called `heads_name` in messages)
/// against `records` (ReadLedger's, verified) and the server certificate: every head must carry
/// the server's signature (PERMISSION_DENIED naming the line otherwise: a head the server did not
/// sign proves nothing), and the ledger must hold every kept head's hash at its seq. DATA_LOSS
/// "record N was rewritten: the server signed hash A for it, the ledger holds B", or "the ledger
/// ends at record N but the server signed record M: records were dropped from its end".
/// INVALID_ARGUMENT naming the line for a malformed one.
Status CheckLedgerHeads(const std::vector<LedgerRecord>& records, std::string_view heads_text,
                        const std::string& heads_name, const std::string& cert_pem);

}  // namespace fedml::core::security
