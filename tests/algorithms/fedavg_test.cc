#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/registry.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"

namespace fedml::algorithms {
namespace {

using core::ModelState;

// A model with tensors of awkward sizes (not multiples of any vector width) and an empty one.
const std::vector<std::vector<std::int64_t>> kShapes = {{3, 5}, {257}, {0}, {2, 3, 7}, {1}};

ModelState RandomState(core::Rng& rng, double scale) {
  ModelState s;
  for (std::size_t t = 0; t < kShapes.size(); ++t) {
    std::size_t n = 1;
    for (auto d : kShapes[t]) n *= static_cast<std::size_t>(d);
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(scale * rng.Normal());
    REQUIRE(s.Add("t" + std::to_string(t), kShapes[t], v.data()).ok());
  }
  return s;
}

ClientUpdate MakeUpdate(std::int64_t id, std::int64_t samples, ModelState state) {
  ClientUpdate u;
  u.client_id = id;
  u.num_samples = samples;
  u.state = std::move(state);
  return u;
}

std::vector<ClientUpdate> RandomUpdates(core::Rng& rng, int n) {
  std::vector<ClientUpdate> out;
  for (int i = 0; i < n; ++i) {
    // Sample counts over three orders of magnitude, values of mixed scale.
    const auto samples = static_cast<std::int64_t>(1 + rng.UniformInt(5000));
    out.push_back(MakeUpdate(i, samples, RandomState(rng, 1.0 + 10.0 * rng.Uniform())));
  }
  return out;
}

// Float64 weighted mean.
std::vector<double> Reference(const std::vector<ClientUpdate>& ups) {
  std::vector<double> sum(ups[0].state.numel(), 0.0);
  double w = 0.0;
  for (const ClientUpdate& u : ups) {
    w += static_cast<double>(u.num_samples);
    for (std::size_t i = 0; i < sum.size(); ++i) {
      sum[i] += static_cast<double>(u.num_samples) * u.state.data()[i];
    }
  }
  for (double& s : sum) s /= w;
  return sum;
}

Result<ModelState> RunRound(FedAvg& agg, const ModelState& global,
                            const std::vector<ClientUpdate>& ups) {
  FEDML_RETURN_IF_ERROR(agg.Begin(global, {}));
  for (const ClientUpdate& u : ups) FEDML_RETURN_IF_ERROR(agg.Accumulate(u));
  return agg.Finalize();
}

// Largest |input| at each coordinate: the scale of the float32 rounding errors there.
std::vector<double> MaxAbs(const std::vector<ClientUpdate>& ups) {
  std::vector<double> m(ups[0].state.numel(), 0.0);
  for (const ClientUpdate& u : ups) {
    for (std::size_t i = 0; i < m.size(); ++i) {
      m[i] = std::max(m[i], std::fabs(static_cast<double>(u.state.data()[i])));
    }
  }
  return m;
}

TEST_CASE("FedAvg matches a float64 weighted mean", "[fedavg]") {
  core::Rng rng(7);
  double worst = 0.0;  // in units of FLT_EPSILON * max|input|
  for (int width : {1, 3, 8, 13, 32}) {
    for (int n : {1, 2, 3, 7, 8, 9, 16, 17, 31, 50}) {
      const std::vector<ClientUpdate> ups = RandomUpdates(rng, n);
      FedAvg agg(FedAvgOptions{width});
      Result<ModelState> got = RunRound(agg, ModelState::ZerosLike(ups[0].state), ups);
      REQUIRE(got.ok());
      REQUIRE(agg.accepted() == n);
      REQUIRE(got->CheckSameLayout(ups[0].state).ok());
      const std::vector<double> ref = Reference(ups);
      const std::vector<double> scale = MaxAbs(ups);
      // Each fold rounds the running mean to float32 once (half an ulp of at most max|input|)
      // and later folds shrink that error, so the bound is half an epsilon per fold.
      const int folds = (n + width - 1) / width;
      const double tolerance = 0.5 * folds + 1.0;
      for (std::size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs(got->data()[i] - ref[i]) / (FLT_EPSILON * scale[i]);
        worst = std::max(worst, err);
        INFO("width " << width << " n " << n << " element " << i);
        REQUIRE(err <= tolerance);
      }
    }
  }
  // The inputs are fixed by the seed and the kernels do the same operations on every ISA, so
  // the observed worst case (0.55 when written) is reproducible; well under the bound above.
  CHECK(worst < 1.0);
}

TEST_CASE("FedAvg does not depend on arrival order beyond float rounding", "[fedavg]") {
  core::Rng rng(11);
  for (int width : {1, 3, 8}) {
    std::vector<ClientUpdate> ups = RandomUpdates(rng, 29);
    FedAvg agg(FedAvgOptions{width});
    const ModelState global = ModelState::ZerosLike(ups[0].state);
    Result<ModelState> a = RunRound(agg, global, ups);
    rng.Shuffle(ups);
    Result<ModelState> b = RunRound(agg, global, ups);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const std::vector<double> scale = MaxAbs(ups);
    const int folds = (29 + width - 1) / width;
    for (std::size_t i = 0; i < scale.size(); ++i) {
      const double diff = std::fabs(a->data()[i] - b->data()[i]) / (FLT_EPSILON * scale[i]);
      INFO("width " << width << " element " << i);
      REQUIRE(diff <= 1.0 * folds + 1.0);
    }
  }
}

TEST_CASE("FedAvg's fold split over threads gives the same bits for any thread count",
          "[fedavg][threads]") {
  // 300007 parameters (not a multiple of any range or vector width): ranges of 64K split it
  // between up to 5 threads; each parameter's arithmetic is the same whichever thread folds it.
  core::Rng rng(41);
  std::vector<float> v(300007);
  const auto state = [&](double scale) {
    for (float& x : v) x = static_cast<float>(scale * rng.Normal());
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(v.size())}, v.data()).ok());
    return s;
  };
  const ModelState global = state(1.0);
  std::vector<ClientUpdate> ups;
  for (int i = 0; i < 11; ++i) {
    ups.push_back(MakeUpdate(i, 1 + static_cast<std::int64_t>(rng.UniformInt(900)), state(3.0)));
  }
  FedAvg one(FedAvgOptions{4, 1});
  Result<ModelState> want = RunRound(one, global, ups);
  REQUIRE(want.ok());
  for (int threads : {2, 3, 7, 0}) {
    INFO(threads << " threads");
    FedAvg many(FedAvgOptions{4, threads});
    Result<ModelState> got = RunRound(many, global, ups);
    REQUIRE(got.ok());
    CHECK(*got == *want);
  }
  // A NaN in the last range is still found, and the round goes on without its update.
  std::vector<ClientUpdate> with_nan = ups;
  with_nan[5].state.data()[300000] = std::numeric_limits<float>::quiet_NaN();
  FedAvg threaded(FedAvgOptions{4, 3});
  REQUIRE(threaded.Begin(global, {}).ok());
  Status st;
  for (const ClientUpdate& u : with_nan) {
    Status s = threaded.Accumulate(u);
    if (!s.ok()) st = s;
  }
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(st.message().find("client 5") != std::string::npos);
  CHECK(threaded.accepted() == 10);
}

