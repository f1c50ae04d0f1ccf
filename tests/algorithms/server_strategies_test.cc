// Server optimizers (FedAvgM, FedAdagrad, FedAdam, FedYogi), FedNova, SCAFFOLD's server side and
// the registry's composition, each against its update rule computed here in float64.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/algorithms/fednova.h"
#include "fedml/algorithms/registry.h"
#include "fedml/algorithms/scaffold.h"
#include "fedml/algorithms/server_optimizer.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "model_states.h"

namespace fedml::algorithms {
namespace {

using Catch::Matchers::Contains;
using core::ModelState;

using fedml::testing::Vector;

using fedml::testing::RandomVector;

ClientUpdate Update(std::int64_t id, std::int64_t samples, ModelState state, double steps = 0) {
  ClientUpdate u;
  u.client_id = id;
  u.num_samples = samples;
  u.state = std::move(state);
  if (steps > 0) u.metrics["steps"] = steps;
  return u;
}

// Reddi et al. 2021, Algorithm 2, written out per coordinate in float64 (the reference).
struct ReferenceServerOpt {
  std::string type;
  double lr, momentum, b1, b2, tau;
  std::vector<double> m, v;
  void Step(std::vector<double>& x, const std::vector<double>& mean) {
    if (m.empty()) {
      m.assign(x.size(), 0.0);
      v.assign(x.size(), tau * tau);
    }
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = mean[i] - x[i];
      if (type == "sgd") {
        m[i] = momentum * m[i] + d;
        x[i] += lr * m[i];
        continue;
      }
      m[i] = b1 * m[i] + (1 - b1) * d;
      if (type == "adagrad") v[i] = v[i] + d * d;
      if (type == "adam") v[i] = b2 * v[i] + (1 - b2) * d * d;
      if (type == "yogi") {
        const double s = v[i] - d * d > 0 ? 1.0 : (v[i] - d * d < 0 ? -1.0 : 0.0);
        v[i] = v[i] - (1 - b2) * d * d * s;
      }
      x[i] += lr * m[i] / (std::sqrt(v[i]) + tau);
    }
  }
};

TEST_CASE("server optimizers follow Reddi et al.'s update rules round by round",
          "[algorithms][fedopt]") {
  const std::string type = GENERATE(as<std::string>{}, "sgd", "adagrad", "adam", "yogi");
  ServerOptimizerOptions opt;
  opt.type = type;
  opt.lr = type == "sgd" ? 0.7 : 0.05;
  opt.momentum = type == "sgd" ? 0.9 : 0.0;
  opt.beta1 = 0.8;
  opt.beta2 = 0.95;
  opt.tau = 1e-2;
  REQUIRE(ValidateServerOptimizer(opt).ok());
  ServerOptimizer server(std::make_unique<FedAvg>(), opt);
  ReferenceServerOpt ref{type, opt.lr, opt.momentum, opt.beta1, opt.beta2, opt.tau, {}, {}};

  core::Rng rng(11);
  const std::size_t n = 301;
  ModelState global = RandomVector(rng, n, 1.0);
  std::vector<double> x(global.flat().begin(), global.flat().end());
  for (int round = 0; round < 5; ++round) {
    REQUIRE(server.Begin(global, {round, round, 3}).ok());
    std::vector<double> mean(n, 0.0);
    const std::int64_t samples[] = {10, 30, 60};
    for (int c = 0; c < 3; ++c) {
      ModelState local = RandomVector(rng, n, 0.3);
      for (std::size_t i = 0; i < n; ++i) local.flat()[i] += global.flat()[i];
      for (std::size_t i = 0; i < n; ++i) mean[i] += samples[c] / 100.0 * local.flat()[i];
      REQUIRE(server.Accumulate(Update(c, samples[c], std::move(local))).ok());
    }
    auto out = server.Finalize();
    REQUIRE(out.ok());
    // The reference steps from the float32 model the server actually holds.
    x.assign(global.flat().begin(), global.flat().end());
    ref.Step(x, mean);
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(out->flat()[i] == Approx(x[i]).margin(2e-6).epsilon(1e-5));
    }
    CHECK(server.RoundFigures().count("server_step_norm") == 1);
    global = std::move(*out);
  }
}

