// The model zoo: each benchmark model builds for its data set's sample shape with the size its
// reference states, runs forward and backward, trains (a few steps lower the loss on a fixed
// batch), is the same for a seed, and refuses a data set it does not fit, naming both shapes.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <string>
#include <vector>

#include "fedml/core/train/local_trainer.h"
#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"

using namespace fedml;
using namespace fedml::core;
using Catch::Matchers::Contains;

namespace {

std::int64_t ParameterCount(torch::nn::AnyModule& m) {
  std::int64_t n = 0;
  for (const auto& p : m.ptr()->parameters()) n += p.numel();
  return n;
}

// Inputs of `shape` for a batch: letter indices for sequence models, normal pixels otherwise.
torch::Tensor Batch(const std::vector<std::int64_t>& shape, std::int64_t classes, int batch) {
  std::vector<std::int64_t> sizes = {batch};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  if (shape.size() == 1) return torch::randint(0, classes, sizes).to(torch::kFloat);
  return torch::randn(sizes);
}

}  // namespace

TEST_CASE("the benchmark models build at their published sizes and train", "[models]") {
  struct Case {
    std::string name;
    std::vector<std::int64_t> shape;
    std::int64_t classes;
    std::int64_t params;  // expected parameter count
  };
  // cnn_cifar: 3*32*9+32 + 32*64*9+64 + 12544*128+128 + 128*10+10 (pfl-research's simple_cnn).
  // cnn_femnist: LEAF's, 6,603,710 parameters for 62 classes.
  // lstm_shakespeare: 80*8 + LSTM(8->256) + LSTM(256->256) + 256*80+80 (LEAF's stacked LSTM).
  // resnet20 / resnet56: He et al.'s CIFAR ResNets with projection shortcuts (about 0.27M and
  // 0.86M); resnet18 for CIFAR about 11.2M.
  const std::vector<Case> cases = {
      {"cnn_cifar", {3, 32, 32}, 10, 896 + 18496 + 1605760 + 1290},
      {"cnn_femnist", {1, 28, 28}, 62, 6603710},
      {"lstm_shakespeare",
       {80},
       80,
       640 + 4 * 256 * (8 + 256 + 2) + 4 * 256 * (256 + 256 + 2) + 256 * 80 + 80},
      {"resnet20", {3, 32, 32}, 10, 0},
      {"resnet20_gn", {3, 32, 32}, 10, 0},
      {"resnet56", {3, 32, 32}, 100, 0},
      {"resnet18", {3, 32, 32}, 10, 0},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto model = CreateModel(c.name, c.shape, c.classes, 7);
    REQUIRE(model.ok());
    const std::int64_t n = ParameterCount(*model);
    if (c.params > 0) CHECK(n == c.params);
    if (c.name == "resnet20") CHECK((n > 260000 && n < 290000));
    if (c.name == "resnet56") CHECK((n > 840000 && n < 880000));
    if (c.name == "resnet18") CHECK((n > 11000000 && n < 11300000));
    // The same seed, the same weights; forward gives one row of logits per sample.
    auto again = CreateModel(c.name, c.shape, c.classes, 7);
    REQUIRE(again.ok());
    auto a = StateFromModule(*model->ptr());
    auto b = StateFromModule(*again->ptr());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
    torch::manual_seed(1);
    const torch::Tensor x = Batch(c.shape, c.classes, 8);
    const torch::Tensor y = torch::randint(0, c.classes, {8});
    model->ptr()->train();
    torch::optim::SGD opt(model->ptr()->parameters(), torch::optim::SGDOptions(0.05));
    double first = 0, last = 0;
    for (int step = 0; step < 8; ++step) {
      opt.zero_grad();
      torch::Tensor out = model->forward(x);
      REQUIRE(out.sizes() == torch::IntArrayRef({8, c.classes}));
      torch::Tensor loss = torch::nn::functional::cross_entropy(out, y);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    INFO("loss " << first << " -> " << last);
    CHECK(last < first);
  }
}

TEST_CASE("a model refuses a data set it does not fit, naming both shapes", "[models]") {
  auto femnist_on_cifar = CreateModel("cnn_femnist", {3, 32, 32}, 10, 0);
  CHECK(femnist_on_cifar.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(femnist_on_cifar.status().message(), Contains("28x28") && Contains("[3, 32, 32]"));
  auto resnet_on_vectors = CreateModel("resnet20", {60}, 10, 0);
  CHECK_THAT(resnet_on_vectors.status().message(), Contains("[C, H, W]") && Contains("[60]"));
  auto lstm_on_images = CreateModel("lstm_shakespeare", {1, 28, 28}, 62, 0);
  CHECK_THAT(lstm_on_images.status().message(), Contains("shape [length]"));
  auto unknown = CreateModel("vgg16", {3, 32, 32}, 10, 0);
  CHECK_THAT(unknown.status().message(), Contains("resnet18_gn"));
}

TEST_CASE("crop-and-flip augmentation is drawn from the seed and changes what is trained",
          "[models][augment]") {
  data::Dataset ds;
  ds.sample_shape = {3, 8, 8};
  ds.num_classes = 2;
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({16, 3, 8, 8});
  ds.features.assign(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  for (int i = 0; i < 16; ++i) ds.labels.push_back(i % 2);
  std::vector<std::int64_t> indices(16);
  for (int i = 0; i < 16; ++i) indices[static_cast<std::size_t>(i)] = i;
  const auto train = [&](bool augment, std::uint64_t seed) {
    auto model = CreateModel("cnn_cifar", ds.sample_shape, 2, 1);
    REQUIRE(model.ok());
    LocalTrainOptions o;
    o.batch_size = 4;
    o.augment_crop_flip = augment;
    auto stats = TrainLocal(*model, ds, indices, o, seed, torch::kCPU);
    REQUIRE(stats.ok());
    auto state = StateFromModule(*model->ptr());
    REQUIRE(state.ok());
    return *state;
  };
  const ModelState a = train(true, 5);
  CHECK(train(true, 5) == a);   // the same draws for the same seed
  CHECK(train(false, 5) != a);  // the crops and flips changed the batches
  CHECK(train(true, 6) != a);
}
