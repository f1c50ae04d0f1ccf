#include "fedml/algorithms/registry.h"

#include <utility>

#include "fedml/algorithms/fednova.h"
#include "fedml/algorithms/scaffold.h"

namespace fedml::algorithms {
namespace {

// How a strategy's averaging stage is made, and which server step it implies.
enum class Averaging { kMean, kFedNova, kScaffold, kFedAsync, kFedBuff };

struct Entry {
  const char* name;
  Averaging averaging;
  const char* server_type;  // forced server optimizer, or nullptr: options.server as given
};

// Every strategy this build offers. Add a row here when a strategy lands.
constexpr Entry kStrategies[] = {
    {"FedAvg", Averaging::kMean, nullptr},        // McMahan et al. 2017
    {"FedOpt", Averaging::kMean, nullptr},        // Reddi et al. 2021: server_optimizer
    {"FedAvgM", Averaging::kMean, "sgd"},         // server momentum
    {"FedAdagrad", Averaging::kMean, "adagrad"},  // Reddi et al. 2021
    {"FedAdam", Averaging::kMean, "adam"},        // Reddi et al. 2021
    {"FedYogi", Averaging::kMean, "yogi"},        // Reddi et al. 2021
    {"FedProx", Averaging::kMean, nullptr},       // Li et al. 2020 (proximal term on clients)
    {"SCAFFOLD", Averaging::kScaffold, nullptr},  // Karimireddy et al. 2020
    {"FedNova", Averaging::kFedNova, nullptr},    // Wang et al. 2020
    {"FedAsync", Averaging::kFedAsync, nullptr},  // Xie et al. 2019
    {"FedBuff", Averaging::kFedBuff, nullptr},    // Nguyen et al. 2022
};

Status CheckFoldWidth(int fold_width) {
  if (fold_width < 1 || fold_width > kMaxFoldWidth) {
    return Status::InvalidArgument("fold_width is " + std::to_string(fold_width) +
                                   "; allowed: 1.." + std::to_string(kMaxFoldWidth));
  }
  return Status::Ok();
}

// Reports local DP's epsilon: each client that takes part in a round releases one Gaussian
// mechanism of its own data, so its budget is composed over the rounds without subsampling
// (q = 1), an upper bound for every client whatever rounds it was sampled in.
class LocalDpAccounting final : public ForwardingAggregator {
 public:
  LocalDpAccounting(std::unique_ptr<Aggregator> inner, DpOptions dp)
      : ForwardingAggregator(std::move(inner)), dp_(dp) {}
  std::string name() const override { return inner_->name() + "+LDP"; }
  Result<core::ModelState> Finalize() override {
    FEDML_ASSIGN_OR_RETURN(core::ModelState out, inner_->Finalize());
    ++rounds_;
    return out;
  }
  std::map<std::string, core::ModelState> SaveState() const override {
    std::map<std::string, core::ModelState> s = inner_->SaveState();
    s["ldp_rounds"] = CounterState(static_cast<double>(rounds_));
    return s;
  }
  Status RestoreState(const std::map<std::string, core::ModelState>& state) override {
    FEDML_RETURN_IF_ERROR(inner_->RestoreState(state));
    const auto it = state.find("ldp_rounds");
    if (it == state.end()) return Status::Ok();
    FEDML_ASSIGN_OR_RETURN(double rounds, CounterValue(it->second, it->first));
    rounds_ = static_cast<std::int64_t>(rounds);
    return Status::Ok();
  }
  std::map<std::string, double> RoundFigures() const override {
    std::map<std::string, double> f = inner_->RoundFigures();
    // q = 1: a client's release in each round, replace-one (its inputs are 2C apart). Every
    // round is counted, a bound on the rounds any one client takes part in.
    auto eps = DpEpsilon(1.0, dp_.noise_multiplier, rounds_, dp_.delta, dp_.sampling);
    f["dp_epsilon"] = eps.ok() ? *eps : -1.0;
    f["dp_delta"] = dp_.delta;
    return f;
  }

