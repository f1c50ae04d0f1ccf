// Contribution accounts (fedml/algorithms/reputation.h): the reputation and slashing rules,
// exclusion by reputation and by stake, rewards, option validation, and a bit-exact save/restore
// round trip through the checkpoint's ModelState form.
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fedml/algorithms/reputation.h"

using fedml::StatusCode;
using fedml::algorithms::ClientAccount;
using fedml::algorithms::ContributionAccounts;
using fedml::algorithms::ContributionOptions;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("a failed check slashes the stake and lowers the reputation", "[reputation]") {
  ContributionAccounts accounts;  // defaults: 0.5 start, 100 stake, slash 0.5, penalty 0.5
  CHECK(accounts.Account(7).reputation == 0.5);
  CHECK(accounts.Account(7).stake == 100.0);
  CHECK(accounts.clients().empty());  // reading does not create an account

  auto pass = accounts.RecordCheck(7, true);
  REQUIRE(pass.ok());
  CHECK(pass->slashed == 0.0);
  CHECK(pass->account.reputation == Approx(0.55));  // 0.5 + (1 - 0.5) * 0.1
  CHECK(pass->account.stake == 100.0);
  CHECK(pass->account.checks_passed == 1);

  auto fail = accounts.RecordCheck(7, false);
  REQUIRE(fail.ok());
  CHECK(fail->slashed == 50.0);
  CHECK(fail->account.stake == 50.0);
  CHECK(fail->account.slashed == 50.0);
  CHECK(fail->account.reputation == Approx(0.275));  // 0.55 * 0.5
  CHECK_FALSE(fail->excluded);

  fail = accounts.RecordCheck(7, false);
  REQUIRE(fail.ok());
  CHECK(fail->slashed == 25.0);
  CHECK(fail->account.stake == 25.0);
  CHECK(fail->account.slashed == 75.0);
  CHECK(fail->account.reputation == Approx(0.1375));  // below the 0.2 floor
  CHECK(fail->account.checks_failed == 2);
  CHECK(fail->excluded);
  CHECK(accounts.excluded(7));
  CHECK(accounts.Excluded() == std::vector<std::int64_t>{7});

  // An excluded client takes no further part.
  auto again = accounts.RecordCheck(7, true);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);
  CHECK(accounts.Account(7).checks_passed == 1);  // unchanged
  CHECK(accounts.Reward(7, 10).status().code() == StatusCode::kFailedPrecondition);

  CHECK(accounts.RecordCheck(-1, true).status().code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(accounts.excluded(8));
}

TEST_CASE("an exhausted stake excludes a client", "[reputation]") {
  ContributionOptions o;
  o.reputation_penalty = 1.0;  // reputation untouched: only the stake can exclude
  o.slash_fraction = 0.5;
  o.initial_stake = 100.0;
  o.min_stake = 10.0;
  auto made = ContributionAccounts::Create(o);
  REQUIRE(made.ok());
  ContributionAccounts accounts = std::move(*made);
  const std::vector<double> stakes = {50.0, 25.0, 12.5, 6.25};
  for (std::size_t i = 0; i < stakes.size(); ++i) {
    auto e = accounts.RecordCheck(3, false);
    REQUIRE(e.ok());
    CHECK(e->account.stake == stakes[i]);
    CHECK(e->account.reputation == 0.5);
    CHECK(e->excluded == (i == 3));  // 6.25 < 10
  }
  CHECK(accounts.Account(3).slashed == 93.75);

  // slash_fraction 1 takes everything at the first failure.
  o.slash_fraction = 1.0;
  o.min_stake = 0.0;
  ContributionAccounts all = *ContributionAccounts::Create(o);
  auto e = all.RecordCheck(0, false);
  REQUIRE(e.ok());
  CHECK(e->slashed == 100.0);
  CHECK(e->account.stake == 0.0);
  CHECK_FALSE(e->excluded);  // 0 is not below a min_stake of 0
}

