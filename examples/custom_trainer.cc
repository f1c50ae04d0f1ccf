// Bring your own model and trainer: a researcher's LibTorch module and training loop, run
// through fedml-cpp's FedAvg simulation. Build it inside this tree (examples/) or against an
// installed fedml with find_package(fedml) (examples/consumer/CMakeLists.txt).
//
//   custom_trainer [rounds] [dataset]     e.g.  custom_trainer 5 synthetic
#include <fedml/fedml.h>

#include <cstdio>
#include <cstdlib>

namespace {

// The researcher's own model: a small two-layer network.
struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl(std::int64_t in, std::int64_t classes)
      : fc1(register_module("fc1", torch::nn::Linear(in, 64))),
        fc2(register_module("fc2", torch::nn::Linear(64, classes))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(fc1->forward(x.flatten(1)));
    return fc2->forward(x);
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(TinyNet);

// The researcher's own trainer: plain SGD with gradient clipping, its own loop.
class MyTrainer : public fedml::api::ClientTrainer {
 public:
  MyTrainer(std::shared_ptr<const fedml::api::FederatedData> data, std::uint64_t seed)
      : data_(std::move(data)) {
    std::int64_t in = 1;
    for (auto d : data_->train.sample_shape) in *= d;
    torch::manual_seed(seed);  // called from one thread at a time (see RunSimulation's factory)
    net_ = TinyNet(in, data_->train.num_classes);
  }

  fedml::Status SetState(const fedml::core::ModelState& s) override {
    return fedml::core::LoadStateIntoModule(s, *net_);
  }
  fedml::Result<fedml::core::ModelState> GetState() override {
    return fedml::core::StateFromModule(*net_);
  }

  fedml::Result<fedml::api::LocalUpdate> Train(const fedml::api::TrainTask& task) override {
    const auto& idx = data_->partition.client_indices.at(static_cast<std::size_t>(task.client_id));
    torch::optim::SGD opt(net_->parameters(), torch::optim::SGDOptions(0.1));
    auto x_all = fedml::core::FeaturesTensor(data_->train);
    auto y_all = torch::from_blob(const_cast<std::int64_t*>(data_->train.labels.data()),
                                  {static_cast<std::int64_t>(data_->train.size())}, torch::kLong);
    auto index = torch::tensor(idx, torch::kLong);
    net_->train();
    double loss_sum = 0;
    for (std::int64_t b = 0; b < index.size(0); b += 32) {
      auto i = index.narrow(0, b, std::min<std::int64_t>(32, index.size(0) - b));
      opt.zero_grad();
      auto loss = torch::cross_entropy_loss(net_->forward(x_all.index_select(0, i)),
                                            y_all.index_select(0, i));
      loss.backward();
      torch::nn::utils::clip_grad_norm_(net_->parameters(), 5.0);
      opt.step();
      loss_sum += loss.item<double>() * static_cast<double>(i.size(0));
    }
    fedml::api::LocalUpdate u;
    FEDML_ASSIGN_OR_RETURN(u.state, GetState());
    u.num_samples = static_cast<std::int64_t>(idx.size());
    u.metrics["train_loss"] = loss_sum / static_cast<double>(idx.size());
    return u;
  }

  // The server asks each worker for one contiguous shard of the test set.
  fedml::Result<fedml::api::Evaluation> Evaluate(const fedml::api::EvalTask& task) override {
    torch::NoGradGuard no_grad;
    net_->eval();
    const auto n = static_cast<std::int64_t>(data_->test.size());
    const std::int64_t first = n * task.shard / task.num_shards;
    const std::int64_t len = n * (task.shard + 1) / task.num_shards - first;
    fedml::api::Evaluation e;
    e.num_samples = len;
    if (len == 0) return e;
    auto x = fedml::core::FeaturesTensor(data_->test).narrow(0, first, len);
    auto y =
        torch::from_blob(const_cast<std::int64_t*>(data_->test.labels.data()), {n}, torch::kLong)
            .narrow(0, first, len);
    auto logits = net_->forward(x);
    e.loss = torch::cross_entropy_loss(logits, y).item<double>();
    e.accuracy = logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
    return e;
  }

 private:
  std::shared_ptr<const fedml::api::FederatedData> data_;
  TinyNet net_{nullptr};
};

}  // namespace

int main(int argc, char** argv) {
  fedml::api::RawConfig overrides{{"comm_round", argc > 1 ? argv[1] : "5"},
                                  {"dataset", argc > 2 ? argv[2] : "synthetic"},
                                  {"model", "mlp"},
                                  {"client_num_per_round", "10"},
                                  {"model_file_cache_folder", ""}};
  auto config = fedml::api::BuildConfig({}, overrides);
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", config.status().message().c_str());
    return 2;
  }
  auto data = fedml::api::LoadFederatedData(*config);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", data.status().message().c_str());
    return 3;
  }
  fedml::api::SimulationHooks hooks;
  // Every trainer starts from the same weights; the server's copy (the last one made) provides
  // the initial global model anyway.
  hooks.trainer_factory = [d = *data, seed = config->random_seed](
                              int) -> fedml::Result<std::unique_ptr<fedml::api::ClientTrainer>> {
    return std::unique_ptr<fedml::api::ClientTrainer>(std::make_unique<MyTrainer>(d, seed));
  };
  hooks.on_round = [](const fedml::api::RoundMetrics& m) {
    std::printf("round %lld  train_loss %.4f  test_acc %.4f\n", static_cast<long long>(m.round),
                m.train_loss, m.test_accuracy);
  };
  auto summary = fedml::api::RunSimulation(*config, hooks);
  if (!summary.ok()) {
    std::fprintf(stderr, "error: %s\n", summary.status().message().c_str());
    return 4;
  }
  std::printf("summary: final test_accuracy %.4f\n", summary->final_accuracy);
  return 0;
}
