// The server's aggregation on the training device (fedml/api/device_aggregation.h), run on the
// CPU here: the same LibTorch code a CUDA build runs on the GPU.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "config_helpers.h"
#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/registry.h"
#include "fedml/api/device_aggregation.h"
#include "fedml/api/simulation.h"
#include "model_states.h"

using fedml::Status;
using fedml::algorithms::Aggregator;
using fedml::algorithms::ClientUpdate;
using fedml::core::ModelState;

namespace {

ModelState TwoTensors(fedml::core::Rng& rng, float scale) {
  ModelState s;
  std::vector<float> w(300);
  std::vector<float> b(7);
  for (float& x : w) x = static_cast<float>(scale * rng.Normal());
  for (float& x : b) x = static_cast<float>(scale * rng.Normal());
  REQUIRE(s.Add("fc.weight", {30, 10}, w.data()).ok());
  REQUIRE(s.Add("fc.bias", {7}, b.data()).ok());
  return s;
}

ClientUpdate UpdateOf(std::int64_t client, std::int64_t samples, ModelState state) {
  ClientUpdate u;
  u.client_id = client;
  u.round = 0;
  u.num_samples = samples;
  u.state = std::move(state);
  return u;
}

double MaxAbsDifference(const ModelState& a, const ModelState& b) {
  REQUIRE(a.CheckSameLayout(b).ok());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(a.data()[i]) - b.data()[i]));
  }
  return worst;
}

std::unique_ptr<Aggregator> DeviceFedAvgOnCpu() {
  auto made = fedml::api::CreateDeviceFedAvg("cpu");
  REQUIRE(made.ok());
  return std::move(made).value();
}

}  // namespace

TEST_CASE("the device mean equals the host FedAvg and the float64 weighted mean",
          "[device_aggregation]") {
  fedml::core::Rng rng(7);
  auto device = DeviceFedAvgOnCpu();
  fedml::algorithms::FedAvg host;
  const ModelState global = TwoTensors(rng, 1.0F);
  for (int round = 0; round < 3; ++round) {  // Begin again after Finalize, as the controller does
    REQUIRE(device->Begin(global, {round, round, 12}).ok());
    REQUIRE(host.Begin(global, {round, round, 12}).ok());
    std::vector<double> reference(global.numel(), 0.0);
    double total = 0.0;
    for (int c = 0; c < 12; ++c) {
      const std::int64_t samples = 1 + (c * 37 + round) % 500;  // uneven weights
      ModelState s = TwoTensors(rng, 3.0F);
      for (std::size_t i = 0; i < s.numel(); ++i) reference[i] += samples * s.data()[i];
      total += static_cast<double>(samples);
      REQUIRE(host.Accumulate(UpdateOf(c, samples, s)).ok());
      const Status taken = device->Accumulate(UpdateOf(c, samples, std::move(s)));
      REQUIRE(taken.ok());
    }
    CHECK(device->accepted() == 12);
    auto on_device = device->Finalize();
    auto on_host = host.Finalize();
    REQUIRE(on_device.ok());
    REQUIRE(on_host.ok());
    CHECK(on_device->CheckSameLayout(global).ok());
    // Inputs are ~N(0, 9): twelve lerps in float32 stay within a few ulps of 10.
    CHECK(MaxAbsDifference(*on_device, *on_host) < 2e-5);
    double worst = 0.0;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      worst = std::max(worst, std::fabs(on_device->data()[i] - reference[i] / total));
    }
    CHECK(worst < 2e-5);
    CHECK(device->accepted() == 0);  // the round is over
  }
}

TEST_CASE("the device mean refuses bad updates and leaves the round as it was",
          "[device_aggregation]") {
  fedml::core::Rng rng(11);
  auto device = DeviceFedAvgOnCpu();
  const ModelState global = TwoTensors(rng, 1.0F);
  CHECK(device->Accumulate(UpdateOf(0, 1, global)).code() ==
        fedml::StatusCode::kFailedPrecondition);  // before Begin
  REQUIRE(device->Begin(global, {}).ok());
  CHECK(device->Finalize().status().message().find("no update was accepted") != std::string::npos);

  REQUIRE(device->Begin(global, {}).ok());
  const ModelState a = TwoTensors(rng, 1.0F);
  const ModelState b = TwoTensors(rng, 1.0F);
  REQUIRE(device->Accumulate(UpdateOf(0, 10, a)).ok());

  ModelState poisoned = TwoTensors(rng, 1.0F);
  poisoned.data()[5] = std::numeric_limits<float>::quiet_NaN();
  Status st = device->Accumulate(UpdateOf(1, 10, poisoned));
  CHECK(st.code() == fedml::StatusCode::kInvalidArgument);
  CHECK(st.message().find("client 1") != std::string::npos);
  CHECK(st.message().find("NaN or Inf") != std::string::npos);
  poisoned.data()[5] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(device->Accumulate(UpdateOf(1, 10, poisoned)).ok());

  st = device->Accumulate(UpdateOf(2, 0, b));
  CHECK(st.message().find("num_samples must be > 0") != std::string::npos);
  st = device->Accumulate(UpdateOf(3, 10, fedml::testing::Vector({1.0F, 2.0F})));
  CHECK(st.code() == fedml::StatusCode::kInvalidArgument);
  CHECK(st.message().find("client 3") != std::string::npos);

  REQUIRE(device->Accumulate(UpdateOf(4, 30, b)).ok());
  CHECK(device->accepted() == 2);
  auto mean = device->Finalize();
  REQUIRE(mean.ok());
  // Exactly the mean of a (10) and b (30): the refused updates left no trace.
  for (std::size_t i = 0; i < a.numel(); ++i) {
    const double want = (10.0 * a.data()[i] + 30.0 * b.data()[i]) / 40.0;
    REQUIRE(std::fabs(mean->data()[i] - want) < 1e-6);
  }
}

