// TorchScript models: a model exported from Python by Debian's python3-torch (the same 1.13
// build as libtorch-dev) trains as the equivalent built-in model does, round for round from the
// same initial weights; its buffers are model state; a model that does not fit the data set, or
// a file that is not TorchScript, is refused before round 1 naming both shapes or the file.
#include <catch2/catch.hpp>

#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "config_helpers.h"
#include "fedml/api/simulation.h"
#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::api;
using Catch::Matchers::Contains;
using fedml::testing::TempDir;

namespace {

// Debian's interpreter, which python3-torch installs into (a PATH python3 may be another).
constexpr const char* kPython = "/usr/bin/python3";

// Runs `body` (Python, with torch and nn imported) to export a model to `path`.
void Export(const TempDir& dir, const std::string& path, const std::string& body) {
  const std::string script = dir.File("export.py");
  std::ofstream(script) << "import torch\nfrom torch import nn\n" << body << "\n";
  const std::string cmd =
      std::string(kPython) + " " + script + " " + path + " > " + dir.File("export.log") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(dir.File("export.log"));
  const std::string out((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  INFO("python3-torch export failed (scripts/setup.sh installs python3-torch for the tests):\n"
       << out);
  REQUIRE(rc == 0);
}

const char* kLogistic = R"(
import sys
class LR(nn.Module):
    def __init__(self, inputs: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(inputs, classes)
    def forward(self, x):
        return self.fc(x.flatten(1))
inputs, classes = int(sys.argv[2]), int(sys.argv[3])
torch.jit.script(LR(inputs, classes)).save(sys.argv[1])
)";

RawConfig Synthetic() {
  return {{"dataset", "synthetic"},       {"model", "lr"},       {"client_num_in_total", "8"},
          {"client_num_per_round", "4"},  {"comm_round", "3"},   {"batch_size", "16"},
          {"learning_rate", "0.05"},      {"random_seed", "11"}, {"worker_num", "2"},
          {"model_file_cache_folder", ""}};
}

}  // namespace

TEST_CASE("a TorchScript model from python3-torch trains round for round as the built-in one",
          "[scripted]") {
  TempDir dir("scripted");
  const std::string exported = dir.File("lr.pt");
  Export(dir, exported + " 60 10", kLogistic);
  // The same initial weights as the built-in lr of this seed, written into the scripted file.
  const Config builtin = fedml::testing::ConfigWith(Synthetic(), {});
  auto reference = core::CreateModel("lr", {60}, 10, builtin.random_seed);
  REQUIRE(reference.ok());
  auto initial = core::StateFromModule(*reference->ptr());
  REQUIRE(initial.ok());
  torch::jit::script::Module script = torch::jit::load(exported);
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : script.named_parameters()) {
      const int i = initial->Find(p.name);
      REQUIRE(i >= 0);
      const auto& spec = initial->specs()[static_cast<std::size_t>(i)];
      p.value.copy_(torch::from_blob(const_cast<float*>(initial->data() + spec.offset),
                                     p.value.sizes(), torch::kFloat));
    }
  }
  const std::string same = dir.File("lr_same_weights.pt");
  script.save(same);

  auto a = RunSimulation(builtin);
  auto b = RunSimulation(fedml::testing::ConfigWith(Synthetic(), {{"model", same}}));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->rounds.size() == b->rounds.size());
  for (std::size_t r = 0; r < a->rounds.size(); ++r) {
    INFO("round " << r + 1);
    CHECK(b->rounds[r].test_accuracy == a->rounds[r].test_accuracy);
    CHECK(b->rounds[r].train_loss == a->rounds[r].train_loss);
  }
  CHECK(b->final_model == a->final_model);  // the same names, shapes and values
}

TEST_CASE("a scripted model's buffers are model state, shared with the script", "[scripted]") {
  TempDir dir("scripted_bn");
  const std::string path = dir.File("bn.pt");
  Export(dir, path, R"(
import sys
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))
torch.jit.script(Net()).save(sys.argv[1])
)");
  auto model = core::CreateModel(path, {1, 28, 28}, 10, 0);
  REQUIRE(model.ok());
  auto state = core::StateFromModule(*model->ptr());
  REQUIRE(state.ok());
  CHECK(state->Find("conv.weight") >= 0);
  CHECK(state->Find("head.1.bias") >= 0);
  const int mean = state->Find("bn.running_mean");
  REQUIRE(mean >= 0);
  REQUIRE(state->Find("bn.num_batches_tracked") >= 0);
  // A training forward moves the running statistics, seen through the wrapper's state.
  model->ptr()->train();
  model->forward(torch::randn({4, 1, 28, 28}) + 3.0);
  auto after = core::StateFromModule(*model->ptr());
  REQUIRE(after.ok());
  const auto& spec = after->specs()[static_cast<std::size_t>(mean)];
  CHECK(after->data()[spec.offset] != state->data()[spec.offset]);
}

TEST_CASE("a scripted model that does not fit the data set is refused before round 1",
          "[scripted]") {
  TempDir dir("scripted_bad");
  const std::string five = dir.File("five_classes.pt");
  Export(dir, five + " 60 5", kLogistic);
  auto wrong_classes = RunSimulation(fedml::testing::ConfigWith(Synthetic(), {{"model", five}}));
  REQUIRE_FALSE(wrong_classes.ok());
  CHECK_THAT(wrong_classes.status().message(),
             Contains("five_classes.pt") && Contains("outputs [2, 5]") && Contains("[2, 10]"));
  const std::string wide = dir.File("wide.pt");
  Export(dir, wide + " 100 10", kLogistic);
  auto wrong_input = core::CreateModel(wide, {60}, 10, 0);
  REQUIRE_FALSE(wrong_input.ok());
  CHECK_THAT(wrong_input.status().message(),
             Contains("wide.pt") && Contains("cannot take this data set's samples, shape [60]"));
  const std::string junk = dir.File("junk.pt");
  std::ofstream(junk) << "not a zip archive";
  auto not_script = core::CreateModel(junk, {60}, 10, 0);
  CHECK_THAT(not_script.status().message(),
             Contains("junk.pt") && Contains("not a TorchScript file"));
  auto missing = core::CreateModel(dir.File("missing.pt"), {60}, 10, 0);
  CHECK(missing.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(missing.status().message(), Contains("missing.pt: no such file"));
}
