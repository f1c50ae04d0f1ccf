#include "fedml/api/client_pipeline.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "fedml/api/round_controller.h"
#include "fedml/api/training_deviation.h"
#include "fedml/core/random.h"
#include "fedml/core/security/commitment.h"

namespace fedml::api {
namespace {

// Domain tags for DeriveSeed, so attack draws never coincide with other draws of the run.
constexpr std::uint64_t kAttackTag = 0x61747461636bULL;  // "attack"

class PipelineTrainer final : public ForwardingClientTrainer {
 public:
  PipelineTrainer(std::unique_ptr<ClientTrainer> inner, AttackOptions attack,
                  std::optional<algorithms::DpOptions> ldp, core::ModelState initial)
      : ForwardingClientTrainer(std::move(inner)),
        attack_(std::move(attack)),
        ldp_(std::move(ldp)),
        initial_(std::move(initial)) {}

  Result<core::ModelState> CommittedCheckpoint(std::int64_t round, std::int64_t client_id,
                                               std::int64_t index) const override {
    const auto claimed = claimed_.find({round, client_id});
    if (claimed == claimed_.end()) return inner_->CommittedCheckpoint(round, client_id, index);
    if (index < 0 || index >= static_cast<std::int64_t>(claimed->second.size())) {
      return Status::NotFound("checkpoint " + std::to_string(index) + " does not exist");
    }
    return claimed->second[static_cast<std::size_t>(index)];
  }
  void ReleaseCheckpoints(std::int64_t round) override {
    inner_->ReleaseCheckpoints(round);
    claimed_.erase(claimed_.begin(), claimed_.lower_bound({round, INT64_MIN}));
  }
  Result<LocalUpdate> Train(const TrainTask& task) override {
    const bool attacker = IsAttacker(attack_, task.round, task.client_id);
    const bool flips_labels = attacker && attack_.type == "label_flipping";
    const bool replaces_update = attacker && !flips_labels;
    // The global model (a model-sized copy) only where the update is measured against it.
    core::ModelState global;
    if (replaces_update || (!attacker && ldp_)) {
      FEDML_ASSIGN_OR_RETURN(global, inner_->GetState());
    }
    if (attacker && IsCheat(attack_.type)) {
      FEDML_ASSIGN_OR_RETURN(LocalUpdate update, Cheat(global, task));
      update.metrics["attacker"] = 1.0;
      return update;
    }
    TrainingDeviation deviation;
    deviation.flip_labels = flips_labels;
    FEDML_ASSIGN_OR_RETURN(LocalUpdate update, TrainAs(task, deviation));
    if (replaces_update) {
      FEDML_RETURN_IF_ERROR(Attack(global, task, update));
      update.metrics["attacker"] = 1.0;
      return update;
    }
    if (attacker) update.metrics["attacker"] = 1.0;
    if (ldp_ && !attacker) {
      // Simulation: the task's seed (reproducible). Deployment: the client's own secret key.
      algorithms::DpOptions o = *ldp_;
      o.seed = task.seed;
      FEDML_ASSIGN_OR_RETURN(const core::Bytes key,
                             algorithms::DpNoiseKey(o, "local",
                                                    {static_cast<std::uint64_t>(task.round),
                                                     static_cast<std::uint64_t>(task.client_id)}));
      FEDML_RETURN_IF_ERROR(algorithms::ApplyLocalDp(update.state, global, o, key));
    }
    return update;
  }

 private:
  // Trains `task` as `deviation` says: through the inner trainers' DeviatingTrainer where it
  // deviates (the wrappers between are skipped for that call), else as any client trains.
  Result<LocalUpdate> TrainAs(const TrainTask& task, const TrainingDeviation& deviation) {
    if (!deviation.flip_labels && deviation.step_fraction == 1.0) return inner_->Train(task);
    DeviatingTrainer* deviating = FindDeviatingTrainer(*inner_);
    if (deviating == nullptr) {
      return Status::FailedPrecondition(
          "attack_type " + attack_.type +
          " changes how the attacker trains, which this trainer does not support (it does not "
          "implement fedml::api::DeviatingTrainer); the other attack types run on any trainer");
    }
    return deviating->TrainDeviating(task, deviation);
  }

  static bool IsCheat(const std::string& type) {
    return type == "free_rider" || type == "noise" || type == "fewer_steps" || type == "replay";
  }