// Values of either sign with magnitudes log-uniform in [1e-30, 1e30]: every coordinate mixes
// inputs sixty orders of magnitude apart, so small inputs are lost in the rounding of large ones
// and the error bound must hold relative to the largest input at that coordinate.
void FillWideRange(core::Rng& rng, std::vector<float>& v) {
  for (float& x : v) {
    const double magnitude = std::pow(10.0, -30.0 + 60.0 * rng.Uniform());
    x = static_cast<float>(rng.Uniform() < 0.5 ? -magnitude : magnitude);
  }
}

TEST_CASE("FedAvg stays within its bound of a float64 mean on adversarial inputs", "[fedavg]") {
  // 10,000 updates of 1,031 parameters (lines of 16, an unaligned head and a tail), generated one
  // at a time so that only the float64 reference is held; sample counts log-uniform in [1, 1e6].
  constexpr int kUpdates = 10000;
  constexpr std::size_t kParams = 1031;
  core::Rng rng(2026);
  std::vector<float> v(kParams);
  std::vector<double> sum(kParams, 0.0), scale(kParams, 0.0);
  double total = 0.0;
  const int width = FedAvgOptions{}.fold_width;
  FedAvg agg;
  ModelState global;
  REQUIRE(global.Add("w", {static_cast<std::int64_t>(kParams)}, v.data()).ok());
  REQUIRE(agg.Begin(global, {}).ok());
  for (int c = 0; c < kUpdates; ++c) {
    FillWideRange(rng, v);
    const auto samples = static_cast<std::int64_t>(std::pow(10.0, 6.0 * rng.Uniform()));
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(kParams)}, v.data()).ok());
    total += static_cast<double>(samples);
    for (std::size_t i = 0; i < kParams; ++i) {
      sum[i] += static_cast<double>(samples) * static_cast<double>(v[i]);
      scale[i] = std::max(scale[i], std::fabs(static_cast<double>(v[i])));
    }
    // Ids in reverse arrival order, so that every fold reorders its batch.
    REQUIRE(agg.Accumulate(MakeUpdate(kUpdates - c, samples, std::move(s))).ok());
  }
  Result<ModelState> got = agg.Finalize();
  REQUIRE(got.ok());
  // The header's bound: half a float32 epsilon of max|input| per fold, plus one.
  const int folds = (kUpdates + width - 1) / width;
  const double bound = 0.5 * folds + 1.0;
  double worst = 0.0;
  for (std::size_t i = 0; i < kParams; ++i) {
    const double ref = sum[i] / total;
    const double err = std::fabs(got->data()[i] - ref) / (FLT_EPSILON * scale[i]);
    worst = std::max(worst, err);
    INFO("element " << i << " got " << got->data()[i] << " want " << ref);
    REQUIRE(err <= bound);
  }
  // Later folds shrink earlier folds' errors (by W_f / W), so in practice the error stays far
  // below the per-fold bound: 0.049 epsilon of max|input| when written, fixed by the seed.
  CHECK(worst < 0.5);
}