TEST_CASE("server sgd with lr 1 and no momentum is the inner aggregate", "[algorithms][fedopt]") {
  ServerOptimizerOptions opt;
  CHECK(opt.is_identity());
  core::Rng rng(3);
  ModelState g = RandomVector(rng, 50, 1.0);
  ServerOptimizer wrapped(std::make_unique<FedAvg>(), opt);
  FedAvg plain;
  REQUIRE(wrapped.Begin(g, {}).ok());
  REQUIRE(plain.Begin(g, {}).ok());
  for (int c = 0; c < 4; ++c) {
    ModelState s = RandomVector(rng, 50, 1.0);
    REQUIRE(wrapped.Accumulate(Update(c, 5 + c, s)).ok());
    REQUIRE(plain.Accumulate(Update(c, 5 + c, s)).ok());
  }
  auto a = wrapped.Finalize();
  auto b = plain.Finalize();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (std::size_t i = 0; i < 50; ++i) CHECK(a->flat()[i] == Approx(b->flat()[i]).margin(1e-6));
}

TEST_CASE("server optimizers leave integer buffers at the aggregate", "[algorithms][fedopt]") {
  ModelState g;
  const float w[] = {1.0f, 2.0f};
  const float count[] = {4.0f};
  REQUIRE(g.Add("w", {2}, w).ok());
  REQUIRE(g.Add("num_batches_tracked", {}, count, core::DType::kInt64).ok());
  ServerOptimizerOptions opt;
  opt.type = "adam";
  opt.lr = 0.1;
  ServerOptimizer server(std::make_unique<FedAvg>(), opt);
  REQUIRE(server.Begin(g, {}).ok());
  ModelState local = g;
  local.flat() = {3.0f, 1.0f, 9.0f};
  REQUIRE(server.Accumulate(Update(0, 1, local)).ok());
  auto out = server.Finalize();
  REQUIRE(out.ok());
  CHECK(out->flat()[2] == 9.0f);          // the counter: the mean, no step
  CHECK(out->flat()[0] != Approx(3.0f));  // the weight: an Adam step from 1 towards 3
  CHECK(out->flat()[0] > 1.0f);
  CHECK(out->flat()[1] < 2.0f);
}

TEST_CASE("server optimizer options out of range are named", "[algorithms][fedopt]") {
  ServerOptimizerOptions o;
  o.type = "rmsprop";
  CHECK_THAT(ValidateServerOptimizer(o).message(),
             Contains("server_optimizer 'rmsprop'") && Contains("sgd, adagrad, adam, yogi"));
  o = {};
  o.lr = 0;
  CHECK_THAT(ValidateServerOptimizer(o).message(), Contains("server_lr"));
  o = {};
  o.beta2 = 1.0;
  CHECK_THAT(ValidateServerOptimizer(o).message(), Contains("beta2") && Contains("[0, 1)"));
  o = {};
  o.type = "adam";
  o.momentum = 0.9;
  CHECK_THAT(ValidateServerOptimizer(o).message(), Contains("server_momentum"));
  o = {};
  o.tau = -1;
  CHECK_THAT(ValidateServerOptimizer(o).message(), Contains("tau"));
}

TEST_CASE("FedNova with equal step counts is FedAvg", "[algorithms][fednova]") {
  core::Rng rng(5);
  ModelState g = RandomVector(rng, 97, 1.0);
  FedNova nova;
  FedAvg avg;
  REQUIRE(nova.Begin(g, {}).ok());
  REQUIRE(avg.Begin(g, {}).ok());
  for (int c = 0; c < 5; ++c) {
    ModelState s = RandomVector(rng, 97, 1.0);
    REQUIRE(nova.Accumulate(Update(c, 10 * (c + 1), s, 7)).ok());
    REQUIRE(avg.Accumulate(Update(c, 10 * (c + 1), s)).ok());
  }
  auto a = nova.Finalize();
  auto b = avg.Finalize();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (std::size_t i = 0; i < 97; ++i) CHECK(a->flat()[i] == Approx(b->flat()[i]).margin(1e-5));
  CHECK(nova.RoundFigures().at("fednova_tau_eff") == Approx(7.0));
}

