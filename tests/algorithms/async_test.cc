// Asynchronous aggregation: the staleness functions, FedAsync's one-update mixing and FedBuff's
// staleness weighting around FedAvg and a server optimizer, each against its formula by hand or
// in float64.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/algorithms/async.h"
#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/registry.h"
#include "fedml/algorithms/server_optimizer.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "model_states.h"

namespace fedml::algorithms {
namespace {

using Catch::Matchers::Contains;
using core::ModelState;

using fedml::testing::Vector;

// A two-tensor model: "w" of shape {2} and "b" of shape {1}.
ModelState TwoTensors(float w0, float w1, float b) {
  ModelState s;
  const float w[] = {w0, w1};
  REQUIRE(s.Add("w", {2}, w).ok());
  REQUIRE(s.Add("b", {1}, &b).ok());
  return s;
}

using fedml::testing::RandomVector;

ClientUpdate Update(std::int64_t id, std::int64_t samples, ModelState state,
                    std::int64_t base_version, std::shared_ptr<const ModelState> base = nullptr) {
  ClientUpdate u;
  u.client_id = id;
  u.num_samples = samples;
  u.base_version = base_version;
  u.state = std::move(state);
  u.base = std::move(base);
  return u;
}

// ---------------------------------------------------------------------------------------------
// Staleness functions

TEST_CASE("staleness functions follow their formulas", "[async]") {
  CHECK(StalenessFunctionNames() == std::vector<std::string>{"constant", "polynomial", "hinge"});
  StalenessOptions c;
  c.function = "constant";
  for (std::int64_t t : {0, 1, 7, 1000}) CHECK(StalenessWeight(c, t) == 1.0);

  StalenessOptions p;  // polynomial, a = 0.5: FedBuff's 1 / sqrt(1 + t)
  CHECK(p.function == "polynomial");
  CHECK(StalenessWeight(p, 0) == 1.0);
  CHECK(StalenessWeight(p, 3) == Approx(0.5));
  CHECK(StalenessWeight(p, 8) == Approx(1.0 / 3.0));
  p.a = 1.0;
  CHECK(StalenessWeight(p, 4) == Approx(0.2));
  p.a = 0.0;  // allowed: every update counts fully
  CHECK(StalenessWeight(p, 9) == 1.0);

  StalenessOptions h;
  h.function = "hinge";
  h.a = 0.5;
  h.b = 2.0;
  CHECK(StalenessWeight(h, 0) == 1.0);
  CHECK(StalenessWeight(h, 2) == 1.0);
  CHECK(StalenessWeight(h, 3) == Approx(1.0 / (0.5 * 1 + 1)));
  CHECK(StalenessWeight(h, 4) == Approx(0.5));  // 1 / (0.5 * 2 + 1)

  // Outside the contract the weight is NaN, never a plausible number.
  CHECK(std::isnan(StalenessWeight(p, -1)));
  StalenessOptions unknown;
  unknown.function = "exponential";
  CHECK(std::isnan(StalenessWeight(unknown, 1)));
}

TEST_CASE("staleness and FedAsync options out of range are named", "[async]") {
  CHECK(ValidateStaleness({}).ok());
  StalenessOptions o;
  o.function = "exponential";
  CHECK(ValidateStaleness(o).code() == StatusCode::kInvalidArgument);
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_function 'exponential'") &&
                                                 Contains("constant, polynomial, hinge"));
  o = {};
  o.a = -0.1;
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_a") && Contains(">= 0"));
  o.a = 0.0;
  CHECK(ValidateStaleness(o).ok());
  o = {};
  o.function = "hinge";
  o.a = 0.0;
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_a") && Contains("> 0"));
  o.a = 1.0;
  o.b = -1.0;
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_b") && Contains(">= 0"));
  o.b = 0.0;
  CHECK(ValidateStaleness(o).ok());
  o = {};
  o.a = NAN;
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_a") && Contains("finite"));
  o = {};
  o.b = INFINITY;
  CHECK_THAT(ValidateStaleness(o).message(), Contains("staleness_b") && Contains("finite"));
  o = {};
  o.function = "constant";
  o.a = -5.0;  // constant reads neither a nor b
  CHECK(ValidateStaleness(o).ok());