TEST_CASE("FedAvg gives the same bits for any thread count on adversarial inputs",
          "[fedavg][threads]") {
  // Wide-range values over 300007 parameters, so every thread's range starts at a different
  // alignment and the vector kernel's head, lines and tail all run; widths 8 (the default) and 5
  // (an odd kernel), 13 and 32 (several passes of up to 8 per block), 21 updates (partial last
  // folds).
  core::Rng rng(97);
  std::vector<float> v(300007);
  const auto state = [&] {
    FillWideRange(rng, v);
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(v.size())}, v.data()).ok());
    return s;
  };
  const ModelState global = state();
  std::vector<ClientUpdate> ups;
  for (int i = 0; i < 21; ++i) {
    const auto samples = static_cast<std::int64_t>(std::pow(10.0, 6.0 * rng.Uniform()));
    ups.push_back(MakeUpdate(i, samples, state()));
  }
  for (int width : {8, 5, 13, 32}) {
    FedAvg one(FedAvgOptions{width, 1});
    Result<ModelState> want = RunRound(one, global, ups);
    REQUIRE(want.ok());
    for (int threads : {2, 3, 4, 7, 0}) {
      INFO("width " << width << ", " << threads << " threads");
      FedAvg many(FedAvgOptions{width, threads});
      Result<ModelState> got = RunRound(many, global, ups);
      REQUIRE(got.ok());
      CHECK(*got == *want);
    }
  }
}

TEST_CASE("FedAvg gives the same bits in any arrival order within one fold", "[fedavg]") {
  // A round of at most fold_width updates is one fold, summed in client-id order: any arrival
  // order and any thread count give the same bits. (Longer rounds are bounded, not bit-identical:
  // see the order test above and the header.)
  core::Rng rng(5);
  std::vector<float> v(70001);
  std::vector<ClientUpdate> ups;
  const int width = FedAvgOptions{}.fold_width;
  for (int i = 0; i < width; ++i) {
    FillWideRange(rng, v);
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(v.size())}, v.data()).ok());
    ups.push_back(
        MakeUpdate(100 + i, 1 + static_cast<std::int64_t>(rng.UniformInt(1000000)), std::move(s)));
  }
  const ModelState global = ModelState::ZerosLike(ups[0].state);
  FedAvg first;
  Result<ModelState> want = RunRound(first, global, ups);
  REQUIRE(want.ok());
  for (int trial = 0; trial < 6; ++trial) {
    rng.Shuffle(ups);
    FedAvg agg(FedAvgOptions{width, 1 + trial % 3});
    Result<ModelState> got = RunRound(agg, global, ups);
    REQUIRE(got.ok());
    INFO("trial " << trial);
    CHECK(*got == *want);
  }
}

