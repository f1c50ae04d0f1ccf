// The contribution ledger as an observer of the rounds (fedml/core/security/ledger.h): the round
// drivers tell it who was asked, each update's outcome and each spot check, and the controller
// appends one hash-chained record per round (asynchronous: per version). Off (every call a no-op)
// without a ledger_file.
//
// Contract: not thread-safe; used on the controller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/security/ledger.h"

namespace fedml::api::server {

class LedgerObserver {
 public:
  /// Opens `file` for appending (creating its folder), verifying what it holds; "" = off. With a
  /// `signing_key` (PEM: the deployed server's TLS key) every record's head is signed
  /// (fedml/core/security/ledger_heads.h), appended to `file`.heads and offered to the clients
  /// (head_line) so that they can later prove what the server recorded.
  Status Open(const std::string& file, std::string signing_key = "");
  bool enabled() const { return writer_.has_value(); }

  /// The hash of an update about to be aggregated ("" when off; also "" when hashing fails, and
  /// Append then refuses the record rather than record a wrong hash).
  std::string Hash(const algorithms::ClientUpdate& update) const;
  /// The round's sampled clients.
  void Participants(const std::vector<std::int64_t>& clients);
  /// An update's outcome: accepted (its hash, samples and reward) or refused (excluded).
  void Outcome(std::int64_t client, std::int64_t samples, const std::string& sha256, bool accepted,
               double reward);
  void Check(const core::security::LedgerCheck& check);
  /// Appends the round's record with `note` and the participants' stakes (stake_of may be empty:
  /// no stakes), then starts a new record.
  Status Append(std::int64_t round, std::string note,
                const std::function<double(std::int64_t)>& stake_of);
  /// The signed head of the last record appended (a heads-file line), or "" when none was
  /// signed yet: what the next tasks carry to the clients (kLedgerHeadAttr).
  const std::string& head_line() const { return head_line_; }

 private:
  std::optional<core::security::LedgerWriter> writer_;
  std::string signing_key_;  // secret: never logged
  std::string head_line_;
  core::security::LedgerRecord record_;  // the round being recorded
};

}  // namespace fedml::api::server
