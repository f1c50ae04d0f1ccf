#include "fedml/algorithms/reputation.h"

#include <array>
#include <cmath>
#include <cstring>
#include <utility>

namespace fedml::algorithms {
namespace {

constexpr char kStateName[] = "contribution_accounts";
// The tensors of the saved state, in order.
constexpr std::array<const char*, 7> kFields = {
    "client", "reputation", "stake", "earned", "slashed", "checks_passed", "checks_failed"};
constexpr int kLimbs = 4;

std::uint64_t Bits(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
double FromBits(std::uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// One saved account as its seven 64-bit words, in kFields order.
std::array<std::uint64_t, 7> Words(std::int64_t client, const ClientAccount& a) {
  return {static_cast<std::uint64_t>(client),
          Bits(a.reputation),
          Bits(a.stake),
          Bits(a.earned),
          Bits(a.slashed),
          static_cast<std::uint64_t>(a.checks_passed),
          static_cast<std::uint64_t>(a.checks_failed)};
}

Status CheckRange(const std::string& name, double v, double lo, double hi) {
  if (std::isfinite(v) && v >= lo && v <= hi) return Status::Ok();
  return Status::InvalidArgument(name + " is " + std::to_string(v) + "; it must be in [" +
                                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
}
Status CheckAtLeast(const std::string& name, double v, double lo) {
  if (std::isfinite(v) && v >= lo) return Status::Ok();
  return Status::InvalidArgument(name + " is " + std::to_string(v) +
                                 "; it must be finite and >= " + std::to_string(lo));
}

// The saved account's ranges, the same as ClientAccount promises.
Status CheckAccount(std::int64_t client, const ClientAccount& a) {
  const std::string who = "client " + std::to_string(client) + "'s ";
  FEDML_RETURN_IF_ERROR(CheckRange(who + "reputation", a.reputation, 0.0, 1.0));
  FEDML_RETURN_IF_ERROR(CheckAtLeast(who + "stake", a.stake, 0.0));
  FEDML_RETURN_IF_ERROR(CheckAtLeast(who + "earned", a.earned, 0.0));
  FEDML_RETURN_IF_ERROR(CheckAtLeast(who + "slashed", a.slashed, 0.0));
  if (a.checks_passed < 0 || a.checks_failed < 0) {
    return Status::InvalidArgument(who + "check counts are negative");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateContributionOptions(const ContributionOptions& o) {
  FEDML_RETURN_IF_ERROR(CheckRange("initial_reputation", o.initial_reputation, 0.0, 1.0));
  FEDML_RETURN_IF_ERROR(CheckAtLeast("initial_stake", o.initial_stake, 0.0));
  FEDML_RETURN_IF_ERROR(CheckRange("slash_fraction", o.slash_fraction, 0.0, 1.0));
  FEDML_RETURN_IF_ERROR(CheckRange("reputation_gain", o.reputation_gain, 0.0, 1.0));
  FEDML_RETURN_IF_ERROR(CheckRange("reputation_penalty", o.reputation_penalty, 0.0, 1.0));
  // A floor above the start (or a minimum above the initial stake) would exclude every client
  // before its first round.
  FEDML_RETURN_IF_ERROR(
      CheckRange("reputation_floor", o.reputation_floor, 0.0, o.initial_reputation));
  FEDML_RETURN_IF_ERROR(CheckRange("min_stake", o.min_stake, 0.0, o.initial_stake));
  FEDML_RETURN_IF_ERROR(CheckAtLeast("reward_per_sample", o.reward_per_sample, 0.0));
  return Status::Ok();
}

bool operator==(const ClientAccount& a, const ClientAccount& b) {
  return a.reputation == b.reputation && a.stake == b.stake && a.earned == b.earned &&
         a.slashed == b.slashed && a.checks_passed == b.checks_passed &&
         a.checks_failed == b.checks_failed;
}

Result<ContributionAccounts> ContributionAccounts::Create(const ContributionOptions& options) {
  FEDML_RETURN_IF_ERROR(ValidateContributionOptions(options).WithContext("contribution accounts"));
  return ContributionAccounts(options);
}

ClientAccount ContributionAccounts::Fresh() const {
  ClientAccount a;
  a.reputation = options_.initial_reputation;
  a.stake = options_.initial_stake;
  return a;
}

bool ContributionAccounts::IsExcluded(const ClientAccount& a) const {
  return a.stake < options_.min_stake || a.reputation < options_.reputation_floor;
}

ClientAccount ContributionAccounts::Account(std::int64_t client) const {
  const auto it = accounts_.find(client);
  return it == accounts_.end() ? Fresh() : it->second;
}

bool ContributionAccounts::excluded(std::int64_t client) const {
  const auto it = accounts_.find(client);
  return it != accounts_.end() && IsExcluded(it->second);
}

std::vector<std::int64_t> ContributionAccounts::Excluded() const {
  std::vector<std::int64_t> out;
  for (const auto& [client, account] : accounts_) {
    if (IsExcluded(account)) out.push_back(client);
  }
  return out;
}

std::vector<std::int64_t> ContributionAccounts::clients() const {
  std::vector<std::int64_t> out;
  out.reserve(accounts_.size());
  for (const auto& entry : accounts_) out.push_back(entry.first);
  return out;
}

Status ContributionAccounts::Usable(std::int64_t client, const char* what) const {
  if (client < 0) {
    return Status::InvalidArgument(std::string(what) + ": client id " + std::to_string(client) +
                                   " is negative");
  }
  if (excluded(client)) {
    return Status::FailedPrecondition(std::string(what) + ": client " + std::to_string(client) +
                                      " is excluded (stake or reputation exhausted) and takes no "
                                      "part in rounds");
  }
  return Status::Ok();
}

Result<CheckEffect> ContributionAccounts::RecordCheck(std::int64_t client, bool passed) {
  FEDML_RETURN_IF_ERROR(Usable(client, "recording a spot check"));
  ClientAccount& a = accounts_.try_emplace(client, Fresh()).first->second;
  CheckEffect effect;
  if (passed) {
    a.reputation += (1.0 - a.reputation) * options_.reputation_gain;
    ++a.checks_passed;
  } else {
    a.reputation *= options_.reputation_penalty;
    effect.slashed = a.stake * options_.slash_fraction;
    a.stake -= effect.slashed;
    a.slashed += effect.slashed;
    ++a.checks_failed;
  }
  effect.account = a;
  effect.excluded = IsExcluded(a);
  return effect;
}

Result<double> ContributionAccounts::Reward(std::int64_t client, std::int64_t verified_samples) {
  FEDML_RETURN_IF_ERROR(Usable(client, "rewarding verified work"));
  if (verified_samples < 0) {
    return Status::InvalidArgument("rewarding client " + std::to_string(client) + ": " +
                                   std::to_string(verified_samples) +
                                   " verified samples; the count must be >= 0");
  }
  const double amount = options_.reward_per_sample * static_cast<double>(verified_samples);
  accounts_.try_emplace(client, Fresh()).first->second.earned += amount;
  return amount;
}

std::map<std::string, core::ModelState> ContributionAccounts::SaveState() const {
  const auto n = static_cast<std::int64_t>(accounts_.size());
  core::ModelState s;
  std::array<float*, kFields.size()> columns{};
  for (std::size_t f = 0; f < kFields.size(); ++f) {
    (void)s.AddZeros(kFields[f], {n, kLimbs});  // fixed, distinct names: cannot fail
  }
  // AddZeros' pointers move with each Add: take them once every tensor is in.
  for (std::size_t f = 0; f < kFields.size(); ++f) columns[f] = s.TensorData(kFields[f]);
  std::size_t row = 0;
  for (const auto& [client, account] : accounts_) {
    const auto words = Words(client, account);
    for (std::size_t f = 0; f < kFields.size(); ++f) {
      for (int l = 0; l < kLimbs; ++l) {
        columns[f][row * kLimbs + l] = static_cast<float>((words[f] >> (16 * l)) & 0xffff);
      }
    }
    ++row;
  }
  return {{kStateName, std::move(s)}};
}

Status ContributionAccounts::RestoreState(const std::map<std::string, core::ModelState>& state) {
  const auto it = state.find(kStateName);
  if (it == state.end()) return Status::Ok();
  const core::ModelState& s = it->second;
  const std::string what = std::string("restoring '") + kStateName + "'";
  if (s.num_tensors() != kFields.size()) {
    return Status::InvalidArgument(what + ": it has " + std::to_string(s.num_tensors()) +
                                   " tensors; expected " + std::to_string(kFields.size()));
  }
  std::int64_t n = -1;
  for (std::size_t f = 0; f < kFields.size(); ++f) {
    const core::TensorSpec& spec = s.specs()[f];
    if (spec.name != kFields[f]) {
      return Status::InvalidArgument(what + ": tensor " + std::to_string(f) + " is '" + spec.name +
                                     "'; expected '" + kFields[f] + "'");
    }
    if (spec.shape.size() != 2 || spec.shape[1] != kLimbs || (n >= 0 && spec.shape[0] != n)) {
      return Status::InvalidArgument(what + ": tensor '" + spec.name +
                                     "' does not have the shape [accounts, 4] that the others "
                                     "have");
    }
    n = spec.shape[0];
  }
  std::map<std::int64_t, ClientAccount> restored;
  for (std::int64_t row = 0; row < n; ++row) {
    std::array<std::uint64_t, kFields.size()> w{};
    for (std::size_t f = 0; f < kFields.size(); ++f) {
      const float* p = s.data() + s.specs()[f].offset + row * kLimbs;
      for (int l = 0; l < kLimbs; ++l) {
        const float v = p[l];
        if (!(v >= 0.0f && v <= 65535.0f) || v != std::floor(v)) {
          return Status::InvalidArgument(what + ": tensor '" + kFields[f] + "' row " +
                                         std::to_string(row) + " holds " + std::to_string(v) +
                                         ", not a 16-bit limb (an integer in [0, 65535])");
        }
        w[f] |= static_cast<std::uint64_t>(v) << (16 * l);
      }
    }
    const auto client = static_cast<std::int64_t>(w[0]);
    if (client < 0 || (!restored.empty() && client <= restored.rbegin()->first)) {
      return Status::InvalidArgument(what + ": row " + std::to_string(row) + " holds client " +
                                     std::to_string(client) +
                                     "; clients must be non-negative and strictly ascending");
    }
    ClientAccount a;
    a.reputation = FromBits(w[1]);
    a.stake = FromBits(w[2]);
    a.earned = FromBits(w[3]);
    a.slashed = FromBits(w[4]);
    a.checks_passed = static_cast<std::int64_t>(w[5]);
    a.checks_failed = static_cast<std::int64_t>(w[6]);
    FEDML_RETURN_IF_ERROR(CheckAccount(client, a).WithContext(what));
    restored.emplace_hint(restored.end(), client, a);
  }
  accounts_ = std::move(restored);
  return Status::Ok();
}

}  // namespace fedml::algorithms
