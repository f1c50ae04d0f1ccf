// Secure aggregation as a layer around the round controller's update path (SecAgg and SecAgg+,
// fedml/algorithms/protocols/secagg.h). The same code runs in simulation (in-process, MPI) and
// deployment (gRPC): the server's RoundController drives the stages over its communicator and each
// worker's ClientManager holds the protocol state of the clients it trained.
//
// A round with secure aggregation, for the n clients sampled (participant i is the i-th of them):
//   train task      carries the round's protocol parameters (PutSecureTaskAttrs) and i. The
//                   worker trains the client, turns the result into the ring vector
//                   [w, w (x - g)] (SecureInput: w = min(samples / max_weight, 1), x the trained
//                   model, g the global one, quantized), keeps it, and answers with the client's
//                   public keys (stage 0) instead of its model. Metrics travel in the clear,
//                   the sample count does not.
//   share_keys      server -> client: its neighbours' keys; client -> server: sealed shares.
//   mask_input      server -> client: the shares addressed to it; client -> server: y_u.
//   unmask          server -> client: who survived; client -> server: the shares asked for.
// Each stage is closed when every participant still in it has answered or after stage_timeout:
// those who have not answered have dropped. The server then removes the masks and turns the sum
// back into the model it stands for (SecureMeanFromSum): g + sum(w (x - g)) / sum(w), which the
// round's (linear) aggregator takes as one update, so a server optimizer (FedAvgM, FedAdam, ...)
// steps on the securely averaged pseudo-gradient. Fewer than the threshold left at any stage:
// the round aborts with a warning naming the stage, and the global model stays as it was.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/api/options.h"
#include "fedml/core/model_state.h"
#include "fedml/core/security/quantization.h"
#include "fedml/core/status.h"

namespace fedml::api {

/// The server's choice of protocol for every round (ServerOptions::secure).
struct SecureAggregationOptions {
  /// "" (off), "secagg" (every client masks with every other) or "secagg_plus" (each with the
  /// k = num_shares - 1 neighbours of a random k-regular graph).
  std::string protocol;
  /// SecAgg+: the neighbourhood size, the client included (Flower's num_shares), >= 2. 0: the
  /// smallest odd number >= 2 ceil(log2 n) + 1 (Bell et al.'s k = O(log n)), at most n.
  /// SecAgg: must stay 0 (the neighbourhood is everyone). An odd k (an even num_shares) on an
  /// odd n has no regular graph, so such a round uses k - 1.
  int num_shares = 0;
  /// The fewest clients a round survives with, globally and in each neighbourhood, and the
  /// shares that reconstruct a secret: 0 = a majority of the neighbourhood (floor(m / 2) + 1);
  /// a value in (0, 1) = that fraction of the neighbourhood size m, rounded up; a whole number
  /// >= 1 = that many (at most m: a round with fewer clients aborts).
  double reconstruction_threshold = 0.0;
  core::security::QuantizationOptions quantization;
  /// A client's weight is min(samples / max_weight, 1) (Flower's max_weight).
  double max_weight = 1000.0;
  /// The longest the server waits for one stage's answers.
  std::chrono::milliseconds stage_timeout{60000};
  /// Signed rounds (fedml/algorithms/protocols/secagg_auth.h): the PEM of the CA that issued the
  /// clients' certificates (a deployment's ca.pem). When set, every round is signed: a client's
  /// keys count only with a valid signature by its certificate (otherwise it is refused and
  /// blamed), the server forwards the signatures, and a consistency round runs before unmasking.
  /// Empty (simulation, MPI, deployment without mutual TLS): rounds run unsigned, as they always
  /// did.
  std::string signing_ca_pem;

