// The server side of federated training: RoundController runs the rounds (synchronous, secure,
// or asynchronous) over any communicator backend, the same in simulation, under mpirun and in a
// gRPC deployment. It is a small facade: the round drivers, the worker pool, the verification gate
// and the ledger observer it composes live in api/src/server, api/src/secure and
// api/src/verification (docs/architecture.md draws them).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/api/client_trainer.h"
#include "fedml/api/metrics.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/api/system_model.h"
#include "fedml/api/verification.h"
#include "fedml/core/comm/communicator.h"
#include "fedml/core/wire.h"

namespace fedml::api {

struct ServerOptions {
  int client_num_in_total = 100;
  int client_num_per_round = 10;
  int comm_round = 20;
  int frequency_of_the_test = 1;
  std::uint64_t random_seed = 0;
  std::chrono::milliseconds round_timeout{600000};
  /// A worker holding one task longer than this is dropped and its task handed to another
  /// (0 = off: only round_timeout applies).
  std::chrono::milliseconds worker_timeout{0};
  std::string checkpoint_dir;  // "" = no checkpoint
  /// Contribution ledger (fedml/core/security/ledger.h): after every round (asynchronous: every
  /// version) one hash-chained record of the clients asked, the SHA-256 of every accepted update
  /// (StateSha256), the refused ones and each accepted client's reward (its sample count, checked
  /// against expected_work or max_claimed_samples). Appended to an existing ledger after
  /// verifying it; a
  /// damaged one fails the run before its first round. "" = none.
  std::string ledger_file;
  /// Deployment: the server's TLS private key (PEM), with which every ledger record's head is
  /// signed and handed to the round's clients (fedml/core/security/ledger_heads.h). Secret:
  /// never logged. Empty: heads unsigned, none sent.
  std::string ledger_signing_key;
  /// Deployment (gRPC edge clients): client N is rank N + 1 and holds its own data, so its task
  /// goes to that rank only and carries the global model (a client that reconnected may hold
  /// none). A client that is gone, fails or misses the round deadline loses its update for the
  /// round and the round goes on; every rank is tried again next round. Off (simulation):
  /// any worker trains any client, and a round that misses its deadline fails.
  bool fixed_clients = false;
  /// Draw each round's sample with OpenSSL's generator (SampleClientsSecretly) instead of from
  /// random_seed. Central DP's amplification by sampling holds only while the observer does not
  /// know who was sampled, and in deployment every client knows the seed; the sample is then
  /// not reproducible. RunServer sets it for central DP in deployment; simulation leaves it off
  /// (the seed stands in for secret randomness there, as it does for the noise).
  bool secret_sampling = false;
  /// A round changes the global model only when at least this many updates were accepted.
  int min_clients = 1;
  /// Called before each synchronous round, before an asynchronous run's first task and whenever
  /// it has no client to send one to (deployment: wait until enough clients are connected). An
  /// error ends the run.
  std::function<Status(core::Deadline)> wait_for_clients;
  /// With fixed_clients: which ranks are connected now (asked before a round's tasks and before
  /// its evaluation, so evaluation shards go to connected clients only). Empty: every rank.
  /// A synchronous round samples its clients among the connected ones (cross-device selection:
  /// a client that is offline is not picked only to be dropped); with every client connected
  /// that is the same sample as among all clients.
  std::function<bool(int rank)> is_connected;
  /// With fixed_clients, synchronous rounds: how many clients a round selects per client it
  /// needs (Bonawitz et al. 2019). A round selects ceil(client_num_per_round x over_selection)
  /// connected clients and closes as soon as client_num_per_round of them have replied (or at
  /// its deadline); the others' tasks are abandoned and their late replies ignored, so the
  /// slowest selected clients cost nothing. 1 = wait for every selected client. Which clients
  /// make the cut depends on timing, so a run with over_selection > 1 is not reproducible. With
  /// secure aggregation the protocol's participants are the first client_num_per_round to send
  /// their keys (the round's threshold is computed for all selected, so it must stay at most
  /// client_num_per_round: the default majority does below over_selection 2).
  double over_selection = 1.0;
  /// With fixed_clients: an aggregation tier (`fedml aggregator`, fedml/api/deployment.h). The
  /// communicator's ranks 1..aggregators are aggregators, not clients; each round's sample of
  /// client_num_per_round among client_num_in_total (the simulation's sample) goes to every
  /// connected aggregator, which trains the sampled clients connected to it and answers with one
  /// sample-weighted mean naming its contributors. A client's update reaches the model through
  /// at most one aggregator per round; a lost aggregator costs its subtree's updates for the
  /// round. Needs a linear aggregator and synchronous rounds. Evaluation shards go to the
  /// aggregators, which pass each to one of their clients. 0: clients are the ranks.
  int aggregators = 0;
  /// Resume: the first round to run (0-based) and the version of `initial` given to Run.
  std::int64_t start_round = 0;
  std::int64_t start_model_version = 0;
  /// Resume: the strategy's state from the checkpoint, restored before the first round.
  std::map<std::string, core::ModelState> start_strategy_state;
  core::EncodeOptions encode;
  core::DecodeLimits decode;

