// A TorchScript model as a LibTorch module (fedml/core/train/models.h, CreateModel): the
// scripted module's own parameters and buffers, the same tensors, registered under their own
// dotted names in a tree of empty child modules, so the trainer, the model state and the
// optimizer see exactly what torch.jit exported (state_dict names included), and an update to
// either is an update to both.
#include <torch/script.h>

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fedml/core/train/models.h"
#include "scripted_model.h"

namespace fedml::core {
namespace {

struct ScriptedModelImpl : torch::nn::Module {
  explicit ScriptedModelImpl(torch::jit::script::Module module) : script(std::move(module)) {
    for (const auto& p : script.named_parameters(/*recurse=*/true)) {
      auto [owner, leaf] = Owner(p.name);
      owner->register_parameter(leaf, p.value, p.value.requires_grad());
    }
    for (const auto& b : script.named_buffers(/*recurse=*/true)) {
      auto [owner, leaf] = Owner(b.name);
      owner->register_buffer(leaf, b.value);
    }
  }

  torch::Tensor forward(torch::Tensor x) { return script.forward({std::move(x)}).toTensor(); }

  void train(bool on = true) override {
    torch::nn::Module::train(on);
    script.train(on);
  }

  // The module that holds `dotted`'s last component, creating the path's children on the way.
  std::pair<torch::nn::Module*, std::string> Owner(const std::string& dotted) {
    torch::nn::Module* m = this;
    std::string path;
    std::size_t start = 0;
    for (std::size_t dot = dotted.find('.'); dot != std::string::npos;
         start = dot + 1, dot = dotted.find('.', start)) {
      const std::string part = dotted.substr(start, dot - start);
      path += (path.empty() ? "" : ".") + part;
      auto it = children_.find(path);
      if (it == children_.end()) {
        auto child = std::make_shared<torch::nn::Module>();
        m->register_module(part, child);
        it = children_.emplace(path, child).first;
      }
      m = it->second.get();
    }
    return {m, dotted.substr(start)};
  }

  torch::jit::script::Module script;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> children_;
};
TORCH_MODULE(ScriptedModel);

std::string ShapeText(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// The first line of a LibTorch error (its messages run on with C++ and TorchScript stacks).
std::string FirstLine(const std::string& what) {
  std::istringstream in(what);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) return line;
  }
  return what;
}

}  // namespace

bool IsScriptedModelPath(const std::string& model) {
  return model.size() > 3 && model.compare(model.size() - 3, 3, ".pt") == 0;
}

Result<torch::nn::AnyModule> LoadScriptedModel(const std::string& path,
                                               const std::vector<std::int64_t>& sample_shape,
                                               std::int64_t num_classes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::InvalidArgument("model " + path +
                                   ": no such file (a built-in model's name, or the path of a "
                                   "TorchScript export ending in .pt)");
  }
  torch::jit::script::Module script;
  try {
    script = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("model " + path +
                                   ": not a TorchScript file that LibTorch can load (export one "
                                   "with torch.jit.script(model).save(path) or torch.jit.trace; "
                                   "docs/linking.md): " +
                                   FirstLine(e.what()));
  }
  ScriptedModel model(std::move(script));
  // Refused before round 1 when it cannot take this data set: a batch of two zero samples must
  // give two rows of num_classes logits.
  std::vector<std::int64_t> batch = {2};
  batch.insert(batch.end(), sample_shape.begin(), sample_shape.end());
  try {
    torch::NoGradGuard no_grad;
    model->eval();
    const torch::Tensor out = model->forward(torch::zeros(batch));
    model->train();
    const std::vector<std::int64_t> got(out.sizes().begin(), out.sizes().end());
    if (got != std::vector<std::int64_t>{2, num_classes}) {
      return Status::InvalidArgument(
          "model " + path + " outputs " + ShapeText(got) + " for a batch of 2 samples of shape " +
          ShapeText(sample_shape) + "; this data set needs " + ShapeText({2, num_classes}) + " (" +
          std::to_string(num_classes) + " classes)");
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(
        "model " + path + " cannot take this data set's samples, shape " + ShapeText(sample_shape) +
        " (a batch is " + ShapeText(batch) + "): " + FirstLine(e.what()));
  }
  return torch::nn::AnyModule(model);
}

}  // namespace fedml::core