TEST_CASE("FedNova normalises by the effective step count", "[algorithms][fednova]") {
  // Hand computation from x = 0. Client A moved to -10 in 10 steps, B to -2 in 2: both moved
  // -1 per step, so d_A = d_B = 1 and x_new = -tau_eff; with n_A = n_B, tau_eff = 6; with
  // n_A = 300, n_B = 100, p = (3/4, 1/4) and tau_eff = 8 (FedAvg agrees in both cases).
  for (const auto& [na, expect] : std::vector<std::pair<int, double>>{{100, -6.0}, {300, -8.0}}) {
    FedNova nova;
    REQUIRE(nova.Begin(Vector({0.0f}), {}).ok());
    REQUIRE(nova.Accumulate(Update(0, na, Vector({-10.0f}), 10)).ok());
    REQUIRE(nova.Accumulate(Update(1, 100, Vector({-2.0f}), 2)).ok());
    auto out = nova.Finalize();
    REQUIRE(out.ok());
    CHECK(out->flat()[0] == Approx(expect));
  }
  // Different directions: A moved -10 in 10 steps (d_A = 1), B moved +4 in 2 (d_B = -2);
  // p = (1/2, 1/2), sum p d = -0.5, tau_eff = 6: x_new = 0 - 6 * (-0.5) = 3 where FedAvg
  // gives -3 (B's two large steps outweigh A's ten small ones once normalised).
  FedNova nova;
  REQUIRE(nova.Begin(Vector({0.0f}), {}).ok());
  REQUIRE(nova.Accumulate(Update(0, 100, Vector({-10.0f}), 10)).ok());
  REQUIRE(nova.Accumulate(Update(1, 100, Vector({4.0f}), 2)).ok());
  auto out = nova.Finalize();
  REQUIRE(out.ok());
  CHECK(out->flat()[0] == Approx(3.0));  // FedAvg: -3
}

TEST_CASE("FedNova's effective steps with momentum follow the paper", "[algorithms][fednova]") {
  CHECK(FedNovaEffectiveSteps(5, 0.0) == 5.0);
  // a = sum_{k<tau} (1 - rho^(tau-k)) / (1 - rho), the closed form's definition.
  const double rho = 0.9;
  for (int tau : {1, 2, 10, 50}) {
    double sum = 0.0;
    for (int k = 0; k < tau; ++k) sum += (1 - std::pow(rho, tau - k)) / (1 - rho);
    CHECK(FedNovaEffectiveSteps(tau, rho) == Approx(sum));
  }
}