  /// Asynchronous aggregation (algorithms::IsAsynchronous: FedAsync, FedBuff). There are no
  /// rounds: up to max_concurrency clients train at once, each from the model version current
  /// when it started; every arriving update goes to the aggregator (with its base model and so
  /// its staleness), and every buffer_size accepted updates make one new model version, which is
  /// what comm_round counts and what a metrics row reports. An update more than max_staleness
  /// versions old is refused and counted (extra "refused_stale"). A free client takes a new task
  /// at once. With a system model (simulation) events happen in virtual-time order, so the run is
  /// deterministic for a seed on every backend; without one (deployment) in arrival order.
  /// Evaluation runs on the controller's thread through the GlobalEvaluator, which is required.
  struct Async {
    bool enabled = false;
    int buffer_size = 1;
    int max_concurrency = 10;
    int max_staleness = 50;
  } async;
  /// The simulated devices (fedml/api/system_model.h) that drive the virtual clock, or null
  /// (deployment: time is real). With one, a synchronous round lasts as long as its slowest
  /// client (or round_timeout_s of virtual time: slower clients are dropped from the round, as a
  /// deployed server would), clients are sampled among those online, and every metrics row gains
  /// "virtual_seconds", the virtual time at its end.
  std::shared_ptr<const SystemModel> system;
  /// The samples client `id` trains in one task (epochs x its training samples), for the virtual
  /// clock. Empty: 1.
  std::function<double(std::int64_t id)> client_work;
  /// Resume: the virtual time the checkpoint was taken at.
  double start_virtual_seconds = 0.0;
  /// Secure aggregation (fedml/api/secure_aggregation.h): the server sees only the sum of each
  /// round's updates. Needs a linear aggregator (Aggregator::is_linear) and synchronous rounds;
  /// Run fails before the first round otherwise. Every stage is bounded by stage_timeout. The
  /// ledger records, for each survivor, the SHA-256 of the masked input it sent (what the server
  /// saw) and no sample count (the server does not learn it); the round's train_loss is the
  /// unweighted mean of the clients' reported losses.
  SecureAggregationOptions secure;
  /// What the server knows of each client's work. RunServer sets it from the server's trainer
  /// (NumTrainSamples with epochs and batch_size) where the server's copy of the data set is the
  /// clients' data: in simulation and under MPI, and in deployment with spot checks (which replay
  /// on that copy); a deployed client may otherwise bring its own data. An update
  /// whose num_samples differs from a known count is refused: a client must not buy FedAvg weight
  /// or rewards with a claim. Verification also checks the committed step count against it.
  /// Empty, or UNIMPLEMENTED for a client: unknown, and the claim is checked against
  /// max_claimed_samples only.
  ExpectedWorkFn expected_work;
  /// The most samples one update may claim where the server cannot know its count; larger claims
  /// are refused. 0: no cap. RunServer's default in deployment (config max_claimed_samples 0) is 4
  /// x the mean partition of the server's copy of the data set, so that one claim weighs at most
  /// as much as four average clients.
  std::int64_t max_claimed_samples = 0;
  /// Verified work (fedml/api/verification.h): commitments, spot checks, stakes. The accounts
  /// are saved in the checkpoint beside the strategy's state, and the ledger records every
  /// check, the rewards (reward_per_sample x samples of each accepted update) and the stake of
  /// every participant. Synchronous rounds without secure aggregation only; Run fails before the
  /// first round otherwise.
  VerificationOptions verification;
};

/// The train-task attribute carrying the signed head of the server's last ledger record
/// (fedml/core/security/ledger_heads.h: a heads-file line); a worker with a ledger_heads_file
/// keeps it.
inline constexpr const char* kLedgerHeadAttr = "ledger.head";

/// Evaluates a global model on the test set on the controller's thread. When none is given the
/// controller splits evaluation over the workers (one test shard each), which keeps every core
/// busy.
using GlobalEvaluator = std::function<Result<Evaluation>(const core::ModelState&)>;

/// The clients sampled in `round` (0-based): sorted, distinct, a function of (seed, round) only.
std::vector<std::int64_t> SampleClients(std::uint64_t seed, std::int64_t round, int total,
                                        int per_round);
/// The same draw over `candidates` (the clients online now): min(per_round, size) of them,
/// sorted. SampleClients is this over 0..total-1.
std::vector<std::int64_t> SampleClientsAmong(std::uint64_t seed, std::int64_t round,
                                             const std::vector<std::int64_t>& candidates,
                                             int per_round);
/// min(per_round, size) of `candidates`, sorted, uniformly at random without replacement, from
/// OpenSSL's RAND_bytes (unbiased: each index by rejection), so that nobody who knows the run's
/// seed can tell who was sampled. The error of the generator if it fails.
Result<std::vector<std::int64_t>> SampleClientsSecretly(const std::vector<std::int64_t>& candidates,
                                                        int per_round);

/// Owns the aggregator; `comm` (rank 0) must outlive it. Workers are ranks 1..world_size-1, each
/// running a ClientManager. Not thread-safe: Run on one thread, once.
class RoundController {
 public:
  RoundController(core::Communicator& comm, std::unique_ptr<algorithms::Aggregator> aggregator,
                  ServerOptions options, GlobalEvaluator evaluator);
  ~RoundController();
  RoundController(const RoundController&) = delete;
  RoundController& operator=(const RoundController&) = delete;