  // The trajectory the inner trainer committed to for (round, client): its checkpoints.
  Result<std::vector<core::ModelState>> Trajectory(std::int64_t round, std::int64_t client,
                                                   const core::Bytes& commitment) const {
    FEDML_ASSIGN_OR_RETURN(core::security::TrainingCommitment c,
                           core::security::DecodeCommitment(commitment));
    std::vector<core::ModelState> states;
    for (std::size_t i = 0; i < c.checkpoint_sha256.size(); ++i) {
      FEDML_ASSIGN_OR_RETURN(core::ModelState s, inner_->CommittedCheckpoint(
                                                     round, client, static_cast<std::int64_t>(i)));
      states.push_back(std::move(s));
    }
    return states;
  }

  // A cheat (see AttackOptions): its update, and with a commitment asked for, the trajectory it
  // claims and will reveal.
  Result<LocalUpdate> Cheat(const core::ModelState& g, const TrainTask& task) {
    const std::string& type = attack_.type;
    const std::int64_t interval = task.checkpoint_interval;
    LocalUpdate update;
    std::vector<core::ModelState> real;  // a trajectory the inner trainer did train
    if (type == "replay") {
      auto old = first_work_.find(task.client_id);
      if (old == first_work_.end()) {
        // Its first round's work: from the initial model, with round 0's data order.
        TrainTask first = task;
        first.round = -1;  // kept apart from this round's checkpoints
        first.seed = TaskSeed(attack_.seed, 0, task.client_id);
        FEDML_RETURN_IF_ERROR(inner_->SetState(initial_));
        FEDML_ASSIGN_OR_RETURN(LocalUpdate made, inner_->Train(first));
        std::vector<core::ModelState> trajectory;
        if (interval > 0) {
          FEDML_ASSIGN_OR_RETURN(trajectory, Trajectory(-1, task.client_id, made.commitment));
        }
        FEDML_RETURN_IF_ERROR(inner_->SetState(g));
        old = first_work_.emplace(task.client_id, FirstWork{std::move(made), std::move(trajectory)})
                  .first;
      }
      update = old->second.update;
      real = old->second.trajectory;
    } else {
      TrainTask t = task;
      TrainingDeviation deviation;
      if (type == "fewer_steps") {
        deviation.step_fraction = 0.5;
        t.checkpoint_interval = interval > 0 ? (interval + 1) / 2 : 0;
      }
      FEDML_ASSIGN_OR_RETURN(update, TrainAs(t, deviation));
      if (interval > 0) {
        FEDML_ASSIGN_OR_RETURN(real, Trajectory(task.round, task.client_id, update.commitment));
      }
    }
    FEDML_RETURN_IF_ERROR(g.CheckSameLayout(update.state, "cheat: the trained update"));
    if (type == "free_rider") {
      update.state = g;
    } else if (type == "noise") {
      // A random direction as long as the honest update.
      core::Rng rng(core::DeriveSeed(task.seed, {kAttackTag}));
      std::vector<double> z(update.state.numel());
      double z_norm = 0.0;
      for (double& v : z) {
        v = rng.Normal();
        z_norm += v * v;
      }
      auto distance = core::security::StateL2Distance(update.state, g);
      if (!distance.ok()) return distance.status();
      const double length = *distance;
      const double scale = length / std::max(std::sqrt(z_norm), 1e-30);
      float* x = update.state.data();
      const float* gv = g.data();
      for (std::size_t i = 0; i < z.size(); ++i) {
        x[i] = static_cast<float>(static_cast<double>(gv[i]) + scale * z[i]);
      }
    }
    if (interval <= 0) return update;

    FEDML_ASSIGN_OR_RETURN(core::security::TrainingCommitment c,
                           core::security::DecodeCommitment(update.commitment));
    std::vector<core::ModelState> claimed;
    if (type == "fewer_steps") {
      c.total_steps *= 2;
      c.checkpoint_interval = interval;
      const auto n = core::security::NumCheckpoints(c.total_steps, interval);
      for (std::int64_t i = 0; i + 1 < n; ++i) {
        claimed.push_back(
            real[std::min<std::size_t>(static_cast<std::size_t>(i), real.size() - 1)]);
      }
      claimed.push_back(real.back());
    } else if (type == "replay") {
      claimed = std::move(real);
      claimed.front() = g;
      c.data_seed = task.seed;
    } else {  // free_rider, noise: the straight line from g to the update
      const std::size_t n = c.checkpoint_sha256.size();
      for (std::size_t i = 0; i < n; ++i) {
        core::ModelState s = g;
        const double t = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 1.0;
        float* sv = s.data();
        const float* xv = update.state.data();
        for (std::size_t j = 0; j < s.numel(); ++j) {
          sv[j] = static_cast<float>(sv[j] + t * (static_cast<double>(xv[j]) - sv[j]));
        }
        claimed.push_back(std::move(s));
      }
      claimed.back() = update.state;
    }
    c.checkpoint_sha256.clear();
    for (const core::ModelState& s : claimed) {
      FEDML_ASSIGN_OR_RETURN(std::string sha, core::security::CheckpointSha256(s));
      c.checkpoint_sha256.push_back(std::move(sha));
    }
    update.commitment = core::security::EncodeCommitment(c);
    claimed_[{task.round, task.client_id}] = std::move(claimed);
    return update;
  }