TEST_CASE("rewards are paid per verified sample", "[reputation]") {
  ContributionOptions o;
  o.reward_per_sample = 0.25;
  ContributionAccounts accounts = *ContributionAccounts::Create(o);
  CHECK(*accounts.Reward(2, 40) == 10.0);
  CHECK(*accounts.Reward(2, 4) == 1.0);
  CHECK(accounts.Account(2).earned == 11.0);
  CHECK(accounts.Account(2).stake == 100.0);  // rewards do not go to the stake
  CHECK(*accounts.Reward(5, 0) == 0.0);
  CHECK(accounts.clients() == std::vector<std::int64_t>{2, 5});
  CHECK(accounts.Reward(2, -1).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("contribution options out of range are named", "[reputation]") {
  auto refused = [](ContributionOptions o, const std::string& field) {
    auto r = ContributionAccounts::Create(o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), field));
  };
  ContributionOptions o;
  o.initial_reputation = 1.5;
  refused(o, "initial_reputation");
  o = {};
  o.initial_stake = -1;
  refused(o, "initial_stake");
  o = {};
  o.slash_fraction = std::numeric_limits<double>::quiet_NaN();
  refused(o, "slash_fraction");
  o = {};
  o.reputation_gain = 2;
  refused(o, "reputation_gain");
  o = {};
  o.reputation_penalty = -0.5;
  refused(o, "reputation_penalty");
  o = {};
  o.reputation_floor = 0.6;  // above the 0.5 start: everyone excluded
  refused(o, "reputation_floor");
  o = {};
  o.min_stake = 101;
  refused(o, "min_stake");
  o = {};
  o.reward_per_sample = std::numeric_limits<double>::infinity();
  refused(o, "reward_per_sample");
  CHECK(ContributionAccounts::Create(ContributionOptions{}).ok());
}

TEST_CASE("accounts save and restore bit for bit", "[reputation]") {
  ContributionAccounts accounts;
  const std::int64_t big = (std::int64_t{1} << 40) + 5;
  for (std::int64_t c : {std::int64_t{0}, std::int64_t{3}, big}) {
    REQUIRE(accounts.RecordCheck(c, true).ok());
  }
  REQUIRE(accounts.RecordCheck(3, false).ok());
  REQUIRE(accounts.RecordCheck(3, false).ok());  // 3 is excluded now
  REQUIRE(accounts.Reward(big, 3).ok());
  REQUIRE(accounts.Reward(0, 1).ok());
  for (int i = 0; i < 5; ++i) REQUIRE(accounts.RecordCheck(0, true).ok());  // inexact doubles

  const auto saved = accounts.SaveState();
  REQUIRE(saved.size() == 1);
  const auto& state = saved.at("contribution_accounts");
  CHECK(state.num_tensors() == 7);
  CHECK(state.specs()[0].shape == std::vector<std::int64_t>{3, 4});

  ContributionAccounts restored;
  REQUIRE(restored.RestoreState(saved).ok());
  CHECK(restored.clients() == accounts.clients());
  for (std::int64_t c : accounts.clients()) {
    INFO("client " << c);
    CHECK(restored.Account(c) == accounts.Account(c));
  }
  CHECK(restored.excluded(3));
  CHECK(restored.Excluded() == accounts.Excluded());

  // Nothing saved under our name: nothing changes. An empty set of accounts round-trips too.
  REQUIRE(restored.RestoreState({}).ok());
  CHECK(restored.clients() == accounts.clients());
  ContributionAccounts empty;
  REQUIRE(restored.RestoreState(empty.SaveState()).ok());
  CHECK(restored.clients().empty());
}

TEST_CASE("a damaged saved state is refused and changes nothing", "[reputation]") {
  ContributionAccounts accounts;
  REQUIRE(accounts.RecordCheck(1, true).ok());
  REQUIRE(accounts.RecordCheck(2, false).ok());
  const auto saved = accounts.SaveState();

  auto refused = [&accounts](std::map<std::string, fedml::core::ModelState> state,
                             const std::string& what) {
    ContributionAccounts target;
    REQUIRE(target.RecordCheck(9, true).ok());
    const fedml::Status s = target.RestoreState(state);
    INFO(s.ToString());
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s.message(), what));
    CHECK(target.clients() == std::vector<std::int64_t>{9});
    (void)accounts;
  };

  auto limb = saved;
  limb["contribution_accounts"].TensorData("stake")[1] = 65536.0f;
  refused(limb, "'stake'");
  auto fraction = saved;
  fraction["contribution_accounts"].TensorData("earned")[0] = 0.5f;
  refused(fraction, "'earned'");
  auto order = saved;  // client 2 then 1
  float* ids = order["contribution_accounts"].TensorData("client");
  std::swap(ids[0], ids[4]);
  refused(order, "strictly ascending");
  auto negative = saved;  // reputation -0.25 (sign bit set in the top limb)
  float* rep = negative["contribution_accounts"].TensorData("reputation");
  rep[3] = static_cast<float>(static_cast<int>(rep[3]) | 0x8000);
  refused(negative, "reputation");

  fedml::core::ModelState wrong;
  const float z[4] = {0, 0, 0, 0};
  REQUIRE(wrong.Add("client", {1, 4}, z).ok());
  refused({{"contribution_accounts", wrong}}, "tensors");
}
