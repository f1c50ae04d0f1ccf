// What happens to a client's update between its trainer and the wire: local differential
// privacy (the client clips and noises its own update) and, for evaluating defenses, simulated
// attackers (FedML's attack_args). Both wrap any ClientTrainer, so they run the same way in
// simulation, under MPI and on gRPC edge clients.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fedml/algorithms/dp.h"
#include "fedml/api/client_trainer.h"
#include "fedml/api/config.h"
#include "fedml/api/options.h"
#include "fedml/core/bytes.h"

namespace fedml::api {

/// Who attacks and how.
///  * byzantine_client_num > 0: in every round, that many of the round's sampled clients
///    (FedML's semantics: the attackers are drawn among the round's participants), chosen by
///    the seed; else
///  * ratio_of_poisoned_client: a fixed set of round(ratio x client_num_in_total) clients,
///    chosen by the seed once for the run.
/// Types (attack_type / attack_mode):
///  * byzantine zero: every floating-point tensor zero; random: uniform in [-1, 1) (FedML);
///    flip: g + (g - x) (FedML); scaled_flip: g - attack_scale (x - g), a scaled sign flip.
///  * label_flipping: trains on labels y -> C - 1 - y (needs a DeviatingTrainer,
///    fedml/api/training_deviation.h).
///  * free_rider: returns the global model unchanged, claiming its sample count.
/// Cheats against verified work (fedml/api/verification.h). Each sends a commitment that holds
/// (it starts at the global model and ends at the update sent) over a trajectory it invents, and
/// reveals that trajectory's checkpoints when spot-checked, so only a replay can catch it:
///  * free_rider: every checkpoint is the global model;
///  * noise: the update is g + |x - g| z / |z| for Gaussian z (an honest-looking norm), the
///    checkpoints on the straight line from g to it;
///  * fewer_steps: trains the first half of the steps with checkpoints twice as dense and claims
///    the full count (each claimed segment holds half the work; needs a DeviatingTrainer);
///  * replay: sends the update it made in its first round (from the initial model, with that
///    round's data order) again every round, checkpoint 0 swapped for the current model and the
///    data seed for the current one.
struct AttackOptions {
  bool enabled = false;
  std::string type = "byzantine";
  std::string mode = "random";
  int byzantine_client_num = 0;
  double ratio_of_poisoned_client = 0.0;
  double scale = 10.0;
  int client_num_in_total = 1;
  int client_num_per_round = 1;
  std::uint64_t seed = 0;
};

/// True when `client_id` attacks in `round` (0-based). A pure function of the options, so the
/// server, every worker and the benchmarks agree without talking.
bool IsAttacker(const AttackOptions& options, std::int64_t round, std::int64_t client_id);

/// Wraps `trainer` (owned) with the config's local DP and attack, or returns it unchanged when
/// neither is on. Honest clients: train, then local DP. Attackers: train, then replace the
/// update as their attack says (no noise: an attacker sends what it likes).
/// `noise_secret`: the key the local DP noise comes from (DpOptions::noise_key). Without one
/// (simulation) it is drawn from the task's seed, so runs are reproducible; a deployed client
/// passes 32 bytes from core::security::SecureRandomBytes, since the server knows the run's seed
/// and could otherwise subtract the noise.
Result<std::unique_ptr<ClientTrainer>> WrapClientTrainer(
    const Config& config, std::unique_ptr<ClientTrainer> trainer,
    std::optional<core::Bytes> noise_secret = std::nullopt);

}  // namespace fedml::api