  bool enabled() const { return !protocol.empty(); }
};

/// Simulated dropouts (a worker's own choice; WorkerOptions::secure_dropout).
struct SecureDropoutOptions {
  /// The fraction of each round's participants that vanish: SimulatedDropouts picks
  /// round(rate x n) of them from the seed, the same on every backend.
  double rate = 0.0;
  /// The last stage a vanishing client completes: "advertise_keys" (it trained and sent its
  /// keys), "share_keys" or "mask_input" (its masked input reached the server).
  std::string stage = "share_keys";
  /// false: the worker says that the client is gone (a "dropped" notice, which the server takes
  /// exactly as silence, without waiting out stage_timeout); true: it says nothing, as a client
  /// whose link died.
  bool silent = false;
};

/// What a client accepts of the round parameters a task carries (WorkerOptions::secure_limits).
/// The server chooses n, t and k, so a malicious one could choose them weak: in a round of two
/// against one simulated peer the sum gives the other input away; with t at most half the
/// neighbourhood it could tell one half of a client's neighbours that the client dropped and the
/// other half that it survived, and get t shares of both of its secrets; with a tiny k a few
/// simulated neighbours are all there is. A client refuses such a task before it trains.
struct SecureClientLimits {
  /// The fewest participants (n) a client takes part with; at least 2.
  int min_clients = 3;
  /// SecAgg+: the smallest degree k accepted is min(n - 1, this); 0: ceil(log2 n), half the
  /// server's default 2 ceil(log2 n) (Bell et al.'s k = O(log n)), so that a server's default
  /// passes with room for the odd-n adjustment. SecAgg (everyone a neighbour) is not affected.
  int min_neighbours = 0;
};

/// A deployed client's credentials for signed rounds (WorkerOptions::secure_identity): its
/// mutual-TLS key and certificate and the CA it trusts, all PEM. A worker with an identity signs
/// its clients' keys, verifies every peer's, runs the consistency round, and refuses a round that
/// is not signed (a server that drops the signatures drops the defence).
struct SecureIdentity {
  std::string key_pem;
  std::string certificate_pem;
  std::string ca_pem;
  bool enabled() const { return !key_pem.empty(); }
};

/// Stage names, as task attributes and messages carry them.
inline constexpr const char* kSecureStageShareKeys = "share_keys";
inline constexpr const char* kSecureStageMaskInput = "mask_input";
/// Signed rounds only: U3 goes out, each survivor's signature over it comes back.
inline constexpr const char* kSecureStageConsistency = "consistency";
inline constexpr const char* kSecureStageUnmask = "unmask";
/// The dropout_stage values, in protocol order.
const std::vector<std::string>& SecureDropoutStageNames();

/// What a participant needs to know of its round; the train task carries it.
struct SecureTask {
  algorithms::SecAggParams params;
  core::security::QuantizationOptions quantization;
  double max_weight = 1000.0;
  std::uint64_t round_id = 0;
  int index = -1;  // this participant, 0..n-1
  /// Keys signed and a consistency round (SecureAggregationOptions::signing_ca_pem). Travels as
  /// the attr "secagg.signed" = "1", absent from unsigned tasks.
  bool signed_round = false;
};

/// OK when `task` meets `limits` and its threshold is a strict majority of the neighbourhood
/// (t > n / 2 for SecAgg, t > (k + 1) / 2 for SecAgg+: Bonawitz et al.'s and Bell et al.'s
/// condition against a server that lies about who dropped); otherwise PERMISSION_DENIED naming
/// the parameter, its value and the bound ("refusing a secure round: ...").
Status CheckSecureTaskLimits(const SecureTask& task, const SecureClientLimits& limits);

/// The round's task for n participants and models of `model_numel` values (vectors of
/// model_numel + 2 words: the weight, the values, the fraction clipped): num_shares and
/// reconstruction_threshold resolved for n, the graph seeded from (seed, round).
/// FAILED_PRECONDITION when n is below 2 or below the threshold, or above what the quantization can
/// sum without overflow; INVALID_ARGUMENT for options that cannot describe a round (naming the
/// option). index is left -1.
Result<SecureTask> SecureTaskForRound(const SecureAggregationOptions& options, int n,
                                      std::size_t model_numel, std::uint64_t seed,
                                      std::int64_t round);

/// Writes `task` into a train task's attributes (keys "secagg.*"); SecureTaskFromAttrs reads it
/// back exactly (doubles as round-trip text). A task without them has no secure aggregation.
void PutSecureTaskAttrs(const SecureTask& task, std::map<std::string, std::string>& attrs);
bool HasSecureTaskAttrs(const std::map<std::string, std::string>& attrs);
/// INVALID_ARGUMENT naming the attribute that is missing or malformed, or the parameters that
/// do not describe a round.
Result<SecureTask> SecureTaskFromAttrs(const std::map<std::string, std::string>& attrs);

/// The client's ring vector [w, w (trained - global), c f], quantized (stochastic rounding from
/// `rounding_seed`); num_samples > 0; trained and global of the same layout (INVALID_ARGUMENT
/// otherwise). Values beyond the clipping range c are clipped: the result is then biased, which
/// the caller sees as "clipped" in the returned count, and the fraction f of values clipped goes
/// into the vector, so the server learns only the survivors' mean (SecureMean::clipped_fraction).
struct SecureInputVector {
  std::vector<std::uint32_t> words;
  std::size_t clipped = 0;  // entries of w (trained - global) outside the clipping range
};
Result<SecureInputVector> SecureInput(const core::ModelState& trained,
                                      const core::ModelState& global, std::int64_t num_samples,
                                      const SecureTask& task, std::uint64_t rounding_seed);

/// The server's view of a finished round: the sum of `num_summands` vectors dequantized back into
/// the weighted mean model. FAILED_PRECONDITION when the summed weight is not positive (every
/// survivor had a zero weight after quantization).
struct SecureMean {
  core::ModelState model;         // global + sum(w d) / sum(w)
  double weight_sum = 0.0;        // sum(w)
  std::int64_t samples = 0;       // round(sum(w) x max_weight), the update's FedAvg weight (>= 1)
  double clipped_fraction = 0.0;  // the survivors' mean fraction of values clipped, in [0, 1]
};
Result<SecureMean> SecureMeanFromSum(const std::vector<std::uint32_t>& sum, int num_summands,
                                     const core::ModelState& global, const SecureTask& task);

/// The participants (0..n-1, increasing) that simulated dropouts take in `round`: round(rate n)
/// of them, drawn from (seed, round) alone.
std::vector<int> SimulatedDropouts(std::uint64_t seed, std::int64_t round, int n, double rate);

}  // namespace fedml::api