 private:
  DpOptions dp_;
  std::int64_t rounds_ = 0;
};

}  // namespace

core::ModelState CounterState(double value) {
  core::ModelState s;
  const float v = static_cast<float>(value);
  (void)s.Add("counter", {1}, &v);
  return s;
}

Result<double> CounterValue(const core::ModelState& state, const std::string& name) {
  if (state.num_tensors() != 1 || state.numel() != 1 || state.specs()[0].name != "counter") {
    return Status::InvalidArgument("strategy state '" + name + "' is not a counter");
  }
  return static_cast<double>(state.data()[0]);
}

Result<std::unique_ptr<Aggregator>> CreateAggregator(const std::string& name,
                                                     const AggregatorOptions& options) {
  const Entry* entry = nullptr;
  for (const Entry& e : kStrategies) {
    if (name == e.name) entry = &e;
  }
  if (!entry) {
    std::string allowed;
    for (const std::string& n : AggregatorNames()) allowed += (allowed.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("unknown federated_optimizer '" + name +
                                   "'; allowed: " + allowed + " (names are case-sensitive)");
  }
  FEDML_RETURN_IF_ERROR(CheckFoldWidth(options.fold_width));

  ServerOptimizerOptions server = options.server;
  if (entry->server_type) {
    if (options.server_optimizer_given && server.type != entry->server_type) {
      return Status::InvalidArgument("federated_optimizer " + name + " is server_optimizer " +
                                     entry->server_type + ", but server_optimizer " + server.type +
                                     " is given; use federated_optimizer FedOpt to choose it");
    }
    server.type = entry->server_type;
    if (name == std::string("FedAvgM") && server.momentum <= 0) {
      return Status::InvalidArgument(
          "FedAvgM needs server_momentum in (0, 1) (0.9 is usual); 0 is FedAvg");
    }
  }
  FEDML_RETURN_IF_ERROR(ValidateServerOptimizer(server));

  if (entry->averaging == Averaging::kFedAsync) {
    if (options.enable_defense || options.central_dp || !server.is_identity()) {
      return Status::InvalidArgument(
          "FedAsync mixes one update at a time as its own server step, so it takes no defense, "
          "central DP or server optimizer; FedBuff buffers updates and combines with them");
    }
    FedAsyncOptions fedasync{options.async_alpha, options.staleness};
    FEDML_RETURN_IF_ERROR(ValidateFedAsync(fedasync));
    std::unique_ptr<Aggregator> mixing = std::make_unique<FedAsync>(fedasync);
    if (options.local_dp) {
      mixing = std::make_unique<LocalDpAccounting>(std::move(mixing), options.dp);
    }
    return mixing;
  }
  if (entry->averaging == Averaging::kFedBuff && options.central_dp) {
    return Status::InvalidArgument(
        "central DP's accountant assumes rounds of sampled clients, which FedBuff does not have; "
        "use local DP");
  }
  FEDML_RETURN_IF_ERROR(ValidateStaleness(options.staleness));
  const bool replaces_mean = options.enable_defense || options.central_dp;
  const bool mean_based =
      entry->averaging == Averaging::kMean || entry->averaging == Averaging::kFedBuff;
  if (replaces_mean && !mean_based) {
    return Status::InvalidArgument(
        std::string(options.enable_defense ? "a defense (" + options.defense.defense_type + ")"
                                           : std::string("central DP")) +
        " replaces the mean, but " + name +
        " has its own averaging; combine it with FedAvg, FedProx or the FedOpt family");
  }
  if (options.enable_defense && options.central_dp) {
    return Status::InvalidArgument(
        "central DP and a defense both replace the mean; use one, or local DP with the defense");
  }

  std::unique_ptr<Aggregator> averaging;
  if (options.enable_defense) {
    // The defense runs on the threads the server gives aggregation, as FedAvg's fold does.
    RobustOptions defense = options.defense;
    defense.threads = options.aggregation_threads;
    FEDML_ASSIGN_OR_RETURN(averaging, CreateRobustAggregator(defense));
  } else if (options.central_dp) {
    FEDML_ASSIGN_OR_RETURN(averaging, CreateCentralDpAggregator(options.dp));
  } else if (entry->averaging == Averaging::kFedNova) {
    if (!(options.client_momentum >= 0 && options.client_momentum < 1)) {
      return Status::InvalidArgument("FedNova: client momentum must be in [0, 1)");
    }
    averaging = std::make_unique<FedNova>(FedNovaOptions{options.client_momentum});
  } else if (entry->averaging == Averaging::kScaffold) {
    if (options.client_num_in_total < 1) {
      return Status::InvalidArgument("SCAFFOLD needs client_num_in_total >= 1");
    }
    averaging = std::make_unique<Scaffold>(
        ScaffoldOptions{options.client_num_in_total, options.fold_width});
  } else if (options.mean_factory) {
    FEDML_ASSIGN_OR_RETURN(averaging, options.mean_factory());
  } else {
    averaging =
        std::make_unique<FedAvg>(FedAvgOptions{options.fold_width, options.aggregation_threads});
  }
  if (entry->averaging == Averaging::kFedBuff) {
    averaging = std::make_unique<StalenessWeighted>(std::move(averaging), options.staleness);
  }
  if (options.local_dp) {
    averaging = std::make_unique<LocalDpAccounting>(std::move(averaging), options.dp);
  }
  if (server.is_identity()) return averaging;
  return std::unique_ptr<Aggregator>(
      std::make_unique<ServerOptimizer>(std::move(averaging), server));
}

bool IsAsynchronous(const std::string& name) {
  for (const Entry& e : kStrategies) {
    if (name == e.name) {
      return e.averaging == Averaging::kFedAsync || e.averaging == Averaging::kFedBuff;
    }
  }
  return false;
}

std::vector<std::string> AggregatorNames() {
  std::vector<std::string> names;
  for (const Entry& e : kStrategies) names.emplace_back(e.name);
  return names;
}

std::vector<std::string> LinearStrategyNames() {
  std::vector<std::string> names;
  for (const Entry& e : kStrategies) {
    if (e.averaging == Averaging::kMean) names.emplace_back(e.name);
  }
  return names;
}

}  // namespace fedml::algorithms