  /// Called on the controller's thread as each update of a round is settled.
  void OnProgress(std::function<void(std::int64_t round, int done, int total)> cb);
  /// Called on the controller's thread with each metrics row (a round, or an asynchronous
  /// version), after its checkpoint is written.
  void OnRoundEnd(std::function<void(const RoundMetrics&)> cb);

  /// Runs comm_round rounds from `initial` and returns the final global model. Every wait is
  /// bounded by round_timeout: a round whose updates do not all arrive in time fails with
  /// DEADLINE_EXCEEDED naming the missing clients and ranks. Always tells the workers to stop
  /// (FINISH) before returning, on success and on failure.
  Result<core::ModelState> Run(core::ModelState initial);

  const std::vector<RoundMetrics>& history() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// SHA-256 (hex) of a model state as the ledger records it: core::security::CheckpointSha256 (for
/// each tensor its name's length and the name, its rank and dimensions as little-endian int64,
/// then its float32 values little-endian).
Result<std::string> StateSha256(const core::ModelState& state);

/// Writes `global`, its round and the strategy's state (Aggregator::SaveState) atomically to
/// `dir`/checkpoint.fedml (wire format).
Status WriteCheckpoint(const std::string& dir, std::int64_t round, std::int64_t model_version,
                       const core::ModelState& global,
                       const std::map<std::string, core::ModelState>& strategy_state = {},
                       double virtual_seconds = 0.0);

struct Checkpoint {
  std::int64_t round = 0;  // rounds completed
  std::int64_t model_version = 0;
  core::ModelState model;
  std::map<std::string, core::ModelState> strategy_state;  // for Aggregator::RestoreState
  double virtual_seconds = 0.0;                            // the virtual clock (simulation)
};

/// Reads `dir`/checkpoint.fedml. NOT_FOUND when there is none; DATA_LOSS naming the file when it
/// does not decode (the wire decoder validates it fully).
Result<Checkpoint> ReadCheckpoint(const std::string& dir);

}  // namespace fedml::api
