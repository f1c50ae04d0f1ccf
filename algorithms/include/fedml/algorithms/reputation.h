// Contribution accounts for verified work: per-client reputation, stake and earned
// rewards, updated from the outcome of spot checks (fedml/core/security/commitment.h). A failed
// check lowers the client's reputation and slashes a fraction of its stake; a client whose stake
// is exhausted or whose reputation falls below a floor is excluded from future rounds.
//
// RULES (all parameters in ContributionOptions):
//   - a client starts with reputation initial_reputation and stake initial_stake, the first
//     time it is named (an unknown client reads as such an account);
//   - a passed check:  r <- r + (1 - r) * reputation_gain    (moves r toward 1)
//   - a failed check:  r <- r * reputation_penalty;  stake <- stake - slash_fraction * stake
//     (the slashed amount is added to `slashed`). Treat a commitment mismatch as a failed check.
//   - Reward(client, samples) adds reward_per_sample * samples to `earned` (rewards are not
//     added to the stake: slashing only ever takes what the client put at stake);
//   - excluded: stake < min_stake or reputation < reputation_floor. Exclusion is final for the
//     account (neither rule raises a stake, and an excluded client is not checked again).
// With the defaults (0.5 start, penalty 0.5, floor 0.2, slash 0.5 of 100, min stake 1) a new
// client is excluded at its second failed check in a row; each passed check in between buys
// some margin back.
//
// Thread safety: none; use one object from one thread (the round controller's).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

struct ContributionOptions {
  /// A new client's reputation. 0.5, not 1: a fresh identity (anyone can make one) should not be
  /// trusted more than a client that has passed checks.
  double initial_reputation = 0.5;  // in [0, 1]
  double initial_stake = 100.0;     // >= 0
  /// Fraction of the current stake taken on a failed check, in [0, 1].
  double slash_fraction = 0.5;
  /// Fraction of the distance to 1 a passed check adds to the reputation, in [0, 1].
  double reputation_gain = 0.1;
  /// Factor a failed check multiplies the reputation by, in [0, 1].
  double reputation_penalty = 0.5;
  /// Below this reputation a client is excluded; in [0, initial_reputation].
  double reputation_floor = 0.2;
  /// Below this stake a client is excluded (geometric slashing never reaches 0 by itself);
  /// in [0, initial_stake].
  double min_stake = 1.0;
  /// Reward per verified sample; >= 0.
  double reward_per_sample = 1.0;
};

/// INVALID_ARGUMENT naming the first option out of its range (see ContributionOptions), or not
/// finite.
Status ValidateContributionOptions(const ContributionOptions& options);

/// One client's account. All doubles finite; reputation in [0, 1], the others >= 0.
struct ClientAccount {
  double reputation = 0;
  double stake = 0;
  double earned = 0;   // rewards so far
  double slashed = 0;  // stake taken so far
  std::int64_t checks_passed = 0;
  std::int64_t checks_failed = 0;
};
bool operator==(const ClientAccount& a, const ClientAccount& b);

/// What one check did to an account.
struct CheckEffect {
  double slashed = 0;  // stake taken by this check (0 on a pass)
  ClientAccount account;
  bool excluded = false;  // excluded after this check
};

class ContributionAccounts {
 public:
  /// The default options.
  ContributionAccounts() = default;
  /// ValidateContributionOptions's error for bad options.
  static Result<ContributionAccounts> Create(const ContributionOptions& options);

  const ContributionOptions& options() const { return options_; }

  /// The client's account; a fresh one (initial reputation and stake) for a client not seen yet,
  /// without adding it.
  ClientAccount Account(std::int64_t client) const;
  /// Whether the client is to be left out of future rounds (see RULES); false for a client not
  /// seen yet.
  bool excluded(std::int64_t client) const;
  /// The excluded clients, ascending.
  std::vector<std::int64_t> Excluded() const;
  /// The clients with an account, ascending.
  std::vector<std::int64_t> clients() const;

  /// Applies a check's outcome (RULES). INVALID_ARGUMENT for a negative client id;
  /// FAILED_PRECONDITION for an excluded client (it should not have been in the round). The
  /// account is unchanged on error.
  Result<CheckEffect> RecordCheck(std::int64_t client, bool passed);
  /// Credits reward_per_sample * verified_samples and returns that amount. INVALID_ARGUMENT for
  /// a negative client id or sample count; FAILED_PRECONDITION for an excluded client.
  Result<double> Reward(std::int64_t client, std::int64_t verified_samples);

  /// Every account, for a checkpoint, in Aggregator::SaveState's form: one entry,
  /// "contribution_accounts", whose tensors "client", "reputation", "stake", "earned",
  /// "slashed", "checks_passed" and "checks_failed" are each [n, 4] (n accounts in ascending
  /// client order). ModelState carries float32, which cannot hold an int64 or a double exactly,
  /// so each 64-bit value (two's complement integer, or the IEEE-754 bits of a double) is
  /// written as four 16-bit limbs, least significant first, each an integer float in [0, 65535]
  /// (exact in float32): restore gives back every account bit for bit.
  std::map<std::string, core::ModelState> SaveState() const;
  /// Replaces every account with those SaveState wrote. A map without "contribution_accounts"
  /// changes nothing (other strategies' names are ignored, as Aggregator::RestoreState does).
  /// INVALID_ARGUMENT naming the tensor for contents that SaveState cannot have written (other
  /// tensors or shapes, a limb that is not an integer in [0, 65535], clients not ascending or
  /// negative, a value out of ClientAccount's ranges); the accounts are unchanged then. The
  /// options are not saved: the restoring run's apply.
  Status RestoreState(const std::map<std::string, core::ModelState>& state);

 private:
  explicit ContributionAccounts(const ContributionOptions& options) : options_(options) {}
  ClientAccount Fresh() const;
  bool IsExcluded(const ClientAccount& a) const;
  Status Usable(std::int64_t client, const char* what) const;

  ContributionOptions options_;
  std::map<std::int64_t, ClientAccount> accounts_;
};

}  // namespace fedml::algorithms
