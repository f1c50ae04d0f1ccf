// Run configuration: FedML's YAML layout and key names, plus `--KEY VALUE` overrides.
//
// The file has FedML's sections (common_args, data_args, model_args, train_args,
// validation_args, device_args, comm_args, tracking_args); a key may sit in any section, as in
// FedML, and is known by its name alone. Keys that only mean something on FedML's cloud (mlops,
// wandb, ...) are ignored with one warning naming them; any other unknown key is an error naming
// it and the nearest known key. docs/configuration.md lists every key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::api {

struct Config {
  // common_args
  std::string training_type = "simulation";  // simulation | cross_silo | cross_device
  std::uint64_t random_seed = 0;
  // data_args
  std::string dataset = "fashion_mnist";  // fashion_mnist | mnist | synthetic
  std::string data_cache_dir = "/usr/share/datasets/fashion-mnist";
  std::string partition_method = "hetero";  // homo | hetero | shards
  double partition_alpha = 0.5;
  std::string data_augmentation = "none";  // none | crop_flip (LocalTrainOptions)
  int shards_per_client = 2;
  double synthetic_alpha = 0.5;  // LEAF synthetic(alpha, beta)
  double synthetic_beta = 0.5;
  int synthetic_dimension = 60;
  // model_args
  std::string model = "cnn";                             // lr | mlp | cnn
  std::string model_file_cache_folder = "fedml_output";  // final_model.pt goes here ("" = none)
  // train_args
  std::string federated_optimizer = "FedAvg";
  int client_num_in_total = 100;
  int client_num_per_round = 10;
  int comm_round = 20;
  int epochs = 1;
  int batch_size = 32;
  std::string client_optimizer = "sgd";  // sgd | adam
  double learning_rate = 0.05;
  double momentum = 0.0;
  double weight_decay = 0.0;
  // Server optimizer on the aggregated pseudo-gradient (fedml/algorithms/server_optimizer.h):
  // federated_optimizer FedOpt uses server_optimizer; FedAvgM, FedAdam, FedAdagrad and FedYogi
  // name it themselves. sgd with server_lr 1 and server_momentum 0 is plain averaging.
  std::string server_optimizer = "sgd";  // sgd | adagrad | adam | yogi
  double server_lr = 1.0;
  double server_momentum = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double tau = 1e-3;
  double fedprox_mu = 0.0;  // FedProx's proximal weight (federated_optimizer FedProx)
  // Asynchronous aggregation (fedml/algorithms/async.h), federated_optimizer FedAsync or FedBuff:
  // comm_round counts server model versions, and each update is weighted by
  // s(staleness) (staleness_function: constant | polynomial (1 + t)^-a | hinge).
  int buffer_size = 10;      // FedBuff: updates per server step (K)
  int max_concurrency = 0;   // clients training at once (0 = client_num_per_round)
  int max_staleness = 50;    // updates more versions old than this are refused
  double async_alpha = 0.6;  // FedAsync: mixing weight alpha, in (0, 1]
  std::string staleness_function = "polynomial";
  double staleness_a = 0.5;  // polynomial exponent (0.5: FedBuff's 1/sqrt(1 + t)); hinge slope
  double staleness_b = 4.0;  // hinge: staleness up to b weighs 1
  // defense_args (fedml/algorithms/robust.h)
  bool enable_defense = false;
  std::string defense_type = "";  // wise_median | trimmed_mean | krum | multikrum | bulyan | ...
  // The attackers tolerated (defense), and with attack_type byzantine the attackers in each
  // round: one key, as in FedML.
  int byzantine_client_num = 0;
  int krum_param_m = 0;     // multikrum: updates averaged (0 = n - f)
  double beta = 0.1;        // trimmed_mean: fraction trimmed at each end
  double norm_bound = 5.0;  // norm_diff_clipping
  // attack_args (fedml/api/client_pipeline.h): simulated attackers, for evaluating defenses
  bool enable_attack = false;
  // byzantine | label_flipping | free_rider | noise | fewer_steps | replay (the last three,
  // and free_rider, are the cheats verified work catches: fedml/api/client_pipeline.h)
  std::string attack_type = "byzantine";
  std::string attack_mode = "random";     // byzantine: random | zero | flip | scaled_flip
  double ratio_of_poisoned_client = 0.0;  // a fixed set of this fraction of all clients
  double attack_scale = 10.0;             // scaled_flip: x = g - attack_scale (x_honest - g)
  // dp_args (fedml/algorithms/dp.h)
  bool enable_dp = false;
  std::string dp_solution_type = "cdp";  // cdp (on the server) | ldp (on each client)
  double epsilon = 0.0;                  // target after comm_round rounds (0: set noise_multiplier)
  double delta = 1e-5;
  double clipping_norm = 1.0;
  double noise_multiplier = 0.0;  // 0: derived from epsilon
  // security_args: secure aggregation (fedml/api/secure_aggregation.h), SecAgg or SecAgg+;
  // the server learns only the sum of each round's quantized updates.
  std::string secure_aggregation = "none";  // none | secagg | secagg_plus
  int num_shares = 0;                       // secagg_plus neighbourhood incl. the client (0 = auto)
  double reconstruction_threshold = 0;      // 0 = majority; (0, 1) fraction; >= 1 a count
  double clipping_range = 8.0;              // update values are clipped to [-c, c]
  std::uint64_t quantization_range = std::uint64_t{1} << 22;
  std::uint64_t modulus = std::uint64_t{1} << 32;  // the ring: a power of two <= 2^32
  double max_weight = 1000.0;                      // a client's weight: min(samples / this, 1)
  double secagg_stage_timeout_s = 60.0;            // the longest one stage waits for answers
  // A client's record of the secure rounds it took part in (each at most once), kept across its
  // restarts; "" keeps it in memory for the process's life only.
  std::string secagg_journal = "";
  // The weakest round a client takes part in: at least this many participants, and for
  // SecAgg+ a degree of at least min(n - 1, secagg_min_neighbours) (0: ceil(log2 n)). A
  // threshold of at most half the neighbourhood is always refused.
  int secagg_min_clients = 3;
  int secagg_min_neighbours = 0;
  // Deployment with mutual TLS (`--mtls`): secure rounds are signed (each client signs its keys
  // with its certificate's key and checks its peers', and a consistency round runs before
  // unmasking) and a client refuses an unsigned round. false turns both off (server and client
  // must agree). Without mutual TLS, and in simulation, rounds are never signed.
  bool secagg_signed_keys = true;
  // Simulated dropouts: this fraction of each round's clients vanish after dropout_stage
  // (advertise_keys | share_keys | mask_input).
  double dropout_rate = 0.0;
  std::string dropout_stage = "share_keys";
  // Verified work (fedml/api/verification.h, docs/verification.md): each update carries a
  // commitment to its training trajectory, and the server replays one random segment of a
  // fraction of them; a cheat is excluded from the round, its stake slashed.
  std::string verification = "disabled";  // disabled | enabled
  int checkpoint_interval = 5;            // optimizer steps between committed checkpoints
  double verify_probability = 0.1;        // the chance that an update is spot-checked
  // A replayed segment passes when |replayed - committed| <= this x |replayed - start| (L2):
  // relative, so one figure covers every model size; honest replays measure ~1e-7 (see docs).
  double verify_threshold = 1e-3;
  double initial_stake = 100.0;  // every client's stake before its first check
  double slash_fraction = 0.5;   // of its stake a client loses at a failed check
  // validation_args
  int frequency_of_the_test = 1;
  // device_args
  int worker_num = 2;
  bool using_gpu = false;
  int gpu_id = 0;
  std::string device = "";  // "" = derived from using_gpu/gpu_id; else cpu | cuda:N
  // Simulated devices on a virtual clock (fedml/api/system_model.h): each client's compute
  // speed and bandwidth are the medians (none), the medians times lognormal(0, sigma) factors
  // drawn from the seed (lognormal), or rows of trace_file (trace, with online windows).
  std::string heterogeneity = "none";  // none | lognormal | trace
  double speed_sigma = 1.0;
  double bandwidth_sigma = 0.0;
  double compute_speed = 1000.0;  // samples per second of the median client
  double bandwidth_mbps = 100.0;  // the median client's link, each way
  std::string trace_file = "";
  // Under MPI: FedML's GPU map (fedml/api/gpu_mapping.h), which sets each rank's device.
  std::string gpu_mapping_file = "";
  std::string gpu_mapping_key = "mapping_default";
  // comm_args
  std::string backend = "inproc";  // inproc (alias sp) | MPI | GRPC
  double round_timeout_s = 600.0;  // a round's deadline
  // A worker that holds one task longer than this is taken for dead: its client goes to another
  // worker and it gets no more tasks (0 = only the round deadline applies).
  double worker_timeout_s = 0.0;
  // Deployment: a round changes the global model only when at least this many updates arrive
  // before its deadline, and starts once min_available_clients clients are connected
  // (0 = client_num_per_round before the first round, min_clients before later ones).
  int min_clients = 1;
  // Deployment, synchronous rounds: select ceil(client_num_per_round x over_selection) of the
  // connected clients and close the round when client_num_per_round have replied (>= 1).
  double over_selection = 1.0;
  int min_available_clients = 0;
  // Deployment with an aggregation tier: the number of `fedml aggregator` processes that connect
  // to `fedml server` (its ranks; tokens or certificates 0..aggregator_num-1), each serving
  // edge clients and forwarding one partial aggregate per round. 0: clients connect directly.
  int aggregator_num = 0;
  // The largest frame (model plus header) a server accepts from a client, in MiB; a larger push
  // is refused before it is read. 0: `fedml server` derives it from the model
  // (UpdateLimitForModel); the in-process and MPI servers then keep DecodeLimits' 16 GiB.
  int max_update_mb = 0;
  // A deployed server's push limits (core::grpc_comm::ServerOptions): a PushUpdate stream that
  // brings no chunk for push_idle_timeout_s, or lasts longer than push_timeout_s, is cancelled;
  // a client with max_queued_updates frames waiting for the server is refused another push.
  double push_idle_timeout_s = 30.0;
  double push_timeout_s = 1800.0;
  int max_queued_updates = 4;
  // The most samples one update may claim where the server cannot know the client's count (a
  // deployed client with its own data); 0: 4 x the mean partition of the server's copy of the
  // data set. Where the server's copy is the clients' data, a claim must equal the partition.
  int max_claimed_samples = 0;
  // tracking_args
  std::string metrics_file = "";
  std::string checkpoint_dir = "";
  // Append one hash-chained record per round (participants, update hashes, rewards) to this
  // ledger (fedml/core/security/ledger.h); `fedml ledger verify FILE` checks it. "" = none.
  std::string ledger_file = "";
  // A deployed client's copy of the server's signed ledger heads, one per round it took part in
  // after the first (fedml/core/security/ledger_heads.h); "" keeps none.
  std::string ledger_heads_file = "";
  std::string log_level = "info";
  // threads each worker's LibTorch may use (0 = one each so workers do not oversubscribe cores)
  int torch_threads = 0;
  // threads the server's FedAvg fold uses (0 = every core on a deployed server, whose cores are
  // its own; one in simulation and under MPI, where workers train beside the server)
  int aggregation_threads = 0;
  // updates FedAvg folds per pass over memory (FedAvgOptions::fold_width, 1..32; 0 = 2 in
  // simulation and under MPI, 8 on a deployed server): wider is faster and holds more copies
  int aggregation_fold_width = 0;
};