  FedAsyncOptions f;
  CHECK(ValidateFedAsync(f).ok());
  f.alpha = 1.0;
  CHECK(ValidateFedAsync(f).ok());
  for (double alpha : {0.0, -0.5, 1.5, static_cast<double>(NAN)}) {
    f.alpha = alpha;
    CHECK_THAT(ValidateFedAsync(f).message(), Contains("alpha") && Contains("(0, 1]"));
  }
  f = {};
  f.staleness.function = "hinge";
  f.staleness.a = -1.0;
  CHECK_THAT(ValidateFedAsync(f).message(), Contains("staleness_a"));
}

TEST_CASE("an update's staleness is the versions the model moved on", "[async]") {
  RoundInfo info;
  info.model_version = 5;
  auto t = UpdateStaleness(info, Update(1, 1, Vector({0.0f}), 2));
  REQUIRE(t.ok());
  CHECK(*t == 3);
  t = UpdateStaleness(info, Update(1, 1, Vector({0.0f}), 5));
  REQUIRE(t.ok());
  CHECK(*t == 0);
  const Status future = UpdateStaleness(info, Update(4, 1, Vector({0.0f}), 6)).status();
  CHECK(future.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(future.message(),
             Contains("client 4") && Contains("base_version 6") && Contains("model version 5"));
}

// ---------------------------------------------------------------------------------------------
// FedAsync

TEST_CASE("FedAsync mixes one client model with weight alpha * s(staleness)", "[async]") {
  FedAsyncOptions options;  // alpha 0.6, polynomial a = 0.5
  FedAsync fedasync(options);
  CHECK(fedasync.name() == "FedAsync");
  CHECK_FALSE(fedasync.is_linear());
  CHECK_FALSE(fedasync.needs_all_updates());
  CHECK(fedasync.RoundFigures().empty());
  const ModelState x = TwoTensors(1.0f, 2.0f, -1.0f);

  // Staleness 0: a = 0.6, x' = 0.4 x + 0.6 x_client.
  REQUIRE(fedasync.Begin(x, {7, 7, 0}).ok());
  REQUIRE(fedasync.Accumulate(Update(3, 10, TwoTensors(3.0f, 0.0f, 1.0f), 7)).ok());
  CHECK(fedasync.accepted() == 1);
  auto out = fedasync.Finalize();
  REQUIRE(out.ok());
  REQUIRE(out->CheckSameLayout(x).ok());
  CHECK(out->TensorData("w")[0] == Approx(0.4 * 1 + 0.6 * 3));   // 2.2
  CHECK(out->TensorData("w")[1] == Approx(0.4 * 2 + 0.6 * 0));   // 0.8
  CHECK(out->TensorData("b")[0] == Approx(0.4 * -1 + 0.6 * 1));  // 0.2
  auto figures = fedasync.RoundFigures();
  CHECK(figures.at("async_mixing_weight") == Approx(0.6));
  CHECK(figures.at("staleness_mean") == 0.0);
  CHECK(figures.at("staleness_max") == 0.0);

  // Staleness 3: s = 1 / sqrt(4) = 0.5, a = 0.3, x' = 0.7 x + 0.3 x_client.
  REQUIRE(fedasync.Begin(x, {8, 10, 0}).ok());
  CHECK(fedasync.accepted() == 0);
  REQUIRE(fedasync.Accumulate(Update(5, 10, TwoTensors(3.0f, 0.0f, 1.0f), 7)).ok());
  out = fedasync.Finalize();
  REQUIRE(out.ok());
  CHECK(out->TensorData("w")[0] == Approx(0.7 * 1 + 0.3 * 3));   // 1.6
  CHECK(out->TensorData("w")[1] == Approx(0.7 * 2 + 0.3 * 0));   // 1.4
  CHECK(out->TensorData("b")[0] == Approx(0.7 * -1 + 0.3 * 1));  // -0.4
  figures = fedasync.RoundFigures();
  CHECK(figures.at("async_mixing_weight") == Approx(0.3));
  CHECK(figures.at("staleness_mean") == 3.0);
  CHECK(figures.at("staleness_max") == 3.0);
  CHECK(fedasync.SaveState().empty());

  // alpha 1 and a fresh update: the client's model itself.
  options.alpha = 1.0;
  FedAsync replace(options);
  REQUIRE(replace.Begin(x, {0, 2, 0}).ok());
  REQUIRE(replace.Accumulate(Update(1, 1, TwoTensors(3.0f, 0.0f, 1.0f), 2)).ok());
  out = replace.Finalize();
  REQUIRE(out.ok());
  CHECK(*out == TwoTensors(3.0f, 0.0f, 1.0f));
}

TEST_CASE("FedAsync gives integer buffers the client's value", "[async]") {
  ModelState x;
  const float w[] = {1.0f, 2.0f};
  const float count[] = {4.0f};
  REQUIRE(x.Add("w", {2}, w).ok());
  REQUIRE(x.Add("num_batches_tracked", {}, count, core::DType::kInt64).ok());
  ModelState local = x;
  local.flat() = {3.0f, 0.0f, 9.0f};
  FedAsync fedasync;
  REQUIRE(fedasync.Begin(x, {0, 0, 0}).ok());
  REQUIRE(fedasync.Accumulate(Update(0, 1, local, 0)).ok());
  auto out = fedasync.Finalize();
  REQUIRE(out.ok());
  CHECK(out->flat()[0] == Approx(0.4 * 1 + 0.6 * 3));
  CHECK(out->flat()[1] == Approx(0.4 * 2));
  CHECK(out->flat()[2] == 9.0f);  // the counter: not mixed
}

TEST_CASE("FedAsync refuses bad updates and a second one, leaving the version as it was",
          "[async]") {
  const ModelState x = TwoTensors(1.0f, 2.0f, -1.0f);
  const RoundInfo info{4, 4, 0};
  const ModelState good = TwoTensors(0.5f, 0.25f, 2.0f);

  FedAsync clean;
  REQUIRE(clean.Begin(x, info).ok());
  REQUIRE(clean.Accumulate(Update(1, 10, good, 2)).ok());
  auto expected = clean.Finalize();
  REQUIRE(expected.ok());

  FedAsync fedasync;
  Status st = fedasync.Accumulate(Update(1, 10, good, 2));
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(st.message(), Contains("Begin"));
  CHECK(fedasync.Finalize().status().code() == StatusCode::kFailedPrecondition);
  REQUIRE(fedasync.Begin(x, info).ok());
  // Finalize with none accepted fails and leaves the version open.
  st = fedasync.Finalize().status();
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(st.message(), Contains("no update"));

  st = fedasync.Accumulate(Update(2, 10, good, 5));  // from the future
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 2") && Contains("base_version 5"));
  st = fedasync.Accumulate(Update(3, 10, Vector({0.5f, 0.25f, 2.0f}), 2));  // other layout
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 3"));
  st = fedasync.Accumulate(Update(4, 10, TwoTensors(0.5f, NAN, 2.0f), 2));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 4"));
  st = fedasync.Accumulate(Update(5, 0, good, 2));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("num_samples 0"));
  CHECK(fedasync.accepted() == 0);

  REQUIRE(fedasync.Accumulate(Update(1, 10, good, 2)).ok());
  st = fedasync.Accumulate(Update(6, 10, TwoTensors(9.0f, 9.0f, 9.0f), 4));
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(st.message(), Contains("FedAsync mixes one update per model version; call Begin"));
  CHECK(fedasync.accepted() == 1);
  auto out = fedasync.Finalize();
  REQUIRE(out.ok());
  CHECK(*out == *expected);  // bitwise: the refused updates left no trace
  CHECK(fedasync.RoundFigures() == clean.RoundFigures());

  // After Finalize the next update waits for the next Begin.
  CHECK(fedasync.Accumulate(Update(1, 10, good, 2)).code() == StatusCode::kFailedPrecondition);
  CHECK(fedasync.Finalize().status().code() == StatusCode::kFailedPrecondition);

  // Invalid options are reported by Begin.
  FedAsyncOptions bad;
  bad.alpha = 0.0;
  FedAsync refused(bad);
  CHECK_THAT(refused.Begin(x, info).message(), Contains("alpha"));
  CHECK(refused.Accumulate(Update(1, 10, good, 4)).code() == StatusCode::kFailedPrecondition);
  CHECK(fedasync.Begin(ModelState(), info).code() == StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// StalenessWeighted (FedBuff)

TEST_CASE("staleness weighting with every staleness 0 is FedAvg bit for bit", "[async]") {
  core::Rng rng(7);
  const std::size_t n = 257;
  const ModelState x = RandomVector(rng, n, 1.0);
  const auto same_base = std::make_shared<const ModelState>(x);
  StalenessWeighted weighted(std::make_unique<FedAvg>(), StalenessOptions{});
  CHECK(weighted.name() == "FedAvg+staleness");
  CHECK(weighted.is_linear());
  CHECK_FALSE(weighted.needs_all_updates());
  FedAvg plain;
  const RoundInfo info{3, 3, 3};
  REQUIRE(weighted.Begin(x, info).ok());
  REQUIRE(plain.Begin(x, info).ok());
  const std::int64_t samples[] = {10, 35, 4};
  for (int c = 0; c < 3; ++c) {
    const ModelState local = RandomVector(rng, n, 1.0);
    // A staleness-0 update may come with its base (Begin's model) or without.
    REQUIRE(
        weighted.Accumulate(Update(c, samples[c], local, 3, c == 1 ? same_base : nullptr)).ok());
    REQUIRE(plain.Accumulate(Update(c, samples[c], local, 3)).ok());
  }
  CHECK(weighted.accepted() == 3);
  auto a = weighted.Finalize();
  auto b = plain.Finalize();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);
  const auto figures = weighted.RoundFigures();
  CHECK(figures.at("staleness_mean") == 0.0);
  CHECK(figures.at("staleness_max") == 0.0);

  // Passed on untouched even where rebasing would round: x + (x_i - x) in float64 loses x_i = 1
  // next to x = 1e30.
  const ModelState big = Vector({1e30f, 0.0f});
  StalenessWeighted exact(std::make_unique<FedAvg>(), StalenessOptions{});
  REQUIRE(exact.Begin(big, {0, 0, 1}).ok());
  REQUIRE(exact
              .Accumulate(
                  Update(0, 1, Vector({1.0f, 2.0f}), 0, std::make_shared<const ModelState>(big)))
              .ok());
  auto out = exact.Finalize();
  REQUIRE(out.ok());
  CHECK(*out == Vector({1.0f, 2.0f}));
}

// x + sum_i w_i s(t_i) (x_i - b_i), w_i = n_i / sum n, in float64.
std::vector<double> FedBuffReference(const ModelState& x, const std::vector<ModelState>& locals,
                                     const std::vector<const ModelState*>& bases,
                                     const std::vector<std::int64_t>& samples,
                                     const std::vector<double>& s) {
  double total = 0.0;
  for (std::int64_t k : samples) total += static_cast<double>(k);
  std::vector<double> out(x.flat().begin(), x.flat().end());
  for (std::size_t c = 0; c < locals.size(); ++c) {
    const double w = static_cast<double>(samples[c]) / total;
    const ModelState& b = bases[c] ? *bases[c] : x;
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] +=
          w * s[c] * (static_cast<double>(locals[c].flat()[i]) - static_cast<double>(b.flat()[i]));
    }
  }
  return out;
}

