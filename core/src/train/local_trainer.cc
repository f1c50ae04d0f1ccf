#include "fedml/core/train/local_trainer.h"

#include <cmath>

#include "fedml/core/random.h"
#include "fedml/core/train/torch_bridge.h"

namespace fedml::core {

torch::Tensor FeaturesTensor(const data::Dataset& data) {
  std::vector<std::int64_t> sizes{static_cast<std::int64_t>(data.size())};
  sizes.insert(sizes.end(), data.sample_shape.begin(), data.sample_shape.end());
  return torch::from_blob(const_cast<float*>(data.features.data()), sizes, torch::kFloat);
}

namespace {

constexpr std::uint64_t kAugmentTag = 0x6175676d656e74ULL;  // "augment"

// Random crop of the 4-padded image and a left-right flip per sample (LocalTrainOptions).
torch::Tensor CropFlip(const torch::Tensor& x, std::uint64_t seed, std::int64_t step) {
  constexpr std::int64_t kPad = 4;
  Rng rng(DeriveSeed(seed, {kAugmentTag, static_cast<std::uint64_t>(step)}));
  const std::int64_t h = x.size(2), w = x.size(3);
  const torch::Tensor padded = torch::constant_pad_nd(x, {kPad, kPad, kPad, kPad}, 0.0);
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<std::size_t>(x.size(0)));
  for (std::int64_t i = 0; i < x.size(0); ++i) {
    const auto dy = static_cast<std::int64_t>(rng.NextU64() % (2 * kPad + 1));
    const auto dx = static_cast<std::int64_t>(rng.NextU64() % (2 * kPad + 1));
    torch::Tensor img = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
    if ((rng.NextU64() & 1U) != 0U) img = img.flip({2});
    out.push_back(img);
  }
  return torch::stack(out).contiguous();
}

}  // namespace

static torch::Tensor LabelsTensor(const data::Dataset& data) {
  return torch::from_blob(const_cast<std::int64_t*>(data.labels.data()),
                          {static_cast<std::int64_t>(data.size())}, torch::kLong);
}