TEST_CASE("FedAvg with order_independent gives the same bits in any arrival order", "[fedavg]") {
  // 29 wide-range updates over several folds; shuffled arrivals, thread counts 1-3, widths 3 and
  // 8. Then a NaN update among them: Finalize drops it, and the next Finalize gives the bits of
  // a round in which it never arrived.
  core::Rng rng(77);
  std::vector<float> v(70001);
  std::vector<ClientUpdate> ups;
  for (int i = 0; i < 29; ++i) {
    FillWideRange(rng, v);
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(v.size())}, v.data()).ok());
    ups.push_back(MakeUpdate(1000 - 7 * i, 1 + static_cast<std::int64_t>(rng.UniformInt(100000)),
                             std::move(s)));
  }
  const ModelState global = ModelState::ZerosLike(ups[0].state);
  for (int width : {3, 8}) {
    FedAvgOptions options{width, 1};
    options.order_independent = true;
    FedAvg first(options);
    Result<ModelState> want = RunRound(first, global, ups);
    REQUIRE(want.ok());
    std::vector<ClientUpdate> order = ups;
    for (int trial = 0; trial < 4; ++trial) {
      rng.Shuffle(order);
      options.threads = 1 + trial % 3;
      FedAvg agg(options);
      Result<ModelState> got = RunRound(agg, global, order);
      REQUIRE(got.ok());
      INFO("width " << width << " trial " << trial);
      CHECK(*got == *want);
    }
    std::vector<ClientUpdate> with_bad = order;
    ClientUpdate bad = with_bad[3];
    bad.client_id = 901;  // sorts among the others, so its fold has neighbours to keep
    bad.state.data()[12345] = std::numeric_limits<float>::infinity();
    with_bad.insert(with_bad.begin() + 11, bad);
    options.threads = 2;
    FedAvg agg(options);
    REQUIRE(agg.Begin(global, {}).ok());
    for (const ClientUpdate& u : with_bad) REQUIRE(agg.Accumulate(u).ok());
    Result<ModelState> dropped = agg.Finalize();
    REQUIRE(dropped.status().code() == StatusCode::kInvalidArgument);
    CHECK(dropped.status().message().find("client 901") != std::string::npos);
    Result<ModelState> rest = agg.Finalize();
    REQUIRE(rest.ok());
    CHECK(agg.accepted() == 29);
    CHECK(*rest == *want);
  }
}

TEST_CASE("FedAvg weights by sample count", "[fedavg]") {
  ModelState a, b;
  const float one = 1.0f, four = 4.0f;
  REQUIRE(a.Add("w", {1}, &one).ok());
  REQUIRE(b.Add("w", {1}, &four).ok());
  FedAvg agg;
  REQUIRE(agg.Begin(ModelState::ZerosLike(a), {}).ok());
  REQUIRE(agg.Accumulate(MakeUpdate(0, 2, a)).ok());
  REQUIRE(agg.Accumulate(MakeUpdate(1, 1, b)).ok());
  Result<ModelState> r = agg.Finalize();
  REQUIRE(r.ok());
  CHECK(r->data()[0] == 2.0f);  // (2 * 1 + 1 * 4) / 3
}

TEST_CASE("FedAvg refuses bad updates and leaves the round unchanged", "[fedavg]") {
  core::Rng rng(3);
  for (int width : {1, 3, 8}) {
    const std::vector<ClientUpdate> good = RandomUpdates(rng, 10);
    const ModelState global = ModelState::ZerosLike(good[0].state);
    FedAvg agg(FedAvgOptions{width});
    Result<ModelState> expected = RunRound(agg, global, good);
    REQUIRE(expected.ok());

    // Same round with a bad update slipped in after each position.
    for (int bad_at = 0; bad_at <= 10; ++bad_at) {
      for (int kind = 0; kind < 4; ++kind) {
        INFO("width " << width << " bad at " << bad_at << " kind " << kind);
        ClientUpdate bad = MakeUpdate(99, 10, good[0].state);
        std::string expect_in_message;
        if (kind == 0) {  // wrong layout: a tensor missing
          ModelState s;
          REQUIRE(s.Add("t0", kShapes[0], good[0].state.data()).ok());
          bad.state = s;
          expect_in_message = "tensors, expected";
        } else if (kind == 1) {  // zero samples
          bad.num_samples = 0;
          expect_in_message = "num_samples 0";
        } else {  // NaN, or +Inf, in the middle of a tensor
          bad.state.TensorData("t1")[100] = kind == 2 ? std::numeric_limits<float>::quiet_NaN()
                                                      : std::numeric_limits<float>::infinity();
          expect_in_message = "non-finite value";
        }
        REQUIRE(agg.Begin(global, {}).ok());
        // A layout or sample-count error comes from the Accumulate that was given the update;
        // a non-finite one from whichever call folds it (see fedavg.h). Either way exactly one
        // error, naming client 99, and the result is as if the update had never been given.
        std::vector<Status> errors;
        for (int i = 0; i <= 10; ++i) {
          if (i == bad_at) {
            Status st = agg.Accumulate(bad);
            if (!st.ok()) errors.push_back(st);
            if (kind < 2) REQUIRE(!st.ok());
          }
          if (i < 10) {
            Status st = agg.Accumulate(good[i]);
            if (!st.ok()) errors.push_back(st);
          }
        }
        Result<ModelState> got = agg.Finalize();
        if (!got.ok()) {
          errors.push_back(got.status());
          got = agg.Finalize();  // the rest of the round is still there
        }
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].code() == StatusCode::kInvalidArgument);
        CHECK_THAT(errors[0].message(),
                   Catch::Contains("client 99") && Catch::Contains(expect_in_message));
        REQUIRE(got.ok());
        CHECK(agg.accepted() == 10);
        CHECK(*got == *expected);  // bitwise: the same folds happened
      }
    }
  }
}