TEST_CASE("staleness weighting rebases stale updates onto the global model", "[async]") {
  core::Rng rng(13);
  const std::size_t n = 301;
  const StalenessOptions options;  // polynomial, a = 0.5
  const RoundInfo info{9, 10, 3};
  const ModelState x = RandomVector(rng, n, 1.0);

  SECTION("every update of staleness 2") {
    const double s = 1.0 / std::sqrt(3.0);
    REQUIRE(StalenessWeight(options, 2) == Approx(s));
    const auto base = std::make_shared<const ModelState>(RandomVector(rng, n, 1.0));
    StalenessWeighted weighted(std::make_unique<FedAvg>(), options);
    REQUIRE(weighted.Begin(x, info).ok());
    std::vector<ModelState> locals;
    const std::vector<std::int64_t> samples = {10, 30, 60};
    for (std::size_t c = 0; c < 3; ++c) {
      locals.push_back(RandomVector(rng, n, 1.0));
      REQUIRE(
          weighted
              .Accumulate(Update(static_cast<std::int64_t>(c), samples[c], locals.back(), 8, base))
              .ok());
    }
    auto out = weighted.Finalize();
    REQUIRE(out.ok());
    const auto ref =
        FedBuffReference(x, locals, {base.get(), base.get(), base.get()}, samples, {s, s, s});
    for (std::size_t i = 0; i < n; ++i) REQUIRE(out->flat()[i] == Approx(ref[i]).margin(1e-6));
    CHECK(weighted.RoundFigures().at("staleness_mean") == 2.0);
    CHECK(weighted.RoundFigures().at("staleness_max") == 2.0);
  }

  SECTION("mixed staleness, each update with its own base") {
    // Staleness 0 (no base), 1 and 3; s = 1, 1 / sqrt(2), 1 / 2.
    const auto base9 = std::make_shared<const ModelState>(RandomVector(rng, n, 1.0));
    const auto base7 = std::make_shared<const ModelState>(RandomVector(rng, n, 1.0));
    StalenessWeighted weighted(std::make_unique<FedAvg>(), options);
    REQUIRE(weighted.Begin(x, info).ok());
    std::vector<ModelState> locals;
    for (int c = 0; c < 3; ++c) locals.push_back(RandomVector(rng, n, 1.0));
    const std::vector<std::int64_t> samples = {5, 20, 15};
    REQUIRE(weighted.Accumulate(Update(0, samples[0], locals[0], 10)).ok());
    REQUIRE(weighted.Accumulate(Update(1, samples[1], locals[1], 9, base9)).ok());
    REQUIRE(weighted.Accumulate(Update(2, samples[2], locals[2], 7, base7)).ok());
    auto out = weighted.Finalize();
    REQUIRE(out.ok());
    const auto ref = FedBuffReference(x, locals, {nullptr, base9.get(), base7.get()}, samples,
                                      {1.0, 1.0 / std::sqrt(2.0), 0.5});
    for (std::size_t i = 0; i < n; ++i) REQUIRE(out->flat()[i] == Approx(ref[i]).margin(1e-6));
    const auto figures = weighted.RoundFigures();
    CHECK(figures.at("staleness_mean") == Approx(4.0 / 3.0));
    CHECK(figures.at("staleness_max") == 3.0);
  }
}

