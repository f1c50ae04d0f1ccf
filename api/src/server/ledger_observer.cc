#include "server/ledger_observer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "fedml/core/security/commitment.h"
#include "fedml/core/security/ledger_heads.h"

namespace fedml::api::server {

Status LedgerObserver::Open(const std::string& file, std::string signing_key) {
  if (file.empty()) return Status::Ok();
  signing_key_ = std::move(signing_key);
  const auto parent = std::filesystem::path(file).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  auto ledger = core::security::LedgerWriter::Open(file);
  if (!ledger.ok()) return ledger.status().WithContext("opening ledger_file " + file);
  writer_.emplace(std::move(ledger).value());
  return Status::Ok();
}

std::string LedgerObserver::Hash(const algorithms::ClientUpdate& update) const {
  if (!writer_) return "";
  auto sha = core::security::CheckpointSha256(update.state);  // one definition of a model's hash
  return sha.ok() ? *sha : "";
}

void LedgerObserver::Participants(const std::vector<std::int64_t>& clients) {
  if (writer_) record_.participants = clients;
}

void LedgerObserver::Outcome(std::int64_t client, std::int64_t samples, const std::string& sha256,
                             bool accepted, double reward) {
  if (!writer_) return;
  core::security::LedgerRecord& r = record_;
  if (std::find(r.participants.begin(), r.participants.end(), client) == r.participants.end()) {
    r.participants.push_back(client);
  }
  if (!accepted) {
    r.excluded.push_back(client);
    return;
  }
  r.updates.push_back({client, sha256, samples});
  r.rewards.push_back({client, reward});
}

void LedgerObserver::Check(const core::security::LedgerCheck& check) {
  if (writer_) record_.checks.push_back(check);
}

Status LedgerObserver::Append(std::int64_t round, std::string note,
                              const std::function<double(std::int64_t)>& stake_of) {
  if (!writer_) return Status::Ok();
  core::security::LedgerRecord record = std::move(record_);
  record_ = {};
  record.round = round;
  std::sort(record.participants.begin(), record.participants.end());
  if (stake_of) {
    for (std::int64_t client : record.participants) {
      record.stakes.push_back({client, stake_of(client)});
    }
  }
  record.note = std::move(note);
  FEDML_RETURN_IF_ERROR(
      writer_->Append(std::move(record))
          .WithContext("appending round " + std::to_string(round) + " to the ledger"));
  if (signing_key_.empty()) return Status::Ok();
  FEDML_ASSIGN_OR_RETURN(
      core::security::SignedLedgerHead head,
      core::security::SignLedgerHead(writer_->next_seq() - 1, writer_->last_hash(), signing_key_));
  head_line_ = core::security::LedgerHeadLine(head);
  std::ofstream heads(writer_->path() + ".heads", std::ios::app);
  heads << head_line_ << '\n';
  heads.flush();
  if (!heads) {
    return Status::DataLoss("cannot append the signed head of round " + std::to_string(round) +
                            " to " + writer_->path() + ".heads");
  }
  return Status::Ok();
}

}  // namespace fedml::api::server