TEST_CASE("FedAvg reports a non-finite update at once with fold width 1", "[fedavg]") {
  ModelState s;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(s.Add("w", {1}, &nan).ok());
  FedAvg agg(FedAvgOptions{1});
  REQUIRE(agg.Begin(ModelState::ZerosLike(s), {}).ok());
  Status st = agg.Accumulate(MakeUpdate(5, 1, s));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("client 5") && Catch::Contains("tensor 'w'"));
  CHECK(agg.accepted() == 0);
  CHECK(agg.Finalize().status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("FedAvg Finalize without updates is FAILED_PRECONDITION", "[fedavg]") {
  core::Rng rng(1);
  const ModelState global = RandomState(rng, 1.0);
  FedAvg agg;
  CHECK(agg.Finalize().status().code() == StatusCode::kFailedPrecondition);  // no Begin
  REQUIRE(agg.Begin(global, {}).ok());
  Result<ModelState> r = agg.Finalize();
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(r.status().message(), Catch::Contains("no update"));
  CHECK(agg.Accumulate(MakeUpdate(0, 1, global)).ok());  // the round is still open
}

TEST_CASE("FedAvg Begin resets the round", "[fedavg]") {
  core::Rng rng(5);
  const std::vector<ClientUpdate> first = RandomUpdates(rng, 13);
  const std::vector<ClientUpdate> second = RandomUpdates(rng, 5);
  const ModelState global = ModelState::ZerosLike(first[0].state);
  FedAvg fresh(FedAvgOptions{3});
  Result<ModelState> expected = RunRound(fresh, global, second);
  REQUIRE(expected.ok());

  FedAvg agg(FedAvgOptions{3});
  // A finished round, then an abandoned one (queued and folded updates), then the real one.
  REQUIRE(RunRound(agg, global, first).ok());
  CHECK(agg.Accumulate(first[0]).code() == StatusCode::kFailedPrecondition);
  REQUIRE(agg.Begin(global, {}).ok());
  for (int i = 0; i < 4; ++i) REQUIRE(agg.Accumulate(first[i]).ok());
  Result<ModelState> got = RunRound(agg, global, second);
  REQUIRE(got.ok());
  CHECK(agg.accepted() == 5);
  CHECK(*got == *expected);
}

TEST_CASE("Registry creates FedAvg and refuses unknown names", "[fedavg][registry]") {
  CHECK(AggregatorNames().front() == "FedAvg");
  Result<std::unique_ptr<Aggregator>> a = CreateAggregator("FedAvg", {});
  REQUIRE(a.ok());
  CHECK((*a)->name() == "FedAvg");
  CHECK((*a)->is_linear());
  CHECK_FALSE((*a)->needs_all_updates());

  for (const char* bad : {"fedavg", "FedProxy", ""}) {
    Result<std::unique_ptr<Aggregator>> r = CreateAggregator(bad, {});
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("allowed: FedAvg"));
  }
  AggregatorOptions wide;
  wide.fold_width = kMaxFoldWidth + 1;
  CHECK(CreateAggregator("FedAvg", wide).status().code() == StatusCode::kInvalidArgument);
  wide.fold_width = 0;
  CHECK(CreateAggregator("FedAvg", wide).status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedml::algorithms