TEST_CASE("staleness weighting leaves integer buffers at the clients' values", "[async]") {
  ModelState x;
  const float w[] = {1.0f, 2.0f};
  const float count[] = {4.0f};
  REQUIRE(x.Add("w", {2}, w).ok());
  REQUIRE(x.Add("num_batches_tracked", {}, count, core::DType::kInt64).ok());
  auto base = std::make_shared<ModelState>(x);
  base->flat() = {0.0f, 0.0f, 2.0f};
  ModelState local = x;
  local.flat() = {2.0f, 4.0f, 6.0f};
  StalenessWeighted weighted(std::make_unique<FedAvg>(), StalenessOptions{});
  REQUIRE(weighted.Begin(x, {0, 3, 1}).ok());
  REQUIRE(weighted.Accumulate(Update(0, 1, local, 0, base)).ok());  // staleness 3: s = 0.5
  auto out = weighted.Finalize();
  REQUIRE(out.ok());
  CHECK(out->flat()[0] == Approx(1.0 + 0.5 * 2.0));
  CHECK(out->flat()[1] == Approx(2.0 + 0.5 * 4.0));
  CHECK(out->flat()[2] == 6.0f);  // the counter: the client's, not rebased
}

TEST_CASE("staleness weighting refuses updates it cannot rebase, leaving the round as it was",
          "[async]") {
  core::Rng rng(17);
  const std::size_t n = 33;
  const ModelState x = RandomVector(rng, n, 1.0);
  const auto base = std::make_shared<const ModelState>(RandomVector(rng, n, 1.0));
  const ModelState good = RandomVector(rng, n, 1.0);
  const RoundInfo info{2, 6, 0};

  StalenessWeighted clean(std::make_unique<FedAvg>(), StalenessOptions{});
  REQUIRE(clean.Begin(x, info).ok());
  REQUIRE(clean.Accumulate(Update(1, 10, good, 5, base)).ok());
  auto expected = clean.Finalize();
  REQUIRE(expected.ok());

  StalenessWeighted weighted(std::make_unique<FedAvg>(), StalenessOptions{});
  CHECK(weighted.Accumulate(Update(1, 10, good, 5, base)).code() ==
        StatusCode::kFailedPrecondition);
  REQUIRE(weighted.Begin(x, info).ok());
  Status st = weighted.Accumulate(Update(2, 10, good, 4));  // staleness 2, no base
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 2") &&
                               Contains("an update trained from model version 4 (staleness 2) "
                                        "needs its base model"));
  st = weighted.Accumulate(Update(3, 10, good, 7, base));  // from the future
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("base_version 7"));
  const auto short_base = std::make_shared<const ModelState>(RandomVector(rng, n - 1, 1.0));
  st = weighted.Accumulate(Update(4, 10, good, 1, short_base));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 4") && Contains("base model"));
  st = weighted.Accumulate(Update(5, 10, RandomVector(rng, n + 1, 1.0), 5, base));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 5"));
  ModelState nan = good;
  nan.flat()[7] = NAN;
  st = weighted.Accumulate(Update(6, 10, nan, 5, base));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 6"));
  auto nan_base = std::make_shared<ModelState>(*base);
  nan_base->flat()[3] = INFINITY;
  st = weighted.Accumulate(Update(7, 10, good, 5, nan_base));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 7") && Contains("base model"));
  // A staleness-0 update goes on unrebased, but its NaN is still refused here, on arrival
  // (FedAvg alone would find it only when its fold runs).
  st = weighted.Accumulate(Update(9, 10, nan, 6));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Contains("client 9"));
  st = weighted.Accumulate(Update(8, 0, good, 0, base));  // the inner refuses: num_samples 0
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(weighted.accepted() == 0);

  REQUIRE(weighted.Accumulate(Update(1, 10, good, 5, base)).ok());
  auto out = weighted.Finalize();
  REQUIRE(out.ok());
  CHECK(*out == *expected);
  // Only the accepted update (staleness 1) counts, not the refused staleness-6 one.
  CHECK(weighted.RoundFigures().at("staleness_mean") == 1.0);
  CHECK(weighted.RoundFigures().at("staleness_max") == 1.0);

  StalenessOptions bad;
  bad.function = "linear";
  StalenessWeighted refused(std::make_unique<FedAvg>(), bad);
  CHECK_THAT(refused.Begin(x, info).message(),
             Contains("FedAvg+staleness") && Contains("staleness_function 'linear'"));
  CHECK(refused.Accumulate(Update(1, 10, good, 6)).code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("staleness weighting composes with a server optimizer", "[async]") {
  core::Rng rng(23);
  const std::size_t n = 129;
  const ModelState x = RandomVector(rng, n, 1.0);
  const auto base = std::make_shared<const ModelState>(RandomVector(rng, n, 1.0));
  const RoundInfo info{4, 5, 0};
  std::vector<ModelState> locals;
  for (int c = 0; c < 3; ++c) locals.push_back(RandomVector(rng, n, 1.0));
  const std::vector<std::int64_t> samples = {1, 1, 1};
  const std::vector<std::int64_t> base_versions = {5, 3, 3};  // staleness 0, 2, 2

  // x + 0.5 (mean of rebased - x), in float64.
  const double s = 1.0 / std::sqrt(3.0);
  const auto rebased_mean =
      FedBuffReference(x, locals, {nullptr, base.get(), base.get()}, samples, {1.0, s, s});
  std::vector<double> ref(n);
  for (std::size_t i = 0; i < n; ++i) {
    ref[i] = x.flat()[i] + 0.5 * (rebased_mean[i] - static_cast<double>(x.flat()[i]));
  }

  ServerOptimizerOptions sgd;
  sgd.lr = 0.5;
  REQUIRE(ValidateServerOptimizer(sgd).ok());
  std::vector<std::unique_ptr<Aggregator>> nestings;
  nestings.push_back(std::make_unique<ServerOptimizer>(
      std::make_unique<StalenessWeighted>(std::make_unique<FedAvg>(), StalenessOptions{}), sgd));
  nestings.push_back(std::make_unique<StalenessWeighted>(
      std::make_unique<ServerOptimizer>(std::make_unique<FedAvg>(), sgd), StalenessOptions{}));
  CHECK(nestings[0]->name() == "ServerSGD(FedAvg+staleness)");
  CHECK(nestings[1]->name() == "ServerSGD(FedAvg)+staleness");
  for (auto& agg : nestings) {
    INFO(agg->name());
    REQUIRE(agg->Begin(x, info).ok());
    for (std::size_t c = 0; c < 3; ++c) {
      REQUIRE(agg->Accumulate(Update(static_cast<std::int64_t>(c), samples[c], locals[c],
                                     base_versions[c], c == 0 ? nullptr : base))
                  .ok());
    }
    auto out = agg->Finalize();
    REQUIRE(out.ok());
    for (std::size_t i = 0; i < n; ++i) REQUIRE(out->flat()[i] == Approx(ref[i]).margin(1e-6));
    const auto figures = agg->RoundFigures();
    CHECK(figures.count("server_step_norm") == 1);
    CHECK(figures.at("staleness_mean") == Approx(4.0 / 3.0));
    CHECK(figures.at("staleness_max") == 2.0);
    // The server optimizer's state passes through the staleness wrapper both ways.
    const auto saved = agg->SaveState();
    CHECK(saved.count("server_opt_m") == 1);
    CHECK(agg->RestoreState(saved).ok());
  }
}

}  // namespace
TEST_CASE("the registry's FedBuff at staleness 0 and server_lr 1 is its FedAvg", "[async]") {
  AggregatorOptions options;  // server sgd, lr 1: the identity step
  auto buff = CreateAggregator("FedBuff", options);
  auto avg = CreateAggregator("FedAvg", options);
  REQUIRE(buff.ok());
  REQUIRE(avg.ok());
  CHECK(IsAsynchronous("FedBuff"));
  CHECK(IsAsynchronous("FedAsync"));
  CHECK_FALSE(IsAsynchronous("FedAvg"));
  core::Rng rng(21);
  const ModelState x = RandomVector(rng, 100, 1.0);
  REQUIRE((*buff)->Begin(x, {0, 5, 10}).ok());
  REQUIRE((*avg)->Begin(x, {0, 5, 10}).ok());
  for (int c = 0; c < 10; ++c) {
    const ModelState local = RandomVector(rng, 100, 1.0);
    REQUIRE((*buff)->Accumulate(Update(c, 5 + c, local, 5)).ok());
    REQUIRE((*avg)->Accumulate(Update(c, 5 + c, local, 5)).ok());
  }
  auto a = (*buff)->Finalize();
  auto b = (*avg)->Finalize();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);  // bit for bit

  // With a server step the registry wraps the staleness weighting; FedAsync takes none.
  options.server.lr = 0.5;
  REQUIRE(CreateAggregator("FedBuff", options).ok());
  auto mixed = CreateAggregator("FedAsync", options);
  REQUIRE_FALSE(mixed.ok());
  CHECK_THAT(mixed.status().message(), Contains("FedBuff"));
  options.server.lr = 1.0;
  options.central_dp = true;
  options.dp.noise_multiplier = 1.0;
  auto dp = CreateAggregator("FedBuff", options);
  REQUIRE_FALSE(dp.ok());
  CHECK_THAT(dp.status().message(), Contains("local DP"));
}

}  // namespace fedml::algorithms