Result<LocalTrainStats> TrainLocal(torch::nn::AnyModule& model, const data::Dataset& data,
                                   const std::vector<std::int64_t>& indices,
                                   const LocalTrainOptions& options, std::uint64_t seed,
                                   const torch::Device& device,
                                   const LocalTrainAdjustments& adjustments) {
  if (indices.empty()) return Status::InvalidArgument("client has no training samples");
  if (options.epochs < 1 || options.batch_size < 1 || !(options.learning_rate > 0)) {
    return Status::InvalidArgument("local training needs epochs >= 1, batch_size >= 1, lr > 0");
  }
  if (!(options.proximal_mu >= 0)) {
    return Status::InvalidArgument("fedprox_mu must be >= 0, got " +
                                   std::to_string(options.proximal_mu));
  }
  for (auto i : indices) {
    if (i < 0 || static_cast<std::size_t>(i) >= data.size()) {
      return Status::InvalidArgument("sample index " + std::to_string(i) +
                                     " is outside the data set of " + std::to_string(data.size()));
    }
  }
  LocalTrainStats stats;
  stats.num_samples = static_cast<std::int64_t>(indices.size());
  double loss_sum = 0.0;
  std::int64_t seen = 0;
  Status st = CatchTorch("local training", [&] {
    auto module = model.ptr();
    module->train();
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (options.optimizer == "adam") {
      opt = std::make_unique<torch::optim::Adam>(
          module->parameters(),
          torch::optim::AdamOptions(options.learning_rate).weight_decay(options.weight_decay));
    } else {
      opt = std::make_unique<torch::optim::SGD>(module->parameters(),
                                                torch::optim::SGDOptions(options.learning_rate)
                                                    .momentum(options.momentum)
                                                    .weight_decay(options.weight_decay));
    }
    const std::vector<torch::Tensor> params = module->parameters();
    if (!adjustments.gradient_offset.empty() &&
        adjustments.gradient_offset.size() != params.size()) {
      throw std::invalid_argument("gradient_offset has " +
                                  std::to_string(adjustments.gradient_offset.size()) +
                                  " tensors for " + std::to_string(params.size()) + " parameters");
    }
    std::vector<torch::Tensor> start;  // FedProx's anchor
    if (options.proximal_mu > 0) {
      for (const torch::Tensor& p : params) start.push_back(p.detach().clone());
    }
    const torch::Tensor features = FeaturesTensor(data);
    torch::Tensor labels = LabelsTensor(data);
    if (adjustments.flip_labels) labels = (data.num_classes - 1) - labels;
    Rng rng(seed);
    std::vector<std::int64_t> order = indices;
    const std::int64_t interval = adjustments.on_checkpoint ? adjustments.checkpoint_interval : 0;
    std::int64_t step = 0;              // the number of the next step
    std::int64_t last_checkpoint = -1;  // the step count last reported to on_checkpoint
    bool stopped = false;
    for (int epoch = 0; epoch < options.epochs && !stopped; ++epoch) {
      rng.Shuffle(order);
      for (std::size_t begin = 0; begin < order.size(); begin += options.batch_size, ++step) {
        const std::size_t end = std::min(order.size(), begin + options.batch_size);
        if (adjustments.stop_step >= 0 && step >= adjustments.stop_step) {
          stopped = true;
          break;
        }
        if (step < adjustments.first_step) continue;  // drawn, not trained: the order stays
        if (interval > 0 && step % interval == 0) {
          adjustments.on_checkpoint(step);
          last_checkpoint = step;
        }
        if (adjustments.on_batch) {
          adjustments.on_batch(order.data() + begin, end - begin);
        }
        torch::Tensor idx = torch::from_blob(
            order.data() + begin, {static_cast<std::int64_t>(end - begin)}, torch::kLong);
        torch::Tensor x = features.index_select(0, idx);
        if (options.augment_crop_flip && x.dim() == 4) x = CropFlip(x, seed, step);
        x = x.to(device);
        torch::Tensor y = labels.index_select(0, idx).to(device);
        opt->zero_grad();
        torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(x), y);
        loss.backward();
        if (!start.empty() || !adjustments.gradient_offset.empty()) {
          torch::NoGradGuard no_grad;
          for (std::size_t i = 0; i < params.size(); ++i) {
            torch::Tensor grad = params[i].mutable_grad();
            if (!grad.defined()) continue;  // a parameter the loss does not reach
            if (!start.empty()) grad.add_(params[i] - start[i], options.proximal_mu);
            if (!adjustments.gradient_offset.empty()) grad.add_(adjustments.gradient_offset[i]);
          }
        }
        opt->step();
        const double l = loss.item<double>();
        loss_sum += l * static_cast<double>(end - begin);
        seen += static_cast<std::int64_t>(end - begin);
        ++stats.steps;
      }
    }
    if (interval > 0 && step > adjustments.first_step && last_checkpoint != step) {
      adjustments.on_checkpoint(step);
    }
  });
  if (!st.ok()) return st;
  stats.mean_loss = seen > 0 ? loss_sum / static_cast<double>(seen) : 0.0;
  if (!std::isfinite(stats.mean_loss)) {
    return Status::FailedPrecondition(
        "local training diverged (loss is not finite); lower "
        "learning_rate");
  }
  return stats;
}

Result<EvalStats> EvaluateModel(torch::nn::AnyModule& model, const data::Dataset& data,
                                const std::vector<std::int64_t>& indices,
                                const torch::Device& device, int batch_size) {
  EvalStats stats;
  double loss_sum = 0.0;
  Status st = CatchTorch("evaluation", [&] {
    c10::InferenceMode inference;
    model.ptr()->eval();
    const torch::Tensor features = FeaturesTensor(data);
    const torch::Tensor labels = LabelsTensor(data);
    torch::Tensor all_idx;
    std::int64_t n = static_cast<std::int64_t>(data.size());
    if (!indices.empty()) {
      all_idx = torch::from_blob(const_cast<std::int64_t*>(indices.data()),
                                 {static_cast<std::int64_t>(indices.size())}, torch::kLong);
      n = static_cast<std::int64_t>(indices.size());
    }
    for (std::int64_t begin = 0; begin < n; begin += batch_size) {
      const std::int64_t len = std::min<std::int64_t>(batch_size, n - begin);
      torch::Tensor x, y;
      if (indices.empty()) {
        x = features.narrow(0, begin, len);
        y = labels.narrow(0, begin, len);
      } else {
        torch::Tensor idx = all_idx.narrow(0, begin, len);
        x = features.index_select(0, idx);
        y = labels.index_select(0, idx);
      }
      x = x.to(device);
      y = y.to(device);
      torch::Tensor logits = model.forward(x);
      loss_sum +=
          torch::nn::functional::cross_entropy(
              logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
              .item<double>();
      stats.correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
    }
    stats.num_samples = n;
  });
  if (!st.ok()) return st;
  if (stats.num_samples > 0) {
    stats.loss = loss_sum / static_cast<double>(stats.num_samples);
    stats.accuracy = static_cast<double>(stats.correct) / static_cast<double>(stats.num_samples);
  }
  return stats;
}

}  // namespace fedml::core