TEST_CASE("a large weight and huge finite values do not overflow the device mean",
          "[device_aggregation]") {
  fedml::api::DeviceMean mean(4, torch::kCPU);
  const float big = std::numeric_limits<float>::max() / 2;
  REQUIRE(mean.Add(torch::full({4}, big), 1e12).ok());
  REQUIRE(mean.Add(torch::full({4}, big), 1e12).ok());
  CHECK(torch::isfinite(mean.mean()).all().item<bool>());
  CHECK(mean.mean()[0].item<float>() == Approx(big));
  CHECK(mean.Add(torch::ones({3}), 1.0).message().find("4 float32 values") != std::string::npos);
  CHECK_FALSE(mean.Add(torch::ones({4}), -1.0).ok());
  CHECK(mean.count() == 2);
}

TEST_CASE("a GPU run's server averages on the device; the CPU run keeps the host FedAvg",
          "[device_aggregation]") {
  const fedml::api::RawConfig base = {{"dataset", "synthetic"}, {"model", "lr"}};
  auto on_cpu = fedml::api::AggregatorOptionsFrom(fedml::testing::ConfigWith(base, {}));
  REQUIRE(on_cpu.ok());
  CHECK_FALSE(on_cpu->mean_factory);

  auto on_gpu = fedml::api::AggregatorOptionsFrom(
      fedml::testing::ConfigWith(base, {{"using_gpu", "true"}, {"gpu_id", "0"}}));
  REQUIRE(on_gpu.ok());
  REQUIRE(on_gpu->mean_factory);
  if (!torch::cuda::is_available()) {
    // CPU-only LibTorch: the server refuses before the first round, naming the device.
    auto made = fedml::algorithms::CreateAggregator("FedAvg", *on_gpu);
    REQUIRE_FALSE(made.ok());
    CHECK(made.status().message().find("device 'cuda:0' asked for") != std::string::npos);
  }

  // The factory replaces the mean inside the pipeline: FedAvgM's server momentum runs on what
  // it averaged, and the result equals the host pipeline's.
  auto options = *on_cpu;
  options.server.type = "sgd";
  options.server.lr = 1.0;
  options.server.momentum = 0.9;
  auto host = fedml::algorithms::CreateAggregator("FedAvgM", options);
  options.mean_factory = [] { return fedml::api::CreateDeviceFedAvg("cpu"); };
  auto device = fedml::algorithms::CreateAggregator("FedAvgM", options);
  REQUIRE(host.ok());
  REQUIRE(device.ok());
  fedml::core::Rng rng(3);
  ModelState global = TwoTensors(rng, 1.0F);
  ModelState global_host = global;
  for (int round = 0; round < 3; ++round) {
    REQUIRE((*host)->Begin(global_host, {round, round, 4}).ok());
    REQUIRE((*device)->Begin(global, {round, round, 4}).ok());
    for (int c = 0; c < 4; ++c) {
      ModelState s = TwoTensors(rng, 1.0F);
      REQUIRE((*host)->Accumulate(UpdateOf(c, 5 + c, s)).ok());
      const Status taken = (*device)->Accumulate(UpdateOf(c, 5 + c, std::move(s)));
      REQUIRE(taken.ok());
    }
    auto h = (*host)->Finalize();
    auto d = (*device)->Finalize();
    REQUIRE(h.ok());
    REQUIRE(d.ok());
    CHECK(MaxAbsDifference(*h, *d) < 1e-5);
    CHECK(MaxAbsDifference(*d, global) > 0.01);  // it did move
    global_host = std::move(h).value();
    global = std::move(d).value();
  }
}