  Status Attack(const core::ModelState& g, const TrainTask& task, LocalUpdate& update) {
    FEDML_RETURN_IF_ERROR(g.CheckSameLayout(update.state, "attack: the trained update"));
    core::Rng rng(core::DeriveSeed(task.seed, {kAttackTag}));
    float* x = update.state.data();
    const float* gv = g.data();
    // x = a g + b x (zero, flip, scaled_flip) or uniform noise (random); the mode is read once.
    const bool random = attack_.mode == "random";
    double a = 0.0;
    double b = 0.0;
    if (attack_.mode == "flip") {
      a = 2.0;
      b = -1.0;
    } else if (attack_.mode == "scaled_flip") {
      a = 1.0 + attack_.scale;
      b = -attack_.scale;
    }
    for (const core::TensorSpec& spec : g.specs()) {
      if (!core::IsFloatingPoint(spec.dtype)) continue;  // FedML's is_weight_param: not counters
      for (std::size_t i = spec.offset; i < spec.offset + spec.numel(); ++i) {
        const double out = random ? 2.0 * rng.Uniform() - 1.0
                                  : a * static_cast<double>(gv[i]) + b * static_cast<double>(x[i]);
        x[i] = static_cast<float>(out);
      }
    }
    return Status::Ok();
  }

  AttackOptions attack_;
  std::optional<algorithms::DpOptions> ldp_;
  core::ModelState initial_;  // the trainer's state when wrapped (replay: its first round's)
  struct FirstWork {
    LocalUpdate update;
    std::vector<core::ModelState> trajectory;
  };
  std::map<std::int64_t, FirstWork> first_work_;  // replay cheat, by client
  // Cheats' invented trajectories, revealed instead of the inner trainer's, by (round, client).
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<core::ModelState>> claimed_;
};

}  // namespace

DeviatingTrainer* FindDeviatingTrainer(ClientTrainer& trainer) {
  for (ClientTrainer* t = &trainer; t != nullptr;) {
    if (auto* deviating = dynamic_cast<DeviatingTrainer*>(t)) return deviating;
    auto* forwarding = dynamic_cast<ForwardingClientTrainer*>(t);
    t = forwarding != nullptr ? &forwarding->inner() : nullptr;
  }
  return nullptr;
}

bool IsAttacker(const AttackOptions& o, std::int64_t round, std::int64_t client_id) {
  if (!o.enabled) return false;
  if (o.byzantine_client_num > 0) {
    const std::vector<std::int64_t> sampled =
        SampleClients(o.seed, round, o.client_num_in_total, o.client_num_per_round);
    core::Rng rng(core::DeriveSeed(o.seed, {kAttackTag, static_cast<std::uint64_t>(round)}));
    const int f = std::min<int>(o.byzantine_client_num, static_cast<int>(sampled.size()));
    for (std::int64_t pos :
         rng.SampleWithoutReplacement(static_cast<std::int64_t>(sampled.size()), f)) {
      if (sampled[static_cast<std::size_t>(pos)] == client_id) return true;
    }
    return false;
  }
  const auto count = static_cast<std::int64_t>(
      std::llround(o.ratio_of_poisoned_client * static_cast<double>(o.client_num_in_total)));
  core::Rng rng(core::DeriveSeed(o.seed, {kAttackTag}));
  for (std::int64_t c : rng.SampleWithoutReplacement(o.client_num_in_total, count)) {
    if (c == client_id) return true;
  }
  return false;
}

Result<std::unique_ptr<ClientTrainer>> WrapClientTrainer(const Config& config,
                                                         std::unique_ptr<ClientTrainer> trainer,
                                                         std::optional<core::Bytes> noise_secret) {
  FEDML_ASSIGN_OR_RETURN(std::optional<algorithms::DpOptions> ldp, LocalDpOptionsFrom(config));
  if (ldp && noise_secret) ldp->noise_key = *noise_secret;
  const AttackOptions attack = AttackOptionsFrom(config);
  if (!attack.enabled && !ldp) return trainer;
  core::ModelState initial;  // what a replay cheat trained its first update from
  if (attack.enabled && attack.type == "replay") {
    FEDML_ASSIGN_OR_RETURN(initial, trainer->GetState());
  }
  return std::unique_ptr<ClientTrainer>(
      std::make_unique<PipelineTrainer>(std::move(trainer), attack, ldp, std::move(initial)));
}

}  // namespace fedml::api