TEST_CASE("FedNova refuses an update without a step count", "[algorithms][fednova]") {
  FedNova nova;
  REQUIRE(nova.Begin(Vector({0.0f}), {}).ok());
  const Status st = nova.Accumulate(Update(3, 10, Vector({1.0f})));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 3") && Contains("steps"));
  CHECK(nova.accepted() == 0);
  CHECK(nova.Finalize().status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("SCAFFOLD's server updates c and each c_i as the paper says", "[algorithms][scaffold]") {
  const int total = 4;
  Scaffold s(ScaffoldOptions{total, 2});
  ModelState g = Vector({1.0f, 2.0f});
  REQUIRE(s.Begin(g, {0, 0, 2}).ok());
  auto extras = s.TaskExtras(7);
  REQUIRE(extras.count(kScaffoldServerC) == 1);
  REQUIRE(extras.count(kScaffoldClientC) == 1);
  CHECK(extras[kScaffoldServerC].flat() == std::vector<float>{0.0f, 0.0f});
  CHECK(extras[kScaffoldClientC].flat() == std::vector<float>{0.0f, 0.0f});

  auto with_dc = [](std::int64_t id, std::int64_t n, std::vector<float> y, std::vector<float> dc) {
    ClientUpdate u = Update(id, n, Vector(y));
    u.extras[kScaffoldDeltaC] = Vector(dc);
    return u;
  };
  REQUIRE(s.Accumulate(with_dc(7, 1, {3.0f, 2.0f}, {0.4f, -0.8f})).ok());
  REQUIRE(s.Accumulate(with_dc(9, 3, {1.0f, 6.0f}, {0.8f, 0.4f})).ok());
  auto out = s.Finalize();
  REQUIRE(out.ok());
  CHECK(out->flat()[0] == Approx(1.5));  // sample-weighted mean of the models
  CHECK(out->flat()[1] == Approx(5.0));
  REQUIRE(s.Begin(*out, {1, 1, 2}).ok());
  extras = s.TaskExtras(9);
  // c = (0.4 + 0.8) / 4, (-0.8 + 0.4) / 4; c_9 = its delta; an unseen client still gets zeros.
  CHECK(extras[kScaffoldServerC].flat()[0] == Approx(0.3));
  CHECK(extras[kScaffoldServerC].flat()[1] == Approx(-0.1));
  CHECK(extras[kScaffoldClientC].flat()[0] == Approx(0.8));
  CHECK(extras[kScaffoldClientC].flat()[1] == Approx(0.4));
  CHECK(s.TaskExtras(1)[kScaffoldClientC].flat() == std::vector<float>{0.0f, 0.0f});
}

TEST_CASE("SCAFFOLD refuses updates without a usable control-variate delta",
          "[algorithms][scaffold]") {
  Scaffold s(ScaffoldOptions{10, 2});
  REQUIRE(s.Begin(Vector({0.0f, 0.0f}), {}).ok());
  Status st = s.Accumulate(Update(1, 5, Vector({1.0f, 1.0f})));
  CHECK_THAT(st.message(), Contains("control-variate delta") && Contains("SCAFFOLD"));
  ClientUpdate bad = Update(2, 5, Vector({1.0f, 1.0f}));
  bad.extras[kScaffoldDeltaC] = Vector({1.0f});
  CHECK(s.Accumulate(std::move(bad)).code() == StatusCode::kInvalidArgument);
  ClientUpdate nan = Update(3, 5, Vector({1.0f, 1.0f}));
  nan.extras[kScaffoldDeltaC] = Vector({NAN, 0.0f});
  CHECK(s.Accumulate(std::move(nan)).code() == StatusCode::kInvalidArgument);
  CHECK(s.accepted() == 0);
  // The refused deltas were not kept: c stays zero after a round with one good update.
  ClientUpdate good = Update(4, 5, Vector({1.0f, 1.0f}));
  good.extras[kScaffoldDeltaC] = Vector({0.0f, 0.0f});
  REQUIRE(s.Accumulate(std::move(good)).ok());
  REQUIRE(s.Finalize().ok());
  REQUIRE(s.Begin(Vector({0.0f, 0.0f}), {}).ok());
  CHECK(s.TaskExtras(3)[kScaffoldServerC].flat() == std::vector<float>{0.0f, 0.0f});
}

TEST_CASE("the registry composes strategies and refuses combinations that do not exist",
          "[algorithms][registry]") {
  for (const std::string& name : AggregatorNames()) {
    AggregatorOptions o;
    o.server.momentum = name == "FedAvgM" ? 0.9 : 0.0;
    auto a = CreateAggregator(name, o);
    INFO(name);
    REQUIRE(a.ok());
  }
  AggregatorOptions o;
  CHECK((*CreateAggregator("FedAdam", o))->name() == "FedAdam(FedAvg)");
  CHECK((*CreateAggregator("FedAvg", o))->name() == "FedAvg");
  o.server.momentum = 0.9;
  CHECK((*CreateAggregator("FedAvgM", o))->name() == "FedAvgM(FedAvg)");
  o.server.momentum = 0.0;
  CHECK_THAT(CreateAggregator("FedAvgM", o).status().message(), Contains("server_momentum"));
  o.server.type = "yogi";
  o.server_optimizer_given = true;
  CHECK_THAT(CreateAggregator("FedAdam", o).status().message(),
             Contains("FedAdam is server_optimizer adam") && Contains("FedOpt"));
  CHECK((*CreateAggregator("FedOpt", o))->name() == "FedYogi(FedAvg)");
  o = {};
  o.server.lr = 0.5;
  CHECK((*CreateAggregator("SCAFFOLD", o))->name() == "ServerSGD(SCAFFOLD)");
  o = {};
  o.enable_defense = true;
  o.defense.defense_type = "krum";
  CHECK_THAT(CreateAggregator("SCAFFOLD", o).status().message(),
             Contains("SCAFFOLD has its own averaging"));
  CHECK_THAT(CreateAggregator("FedNova", o).status().message(), Contains("own averaging"));
  o.central_dp = true;
  CHECK_THAT(CreateAggregator("FedAvg", o).status().message(), Contains("both replace the mean"));
  CHECK_THAT(CreateAggregator("FedSGD", {}).status().message(),
             Contains("unknown federated_optimizer 'FedSGD'") && Contains("SCAFFOLD"));
}

// Runs `rounds` rounds of random updates through `agg` from `global`; every client sends a
// SCAFFOLD control-variate delta too (other strategies ignore extras).
ModelState RunRounds(Aggregator& agg, ModelState global, int first_round, int rounds,
                     std::uint64_t seed) {
  for (int r = first_round; r < first_round + rounds; ++r) {
    core::Rng rng(core::DeriveSeed(seed, {static_cast<std::uint64_t>(r)}));
    REQUIRE(agg.Begin(global, {r, r, 3}).ok());
    for (int c = 0; c < 3; ++c) {
      const std::int64_t id = (r + c) % 5;
      (void)agg.TaskExtras(id);
      ModelState local = RandomVector(rng, global.numel(), 0.2);
      for (std::size_t i = 0; i < local.numel(); ++i) local.flat()[i] += global.flat()[i];
      ClientUpdate u = Update(id, 10 + c, std::move(local), 3);
      u.extras[kScaffoldDeltaC] = RandomVector(rng, global.numel(), 0.1);
      REQUIRE(agg.Accumulate(std::move(u)).ok());
    }
    auto out = agg.Finalize();
    REQUIRE(out.ok());
    global = std::move(*out);
  }
  return global;
}

TEST_CASE("a strategy restored from its saved state continues exactly",
          "[algorithms][registry][checkpoint]") {
  struct Case {
    const char* name;
    AggregatorOptions options;
  };
  std::vector<Case> cases;
  AggregatorOptions adam;
  adam.server.lr = 0.05;
  cases.push_back({"FedAdam", adam});
  AggregatorOptions avgm;
  avgm.server.momentum = 0.9;
  cases.push_back({"FedAvgM", avgm});
  AggregatorOptions scaffold;
  scaffold.client_num_in_total = 5;
  scaffold.server.lr = 0.7;  // SCAFFOLD under a server step: both states must travel
  cases.push_back({"SCAFFOLD", scaffold});
  AggregatorOptions dp;
  dp.central_dp = true;
  dp.dp.noise_multiplier = 0.3;
  dp.dp.sampling_rate = 0.3;
  cases.push_back({"FedAvg", dp});
  for (const Case& c : cases) {
    INFO(c.name);
    core::Rng rng(21);
    const ModelState start = RandomVector(rng, 40, 1.0);
    auto straight = CreateAggregator(c.name, c.options);
    REQUIRE(straight.ok());
    const ModelState expected = RunRounds(**straight, start, 0, 4, 5);

    auto first = CreateAggregator(c.name, c.options);
    REQUIRE(first.ok());
    const ModelState half = RunRounds(**first, start, 0, 2, 5);
    const auto saved = (*first)->SaveState();
    CHECK_FALSE(saved.empty());
    auto resumed = CreateAggregator(c.name, c.options);
    REQUIRE(resumed.ok());
    REQUIRE((*resumed)->RestoreState(saved).ok());
    const ModelState got = RunRounds(**resumed, half, 2, 2, 5);
    CHECK(got == expected);  // bitwise
    if (c.options.central_dp) {
      CHECK((*resumed)->RoundFigures().at("dp_epsilon") ==
            (*straight)->RoundFigures().at("dp_epsilon"));
    }
    // What the clients are sent next (SCAFFOLD's c and c_i) agrees too.
    CHECK((*resumed)->TaskExtras(1) == (*straight)->TaskExtras(1));
    // Without the state the continuation differs: the test would notice a state not saved.
    auto fresh = CreateAggregator(c.name, c.options);
    REQUIRE(fresh.ok());
    const ModelState cold = RunRounds(**fresh, half, 2, 2, 5);
    if (std::string(c.name) == "SCAFFOLD") {
      CHECK((*fresh)->TaskExtras(1) != (*straight)->TaskExtras(1));
    } else if (c.options.central_dp) {
      CHECK((*fresh)->RoundFigures().at("dp_epsilon") <
            (*straight)->RoundFigures().at("dp_epsilon"));
    } else {
      CHECK(cold != expected);
    }
  }
}

TEST_CASE("restoring a server optimizer from another optimizer's state is refused",
          "[algorithms][checkpoint]") {
  AggregatorOptions avgm;
  avgm.server.momentum = 0.9;
  auto sgd = CreateAggregator("FedAvgM", avgm);
  REQUIRE(sgd.ok());
  core::Rng rng(2);
  (void)RunRounds(**sgd, RandomVector(rng, 10, 1.0), 0, 1, 3);
  auto adam = CreateAggregator("FedAdam", {});
  REQUIRE(adam.ok());
  CHECK_THAT((*adam)->RestoreState((*sgd)->SaveState()).message(),
             Contains("not adam's") && Contains("server_optimizer"));
}

}  // namespace
}  // namespace fedml::algorithms