/// Values as text, keyed by FedML key name; what the YAML file or `--KEY VALUE` gave.
using RawConfig = std::map<std::string, std::string>;

struct ConfigLoadResult {
  Config config;
  std::vector<std::string> ignored_keys;  // cloud-only keys (mlops, wandb, ...), to warn about
  std::vector<std::string> given_keys;    // known keys the file or the overrides set
};

/// Reads a FedML-style YAML file into raw key/value pairs (sections flattened). Errors name the
/// file and the line for unreadable or malformed YAML, and for non-scalar values of known keys.
Result<RawConfig> ReadYamlConfig(const std::string& path, std::vector<std::string>* ignored_keys);

/// Applies `overrides` (they win) on top of `file_values` and the defaults above, converts
/// types and validates ranges. Errors: unknown key (with the nearest known key), a value of the
/// wrong type ("comm_round expects an integer, got 'abc'"), or out of range ("comm_round must be
/// >= 1, got -3"; "client_num_per_round (200) must be <= client_num_in_total (100)";
/// "partition_alpha must be > 0").
Result<Config> BuildConfig(const RawConfig& file_values, const RawConfig& overrides);

/// The whole path: file (optional, "" for none) plus overrides.
Result<ConfigLoadResult> LoadConfig(const std::string& path, const RawConfig& overrides);

/// True when `key` is one of the keys that are accepted but have no effect in fedml-cpp
/// (FedML-cloud keys such as mlops_*, wandb_*, using_mlops; FedML keys such as client_id_list).
/// Some of them are only harmless for certain values (scenario: horizontal, is_mobile: 0,
/// batch_num: -1); BuildConfig rejects any other value.
bool IsIgnoredKey(const std::string& key);

/// Field-by-field equality over every known key.
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

/// True when `key` is a key this build understands.
bool IsKnownKey(const std::string& key);
/// Every known key, sorted.
std::vector<std::string> KnownKeys();
/// The known key closest to `key` by edit distance ("" when none is reasonably close).
std::string NearestKnownKey(const std::string& key);

/// `backend` normalised: "sp" and "inproc" -> "inproc"; "MPI"/"mpi" -> "mpi"; "GRPC"/"grpc" ->
/// "grpc".
std::string NormalizedBackend(const std::string& backend);

/// The device this process trains, evaluates and aggregates on: `device` when given, else
/// "cuda:<gpu_id>" with using_gpu, else "cpu".
std::string TrainingDevice(const Config& config);

/// The config as YAML (FedML layout), for logs and checkpoints.
std::string ConfigToYaml(const Config& config);

}  // namespace fedml::api
