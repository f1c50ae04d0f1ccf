#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"

using namespace fedml;
using namespace fedml::core;

TEST_CASE("model state round-trips through a module, buffers included", "[model_state]") {
  torch::nn::Sequential net(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  net->train();
  net->forward(torch::randn({8, 4}));  // moves running stats and num_batches_tracked
  auto state = StateFromModule(*net);
  REQUIRE(state.ok());
  // 2 parameters of Linear, 2 of BatchNorm, 3 buffers.
  REQUIRE(state->num_tensors() == 7);
  CHECK(state->numel() == 4 * 3 + 3 + 3 + 3 + 3 + 3 + 1);
  const int nbt = state->Find("1.num_batches_tracked");
  REQUIRE(nbt >= 0);
  CHECK(state->specs()[nbt].dtype == DType::kInt64);
  CHECK(state->data()[state->specs()[nbt].offset] == 1.0f);

  torch::nn::Sequential other(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  REQUIRE(LoadStateIntoModule(*state, *other).ok());
  auto again = StateFromModule(*other);
  REQUIRE(again.ok());
  CHECK(*again == *state);
  CHECK(other->named_buffers()["1.num_batches_tracked"].scalar_type() == torch::kLong);
  CHECK(other->named_buffers()["1.num_batches_tracked"].item<std::int64_t>() == 1);
}

TEST_CASE("loading a state of another shape is refused and changes nothing", "[model_state]") {
  torch::nn::Linear a(4, 3), b(5, 3);
  auto sa = StateFromModule(*a);
  REQUIRE(sa.ok());
  auto before = StateFromModule(*b);
  Status st = LoadStateIntoModule(*sa, *b);
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(st.message().find("weight") != std::string::npos);
  CHECK(*StateFromModule(*b) == *before);

  torch::nn::Sequential c(torch::nn::Linear(4, 3), torch::nn::Linear(3, 3));
  st = LoadStateIntoModule(*sa, *c);
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(st.message().find("tensors") != std::string::npos);
}

TEST_CASE("ModelState checks layouts and finiteness", "[model_state]") {
  ModelState a;
  const float v[3] = {1, 2, 3};
  REQUIRE(a.Add("w", {3}, v).ok());
  CHECK(a.Add("w", {3}, v).code() == StatusCode::kInvalidArgument);
  CHECK(a.Add("neg", {-1}, v).code() == StatusCode::kInvalidArgument);
  ModelState b;
  REQUIRE(b.Add("w", {1, 3}, v).ok());
  Status st = a.CheckSameLayout(b, "update");
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK(st.message().find("shape") != std::string::npos);
  a.data()[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(a.CheckFinite().message().find("'w'") != std::string::npos);
}

TEST_CASE("built-in models have the sizes of McMahan et al.", "[model_state]") {
  auto cnn = CreateModel("cnn", {1, 28, 28}, 10, 0);
  REQUIRE(cnn.ok());
  auto s = StateFromModule(*cnn->ptr());
  REQUIRE(s.ok());
  CHECK(s->numel() == 1663370);
  auto mlp = CreateModel("mlp", {1, 28, 28}, 10, 0);
  REQUIRE(mlp.ok());
  CHECK(StateFromModule(*mlp->ptr())->numel() == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
  auto lr = CreateModel("lr", {60}, 10, 0);
  REQUIRE(lr.ok());
  CHECK(StateFromModule(*lr->ptr())->numel() == 610);
  CHECK(CreateModel("resnet", {1, 28, 28}, 10, 0).status().message().find("lr, mlp, cnn, ") !=
        std::string::npos);
  CHECK_FALSE(CreateModel("cnn", {60}, 10, 0).ok());
  // Same seed, same weights; another seed, other weights.
  auto a = StateFromModule(*CreateModel("mlp", {60}, 10, 7)->ptr());
  auto b = StateFromModule(*CreateModel("mlp", {60}, 10, 7)->ptr());
  auto c = StateFromModule(*CreateModel("mlp", {60}, 10, 8)->ptr());
  CHECK(*a == *b);
  CHECK(*a != *c);
}

TEST_CASE("the saved final model is a pickled dict of tensors", "[model_state]") {
  torch::nn::Linear net(3, 2);
  auto s = StateFromModule(*net);
  REQUIRE(s.ok());
  const auto path = (std::filesystem::temp_directory_path() / "fedml_final_model_test.pt").string();
  REQUIRE(SaveStateForPyTorch(*s, path).ok());
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto value = torch::pickle_load(bytes);
  REQUIRE(value.isGenericDict());
  auto dict = value.toGenericDict();
  REQUIRE(dict.size() == 2);
  CHECK(torch::equal(dict.at("weight").toTensor(), net->weight));
  CHECK(torch::equal(dict.at("bias").toTensor(), net->bias));
  std::remove(path.c_str());
}

TEST_CASE("asking for CUDA without CUDA is a clear error", "[model_state]") {
  CHECK(ParseDevice("cpu").ok());
  CHECK(ParseDevice("gpu0").status().message().find("cpu or cuda:N") != std::string::npos);
  CHECK_FALSE(WorkerStream(torch::kCPU).has_value());  // the CPU has no streams
  if (!torch::cuda::is_available()) {
    auto d = ParseDevice("cuda:0");
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().message().find("no CUDA") != std::string::npos);
  }
}
