#include "fedml/api/client_pipeline.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "fedml/api/round_controller.h"
#include "fedml/core/random.h"

namespace fedml::api {
namespace {

// Domain tags for DeriveSeed, so attack draws never coincide with other draws of the run.
constexpr std::uint64_t kAttackTag = 0x61747461636bULL;  // "attack"
constexpr std::uint64_t kLdpTag = 0x6c6470ULL;           // "ldp"

class PipelineTrainer final : public ClientTrainer {
 public:
  PipelineTrainer(std::unique_ptr<ClientTrainer> inner, AttackOptions attack,
                  std::optional<algorithms::DpOptions> ldp, std::optional<std::uint64_t> secret)
      : inner_(std::move(inner)), attack_(std::move(attack)), ldp_(ldp), secret_(secret) {}

  Status SetState(const core::ModelState& state) override { return inner_->SetState(state); }
  Result<core::ModelState> GetState() override { return inner_->GetState(); }
  Result<Evaluation> Evaluate(const EvalTask& task) override { return inner_->Evaluate(task); }
  Result<std::int64_t> NumTrainSamples(std::int64_t client_id) const override {
    return inner_->NumTrainSamples(client_id);
  }
  Result<core::ModelState> CommittedCheckpoint(std::int64_t round, std::int64_t client_id,
                                               std::int64_t index) const override {
    return inner_->CommittedCheckpoint(round, client_id, index);
  }
  void ReleaseCheckpoints(std::int64_t round) override { inner_->ReleaseCheckpoints(round); }
  Result<core::ModelState> ReplaySegment(const ReplayTask& task) override {
    return inner_->ReplaySegment(task);
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
    TrainTask t = task;
    t.flip_labels = flips_labels;
    FEDML_ASSIGN_OR_RETURN(LocalUpdate update, inner_->Train(t));
    if (replaces_update) {
      FEDML_RETURN_IF_ERROR(Attack(global, task, update));
      update.metrics["attacker"] = 1.0;
      return update;
    }
    if (attacker) update.metrics["attacker"] = 1.0;
    if (ldp_ && !attacker) {
      core::Rng rng(
          secret_ ? core::DeriveSeed(*secret_, {kLdpTag, static_cast<std::uint64_t>(task.round),
                                                static_cast<std::uint64_t>(task.client_id)})
                  : core::DeriveSeed(task.seed, {kLdpTag}));
      FEDML_RETURN_IF_ERROR(algorithms::ApplyLocalDp(update.state, global, *ldp_, rng));
    }
    return update;
  }

 private:
  Status Attack(const core::ModelState& g, const TrainTask& task, LocalUpdate& update) {
    FEDML_RETURN_IF_ERROR(g.CheckSameLayout(update.state, "attack: the trained update"));
    if (attack_.type == "free_rider") {
      update.state = g;
      return Status::Ok();
    }
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

  std::unique_ptr<ClientTrainer> inner_;
  AttackOptions attack_;
  std::optional<algorithms::DpOptions> ldp_;
  std::optional<std::uint64_t> secret_;
};

}  // namespace

AttackOptions AttackOptionsFrom(const Config& c) {
  AttackOptions o;
  o.enabled = c.enable_attack;
  o.type = c.attack_type;
  o.mode = c.attack_mode;
  o.byzantine_client_num = c.byzantine_client_num;
  o.ratio_of_poisoned_client = c.ratio_of_poisoned_client;
  o.scale = c.attack_scale;
  o.client_num_in_total = c.client_num_in_total;
  o.client_num_per_round = c.client_num_per_round;
  o.seed = c.random_seed;
  return o;
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

Result<std::optional<algorithms::DpOptions>> LocalDpOptionsFrom(const Config& c) {
  if (!c.enable_dp || c.dp_solution_type != "ldp") return std::optional<algorithms::DpOptions>();
  algorithms::DpOptions dp;
  dp.clipping_norm = c.clipping_norm;
  dp.delta = c.delta;
  dp.sampling_rate = 1.0;  // each client's own release, in every round it takes part in
  dp.seed = c.random_seed;
  dp.noise_multiplier = c.noise_multiplier;
  if (dp.noise_multiplier == 0.0) {
    FEDML_ASSIGN_OR_RETURN(dp.noise_multiplier,
                           algorithms::DpNoiseMultiplierFor(1.0, c.comm_round, c.epsilon, c.delta));
  }
  return std::optional<algorithms::DpOptions>(dp);
}

Result<std::unique_ptr<ClientTrainer>> WrapClientTrainer(
    const Config& config, std::unique_ptr<ClientTrainer> trainer,
    std::optional<std::uint64_t> noise_secret) {
  FEDML_ASSIGN_OR_RETURN(std::optional<algorithms::DpOptions> ldp, LocalDpOptionsFrom(config));
  const AttackOptions attack = AttackOptionsFrom(config);
  if (!attack.enabled && !ldp) return trainer;
  return std::unique_ptr<ClientTrainer>(
      std::make_unique<PipelineTrainer>(std::move(trainer), attack, ldp, noise_secret));
}

}  // namespace fedml::api
