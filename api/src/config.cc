// Run configuration: FedML's YAML layout read into a typed, validated Config.
//
// One table (Keys()) describes every known key: its name, its FedML section, the Config member
// it sets and the values allowed. Parsing, validation, KnownKeys/IsKnownKey, equality and
// ConfigToYaml all walk that table, so a key added there is known everywhere at once.
//
// Why one file of this size: the key table, its validators and the YAML reader share private
// helpers (value parsing, "did you mean", the section layout) that no other file needs; split,
// they would need a private header for no reader's benefit.
#include "fedml/api/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <system_error>
#include <variant>

#include "fedml/algorithms/async.h"
#include "fedml/algorithms/registry.h"
#include "fedml/algorithms/robust.h"
#include "fedml/algorithms/server_optimizer.h"
#include "fedml/api/compatibility.h"
#include "fedml/api/options.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/core/data/dataset.h"
#include "fedml/core/text.h"
#include "fedml/core/train/model_names.h"

namespace fedml::api {
namespace {

// FedML's sections, in the order its example files use (and ConfigToYaml writes).
constexpr const char* kSections[] = {"common_args", "data_args",     "model_args",
                                     "train_args",  "defense_args",  "attack_args",
                                     "dp_args",     "security_args", "validation_args",
                                     "device_args", "comm_args",     "tracking_args"};

// Where MNIST lives when the config names `dataset: mnist` but no data_cache_dir: the
// Config default points at Fashion-MNIST, which would silently load the wrong images.
constexpr const char* kDefaultMnistDir = "/usr/share/datasets/mnist";

using Field = std::variant<int Config::*, std::uint64_t Config::*, double Config::*, bool Config::*,
                           std::string Config::*>;

struct KeySpec {
  std::string name;
  std::string section;
  Field field;
  // Checks the parsed value; empty when every value of the type is allowed.
  std::function<Status(const Config&)> validate;
  // Paths get a leading "~" expanded, as FedML's example files write "~/fedml_data".
  bool is_path = false;
};

template <class T>
struct Identity {
  using type = T;
};
// A check of one typed value; `name` is the key, for the message.
template <class T>
using Check = std::function<Status(const std::string& name, const T& value)>;

// ---- Text forms of values -------------------------------------------------------------------

// Shortest text that reads back to the same double (to_chars without precision round-trips),
// with ".0" added to integral values so that the YAML reads as a real number.
std::string DoubleText(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string ValueText(int v) { return std::to_string(v); }
std::string ValueText(std::uint64_t v) { return std::to_string(v); }
std::string ValueText(double v) { return DoubleText(v); }
std::string ValueText(bool v) { return v ? "true" : "false"; }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

using core::Join;
using core::Trim;

// ---- Validators -----------------------------------------------------------------------------

// The data sets: those read from files, and the generated one.
std::vector<std::string> DatasetNames() {
  std::vector<std::string> names = core::data::DatasetFileNames();
  names.push_back("synthetic");
  return names;
}

template <class T>
Check<T> AtLeast(T lo) {
  return [lo](const std::string& name, const T& v) {
    if (v >= lo) return Status::Ok();
    return Status::InvalidArgument(name + " must be >= " + ValueText(lo) + ", got " + ValueText(v));
  };
}

// lo <= v <= hi, for integer keys (InClosed is the floating-point one).
template <class T>
Check<T> InRange(T lo, T hi) {
  return [lo, hi](const std::string& name, const T& v) {
    if (v >= lo && v <= hi) return Status::Ok();
    return Status::InvalidArgument(name + " must be in [" + ValueText(lo) + ", " + ValueText(hi) +
                                   "], got " + ValueText(v));
  };
}

Check<double> GreaterThan(double lo) {
  return [lo](const std::string& name, const double& v) {
    if (v > lo) return Status::Ok();
    return Status::InvalidArgument(name + " must be > " + DoubleText(lo) + ", got " +
                                   DoubleText(v));
  };
}

// lo <= v < hi.
Check<double> InHalfOpen(double lo, double hi) {
  return [lo, hi](const std::string& name, const double& v) {
    if (v >= lo && v < hi) return Status::Ok();
    return Status::InvalidArgument(name + " must be in [" + DoubleText(lo) + ", " + DoubleText(hi) +
                                   "), got " + DoubleText(v));
  };
}

// lo <= v <= hi.
Check<double> InClosed(double lo, double hi) {
  return [lo, hi](const std::string& name, const double& v) {
    if (v >= lo && v <= hi) return Status::Ok();
    return Status::InvalidArgument(name + " must be in [" + DoubleText(lo) + ", " + DoubleText(hi) +
                                   "], got " + DoubleText(v));
  };
}

// lo < v <= hi.
Check<double> InLeftOpen(double lo, double hi) {
  return [lo, hi](const std::string& name, const double& v) {
    if (v > lo && v <= hi) return Status::Ok();
    return Status::InvalidArgument(name + " must be in (" + DoubleText(lo) + ", " + DoubleText(hi) +
                                   "], got " + DoubleText(v));
  };
}

// lo < v < hi.
Check<double> InOpen(double lo, double hi) {
  return [lo, hi](const std::string& name, const double& v) {
    if (v > lo && v < hi) return Status::Ok();
    return Status::InvalidArgument(name + " must be in (" + DoubleText(lo) + ", " + DoubleText(hi) +
                                   "), got " + DoubleText(v));
  };
}

// `note` follows the list of allowed values (why the list is what it is), may be empty.
Check<std::string> OneOf(std::vector<std::string> allowed, std::string note = "") {
  return [allowed = std::move(allowed), note = std::move(note)](const std::string& name,
                                                                const std::string& v) {
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return Status::Ok();
    return Status::InvalidArgument(name + " must be one of " + Join(allowed, ", ") + note +
                                   "; got '" + v + "'");
  };
}

// A built-in model's name, or a TorchScript file's path (".pt"), checked when it is loaded.
Check<std::string> ModelCheck() {
  return [builtin = OneOf(core::ModelNames(), ", or a TorchScript file's path ending in .pt")](
             const std::string& name, const std::string& v) {
    if (core::IsScriptedModelPath(v)) return Status::Ok();
    return builtin(name, v);
  };
}

// "" (derived from using_gpu/gpu_id), "cpu" or "cuda:N".
Status CheckDevice(const std::string& name, const std::string& v) {
  if (v.empty() || v == "cpu") return Status::Ok();
  constexpr const char kCuda[] = "cuda:";
  const size_t n = sizeof(kCuda) - 1;
  if (v.size() > n && v.compare(0, n, kCuda) == 0 &&
      std::all_of(v.begin() + n, v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::Ok();
  }
  return Status::InvalidArgument(name +
                                 " must be '' (derived from using_gpu and gpu_id), 'cpu' or "
                                 "'cuda:N' with N a GPU index; got '" +
                                 v + "'");
}

// ---- The table ------------------------------------------------------------------------------

template <class T>
KeySpec Key(const char* section, const char* name, T Config::*member,
            typename Identity<Check<T>>::type check = {}, bool is_path = false) {
  KeySpec k;
  k.name = name;
  k.section = section;
  k.field = member;
  k.is_path = is_path;
  if (check) {
    k.validate = [name = std::string(name), member, check](const Config& c) {
      return check(name, c.*member);
    };
  }
  return k;
}

template <class T>
KeySpec PathKey(const char* section, const char* name, T Config::*member) {
  return Key<T>(section, name, member, {}, /*is_path=*/true);
}

const std::vector<KeySpec>& Keys() {
  static const std::vector<KeySpec> keys = [] {
    using C = Config;
    std::vector<KeySpec> k;
    // common_args
    k.push_back(Key("common_args", "training_type", &C::training_type,
                    OneOf({"simulation", "cross_silo", "cross_device"})));
    k.push_back(Key("common_args", "random_seed", &C::random_seed));
    // data_args
    k.push_back(Key("data_args", "dataset", &C::dataset, OneOf(DatasetNames())));
    k.push_back(PathKey("data_args", "data_cache_dir", &C::data_cache_dir));
    k.push_back(Key("data_args", "partition_method", &C::partition_method,
                    OneOf({"homo", "hetero", "shards", "natural"})));
    k.push_back(Key("data_args", "partition_alpha", &C::partition_alpha, GreaterThan(0.0)));
    k.push_back(
        Key("data_args", "data_augmentation", &C::data_augmentation, OneOf({"none", "crop_flip"})));
    k.push_back(Key("data_args", "shards_per_client", &C::shards_per_client, AtLeast(1)));
    // LEAF's synthetic(alpha, beta) are standard deviations of the priors; synthetic(0, 0) is the
    // i.i.d. case.
    k.push_back(Key("data_args", "synthetic_alpha", &C::synthetic_alpha, AtLeast(0.0)));
    k.push_back(Key("data_args", "synthetic_beta", &C::synthetic_beta, AtLeast(0.0)));
    k.push_back(Key("data_args", "synthetic_dimension", &C::synthetic_dimension, AtLeast(1)));
    // model_args
    k.push_back(Key("model_args", "model", &C::model, ModelCheck(), /*is_path=*/true));
    k.push_back(PathKey("model_args", "model_file_cache_folder", &C::model_file_cache_folder));
    // train_args
    k.push_back(Key("train_args", "federated_optimizer", &C::federated_optimizer,
                    OneOf(algorithms::AggregatorNames(), " (names are case-sensitive)")));
    k.push_back(Key("train_args", "client_num_in_total", &C::client_num_in_total, AtLeast(1)));
    k.push_back(Key("train_args", "client_num_per_round", &C::client_num_per_round, AtLeast(1)));
    k.push_back(Key("train_args", "comm_round", &C::comm_round, AtLeast(1)));
    k.push_back(Key("train_args", "epochs", &C::epochs, AtLeast(1)));
    k.push_back(Key("train_args", "batch_size", &C::batch_size, AtLeast(1)));
    k.push_back(
        Key("train_args", "client_optimizer", &C::client_optimizer, OneOf({"sgd", "adam"})));
    k.push_back(Key("train_args", "learning_rate", &C::learning_rate, GreaterThan(0.0)));
    k.push_back(Key("train_args", "momentum", &C::momentum, InHalfOpen(0.0, 1.0)));
    k.push_back(Key("train_args", "weight_decay", &C::weight_decay, AtLeast(0.0)));
    k.push_back(Key("train_args", "server_optimizer", &C::server_optimizer,
                    OneOf(algorithms::ServerOptimizerNames())));
    k.push_back(Key("train_args", "server_lr", &C::server_lr, GreaterThan(0.0)));
    k.push_back(Key("train_args", "server_momentum", &C::server_momentum, InHalfOpen(0.0, 1.0)));
    k.push_back(Key("train_args", "beta1", &C::beta1, InHalfOpen(0.0, 1.0)));
    k.push_back(Key("train_args", "beta2", &C::beta2, InHalfOpen(0.0, 1.0)));
    k.push_back(Key("train_args", "tau", &C::tau, GreaterThan(0.0)));
    k.push_back(Key("train_args", "fedprox_mu", &C::fedprox_mu, AtLeast(0.0)));
    k.push_back(Key("train_args", "buffer_size", &C::buffer_size, AtLeast(1)));
    k.push_back(Key("train_args", "max_concurrency", &C::max_concurrency, AtLeast(0)));
    k.push_back(Key("train_args", "max_staleness", &C::max_staleness, AtLeast(0)));
    k.push_back(Key("train_args", "async_alpha", &C::async_alpha, InLeftOpen(0.0, 1.0)));
    k.push_back(Key("train_args", "staleness_function", &C::staleness_function,
                    OneOf(algorithms::StalenessFunctionNames())));
    k.push_back(Key("train_args", "staleness_a", &C::staleness_a, AtLeast(0.0)));
    k.push_back(Key("train_args", "staleness_b", &C::staleness_b, AtLeast(0.0)));
    // defense_args
    k.push_back(Key("defense_args", "enable_defense", &C::enable_defense));
    k.push_back(Key<std::string>("defense_args", "defense_type", &C::defense_type,
                                 [](const std::string& name, const std::string& v) {
                                   if (v.empty()) return Status::Ok();  // checked if enabled
                                   return OneOf(algorithms::DefenseTypeNames())(name, v);
                                 }));
    k.push_back(Key("defense_args", "byzantine_client_num", &C::byzantine_client_num, AtLeast(0)));
    k.push_back(Key("defense_args", "krum_param_m", &C::krum_param_m, AtLeast(0)));
    k.push_back(Key("defense_args", "beta", &C::beta, InHalfOpen(0.0, 0.5)));
    k.push_back(Key("defense_args", "norm_bound", &C::norm_bound, GreaterThan(0.0)));
    // attack_args
    k.push_back(Key("attack_args", "enable_attack", &C::enable_attack));
    k.push_back(Key(
        "attack_args", "attack_type", &C::attack_type,
        OneOf({"byzantine", "label_flipping", "free_rider", "noise", "fewer_steps", "replay"})));
    k.push_back(Key("attack_args", "attack_mode", &C::attack_mode,
                    OneOf({"random", "zero", "flip", "scaled_flip"})));
    k.push_back(Key("attack_args", "ratio_of_poisoned_client", &C::ratio_of_poisoned_client,
                    InClosed(0.0, 1.0)));
    k.push_back(Key("attack_args", "attack_scale", &C::attack_scale, GreaterThan(0.0)));
    // dp_args
    k.push_back(Key("dp_args", "enable_dp", &C::enable_dp));
    k.push_back(Key("dp_args", "dp_solution_type", &C::dp_solution_type, OneOf({"cdp", "ldp"})));
    k.push_back(Key("dp_args", "epsilon", &C::epsilon, AtLeast(0.0)));
    k.push_back(Key("dp_args", "delta", &C::delta, InOpen(0.0, 1.0)));
    k.push_back(Key("dp_args", "clipping_norm", &C::clipping_norm, GreaterThan(0.0)));
    k.push_back(Key("dp_args", "noise_multiplier", &C::noise_multiplier, AtLeast(0.0)));
    // security_args
    k.push_back(Key("security_args", "secure_aggregation", &C::secure_aggregation,
                    OneOf({"none", "secagg", "secagg_plus"})));
    k.push_back(Key("security_args", "num_shares", &C::num_shares, AtLeast(0)));
    k.push_back(Key("security_args", "reconstruction_threshold", &C::reconstruction_threshold,
                    AtLeast(0.0)));
    k.push_back(Key("security_args", "clipping_range", &C::clipping_range, GreaterThan(0.0)));
    k.push_back(Key("security_args", "quantization_range", &C::quantization_range));
    k.push_back(Key("security_args", "modulus", &C::modulus));
    k.push_back(Key("security_args", "max_weight", &C::max_weight, GreaterThan(0.0)));
    k.push_back(Key("security_args", "secagg_stage_timeout_s", &C::secagg_stage_timeout_s,
                    GreaterThan(0.0)));
    k.push_back(PathKey("security_args", "secagg_journal", &C::secagg_journal));
    k.push_back(Key("security_args", "secagg_min_clients", &C::secagg_min_clients, AtLeast(2)));
    k.push_back(
        Key("security_args", "secagg_min_neighbours", &C::secagg_min_neighbours, AtLeast(0)));
    k.push_back(Key("security_args", "secagg_signed_keys", &C::secagg_signed_keys));
    k.push_back(Key("security_args", "dropout_rate", &C::dropout_rate, InHalfOpen(0.0, 1.0)));
    k.push_back(
        Key("security_args", "dropout_stage", &C::dropout_stage, OneOf(SecureDropoutStageNames())));
    k.push_back(
        Key("security_args", "verification", &C::verification, OneOf({"disabled", "enabled"})));
    k.push_back(Key("security_args", "checkpoint_interval", &C::checkpoint_interval, AtLeast(1)));
    k.push_back(
        Key("security_args", "verify_probability", &C::verify_probability, InClosed(0.0, 1.0)));
    k.push_back(Key("security_args", "verify_threshold", &C::verify_threshold, GreaterThan(0.0)));
    k.push_back(Key("security_args", "initial_stake", &C::initial_stake, AtLeast(0.0)));
    k.push_back(Key("security_args", "slash_fraction", &C::slash_fraction, InClosed(0.0, 1.0)));
    // validation_args
    k.push_back(
        Key("validation_args", "frequency_of_the_test", &C::frequency_of_the_test, AtLeast(1)));
    // device_args
    k.push_back(Key("device_args", "worker_num", &C::worker_num, AtLeast(1)));
    k.push_back(Key("device_args", "using_gpu", &C::using_gpu));
    k.push_back(Key("device_args", "gpu_id", &C::gpu_id, AtLeast(0)));
    k.push_back(Key<std::string>("device_args", "device", &C::device, CheckDevice));
    k.push_back(Key("device_args", "torch_threads", &C::torch_threads, AtLeast(0)));
    k.push_back(Key("device_args", "aggregation_threads", &C::aggregation_threads, AtLeast(0)));
    k.push_back(Key("device_args", "aggregation_fold_width", &C::aggregation_fold_width,
                    InRange(0, algorithms::kMaxFoldWidth)));
    k.push_back(Key("device_args", "heterogeneity", &C::heterogeneity,
                    OneOf({"none", "lognormal", "trace"})));
    k.push_back(Key("device_args", "speed_sigma", &C::speed_sigma, AtLeast(0.0)));
    k.push_back(Key("device_args", "bandwidth_sigma", &C::bandwidth_sigma, AtLeast(0.0)));
    k.push_back(Key("device_args", "compute_speed", &C::compute_speed, GreaterThan(0.0)));
    k.push_back(Key("device_args", "bandwidth_mbps", &C::bandwidth_mbps, GreaterThan(0.0)));
    k.push_back(PathKey("device_args", "trace_file", &C::trace_file));
    k.push_back(PathKey("device_args", "gpu_mapping_file", &C::gpu_mapping_file));
    k.push_back(Key<std::string>("device_args", "gpu_mapping_key", &C::gpu_mapping_key));
    // comm_args
    k.push_back(Key("comm_args", "backend", &C::backend,
                    OneOf({"sp", "inproc", "MPI", "mpi", "GRPC", "grpc"},
                          " (sp and inproc are the same in-process backend)")));
    k.push_back(Key("comm_args", "round_timeout_s", &C::round_timeout_s, GreaterThan(0.0)));
    k.push_back(Key("comm_args", "worker_timeout_s", &C::worker_timeout_s, AtLeast(0.0)));
    k.push_back(Key("comm_args", "min_clients", &C::min_clients, AtLeast(1)));
    k.push_back(Key("comm_args", "min_available_clients", &C::min_available_clients, AtLeast(0)));
    k.push_back(Key("comm_args", "over_selection", &C::over_selection, AtLeast(1.0)));
    k.push_back(Key("comm_args", "aggregator_num", &C::aggregator_num, AtLeast(0)));
    k.push_back(Key("comm_args", "max_update_mb", &C::max_update_mb, AtLeast(0)));
    k.push_back(Key("comm_args", "push_idle_timeout_s", &C::push_idle_timeout_s, GreaterThan(0.0)));
    k.push_back(Key("comm_args", "push_timeout_s", &C::push_timeout_s, GreaterThan(0.0)));
    k.push_back(Key("comm_args", "max_queued_updates", &C::max_queued_updates, AtLeast(1)));
    k.push_back(Key("comm_args", "max_claimed_samples", &C::max_claimed_samples, AtLeast(0)));
    // tracking_args
    k.push_back(PathKey("tracking_args", "metrics_file", &C::metrics_file));
    k.push_back(PathKey("tracking_args", "checkpoint_dir", &C::checkpoint_dir));
    k.push_back(PathKey("tracking_args", "ledger_file", &C::ledger_file));
    k.push_back(PathKey("tracking_args", "ledger_heads_file", &C::ledger_heads_file));
    k.push_back(Key("tracking_args", "log_level", &C::log_level,
                    OneOf({"debug", "info", "warning", "error"})));
    return k;
  }();
  return keys;
}

const KeySpec* FindKey(const std::string& name) {
  for (const KeySpec& k : Keys()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// ---- Keys accepted without effect -----------------------------------------------------------
//
// Two kinds, both reported through ignored_keys so the user sees they did nothing:
//  * FedML-cloud keys (MLOps platform, Weights & Biases, FedML's launcher and log uploader):
//    environment_args, mlops*, wandb_*, enable_wandb, using_mlops, enable_tracking, run_name,
//    config_version, log_file_dir, local_log_output, report_gradients. fedml-cpp logs to stderr
//    and records metrics through metrics_file instead.
//  * FedML keys that have no counterpart here: client_id_list (FedML's MLOps edge-id list; our
//    client ids are 0..client_num_in_total-1), server_gpu_mapping_key (FedML's cross-silo
//    server map; gpu_mapping_file/gpu_mapping_key place every rank, the server included),
//    mqtt_config_path/s3_config_path (the MQTT_S3 transport, not built), global_model_file_path
//    (FedML's MNN export for phones), data_file_path (FedML's per-dataset file for h5 datasets;
//    our datasets are read from data_cache_dir).
//  Some are only harmless at the value that means "the behaviour fedml-cpp has": scenario
//  (horizontal; hierarchical FL is a different topology), is_mobile (0; the mobile path uses
//  other message formats), batch_num (-1 = every batch of an epoch). Any other value is an error
//  rather than a silently different run.
struct IgnoreRule {
  const char* name;
  bool prefix;                        // `name` is a prefix ("mlops" matches mlops_api_key)
  std::vector<std::string> harmless;  // empty: any value; else the (lower-case) values
  const char* meaning;                // what the harmless value means, for the error
};

const std::vector<IgnoreRule>& IgnoreRules() {
  static const std::vector<IgnoreRule> rules = {
      {"environment_args", false, {}, ""},
      {"mlops", true, {}, ""},
      {"wandb_", true, {}, ""},
      {"enable_wandb", false, {}, ""},
      {"using_mlops", false, {}, ""},
      {"enable_tracking", false, {}, ""},
      {"run_name", false, {}, ""},
      {"config_version", false, {}, ""},
      {"log_file_dir", false, {}, ""},
      {"local_log_output", false, {}, ""},
      {"report_gradients", false, {}, ""},
      {"client_id_list", false, {}, ""},
      {"server_gpu_mapping_key", false, {}, ""},
      {"mqtt_config_path", false, {}, ""},
      {"s3_config_path", false, {}, ""},
      {"global_model_file_path", false, {}, ""},
      {"data_file_path", false, {}, ""},
      {"scenario", false, {"horizontal"}, "horizontal federated learning"},
      {"is_mobile", false, {"0", "false", "no"}, "not a mobile deployment"},
      {"batch_num", false, {"-1"}, "every batch of each epoch"},
  };
  return rules;
}

const IgnoreRule* FindIgnoreRule(const std::string& key) {
  for (const IgnoreRule& r : IgnoreRules()) {
    if (r.prefix ? key.compare(0, std::strlen(r.name), r.name) == 0 : key == r.name) return &r;
  }
  return nullptr;
}

bool IsHarmless(const IgnoreRule& rule, const std::string& value) {
  if (rule.harmless.empty()) return true;
  const std::string v = Lower(Trim(value));
  return std::find(rule.harmless.begin(), rule.harmless.end(), v) != rule.harmless.end();
}

Status NotSupportedValue(const IgnoreRule& rule, const std::string& key, const std::string& v) {
  return Status::InvalidArgument(
      key + " '" + v + "' is not supported by fedml-cpp; allowed: " + Join(rule.harmless, ", ") +
      " (" + rule.meaning + "), or leave the key out");
}

void AddIgnored(std::vector<std::string>* ignored, const std::string& key) {
  if (ignored && std::find(ignored->begin(), ignored->end(), key) == ignored->end()) {
    ignored->push_back(key);
  }
}

// ---- Parsing one value ----------------------------------------------------------------------

Status TypeError(const std::string& name, const char* expected, const std::string& text) {
  return Status::InvalidArgument(name + " expects " + expected + ", got '" + text + "'");
}

template <class T>
bool ParseInteger(const std::string& text, T* out) {
  std::string t = Trim(text);
  // from_chars takes no '+'; YAML and shells may well write one.
  if (!t.empty() && t[0] == '+') t.erase(0, 1);
  if (t.empty()) return false;
  auto r = std::from_chars(t.data(), t.data() + t.size(), *out);
  return r.ec == std::errc() && r.ptr == t.data() + t.size();
}

Status ParseValue(const KeySpec& spec, const std::string& text, Config* config) {
  const std::string& name = spec.name;
  return std::visit(
      [&](auto member) -> Status {
        using T = std::decay_t<decltype(config->*member)>;
        T& dst = config->*member;
        if constexpr (std::is_same_v<T, int>) {
          if (!ParseInteger(text, &dst)) return TypeError(name, "an integer", text);
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          if (Trim(text).rfind('-', 0) == 0 || !ParseInteger(text, &dst)) {
            return TypeError(name, "a non-negative integer", text);
          }
        } else if constexpr (std::is_same_v<T, double>) {
          if (!core::ParseFiniteDouble(text, &dst)) return TypeError(name, "a finite number", text);
        } else if constexpr (std::is_same_v<T, bool>) {
          const std::string t = Lower(Trim(text));
          if (t == "true" || t == "yes" || t == "1") {
            dst = true;
          } else if (t == "false" || t == "no" || t == "0") {
            dst = false;
          } else {
            return TypeError(name, "a boolean (true/false/yes/no/1/0)", text);
          }
        } else {
          dst = text;
          if (spec.is_path && (dst == "~" || dst.rfind("~/", 0) == 0)) {
            if (const char* home = std::getenv("HOME"); home && *home) {
              dst = std::string(home) + dst.substr(1);
            }
          }
        }
        return Status::Ok();
      },
      spec.field);
}

// A YAML scalar written so that it reads back as exactly `s` (double-quoted, escaped).
std::string YamlQuoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string YamlValue(const KeySpec& spec, const Config& config) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = config.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return YamlQuoted(v);
        } else {
          return ValueText(v);
        }
      },
      spec.field);
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

Status UnknownKey(const std::string& key) {
  const std::string near = NearestKnownKey(key);
  if (!near.empty()) {
    return Status::InvalidArgument("unknown config key '" + key + "'; did you mean '" + near +
                                   "'?");
  }
  return Status::InvalidArgument("unknown config key '" + key +
                                 "'; docs/configuration.md lists every key");
}

// ---- YAML reading ---------------------------------------------------------------------------

std::string Where(const std::string& path, const YAML::Mark& mark) {
  std::string s = "config file '" + path + "'";
  if (!mark.is_null() && mark.line >= 0) {
    s += ", line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
  }
  return s;
}

const char* NodeKind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "mapping";
    case YAML::NodeType::Sequence:
      return "list";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "scalar";
    default:
      return "undefined value";
  }
}

class YamlFlattener {
 public:
  YamlFlattener(std::string path, std::vector<std::string>* ignored)
      : path_(std::move(path)), ignored_(ignored) {}

  Status AddRoot(const YAML::Node& root) {
    if (root.IsNull()) return Status::Ok();  // an empty file: every key keeps its default
    if (!root.IsMap()) {
      return Status::InvalidArgument(Where(path_, root.Mark()) +
                                     ": expected FedML sections (a mapping such as "
                                     "'train_args:') at the top level, got a " +
                                     NodeKind(root));
    }
    for (const auto& kv : root) {
      std::string name;
      FEDML_RETURN_IF_ERROR(KeyName(kv.first, &name));
      // A top-level mapping is a section, whatever its name: FedML flattens every section,
      // and an unknown section's keys are then judged one by one.
      if (kv.second.IsMap() && !FindIgnoreRule(name) && !IsKnownKey(name)) {
        for (const auto& child : kv.second) FEDML_RETURN_IF_ERROR(Add(child.first, child.second));
      } else {
        FEDML_RETURN_IF_ERROR(Add(kv.first, kv.second));
      }
    }
    return Status::Ok();
  }

  RawConfig TakeValues() { return std::move(values_); }

 private:
  Status KeyName(const YAML::Node& key, std::string* name) {
    if (!key.IsScalar()) {
      return Status::InvalidArgument(Where(path_, key.Mark()) +
                                     ": a key must be a plain name, got a " + NodeKind(key));
    }
    *name = key.Scalar();
    return Status::Ok();
  }

  Status Add(const YAML::Node& key, const YAML::Node& value) {
    std::string name;
    FEDML_RETURN_IF_ERROR(KeyName(key, &name));
    const bool scalar = value.IsScalar() || value.IsNull();
    const std::string text = value.IsScalar() ? value.Scalar() : "";
    if (const IgnoreRule* rule = FindIgnoreRule(name)) {
      if (rule->harmless.empty() || (scalar && IsHarmless(*rule, text))) {
        AddIgnored(ignored_, name);
        return Status::Ok();
      }
      if (!scalar)
        return NotSupportedValue(*rule, name, Dump(value)).WithContext(Where(path_, value.Mark()));
      // A harmful value goes on to BuildConfig, which rejects it like an override would be.
    }
    if (!scalar && IsKnownKey(name)) {
      return Status::InvalidArgument(Where(path_, value.Mark()) + ": " + name +
                                     " must be a single value, got a " + NodeKind(value));
    }
    const int line = key.Mark().line + 1;
    // FedML's files give byzantine_client_num in both defense_args and attack_args: a repeat
    // with the same value says nothing new; a different value would be silently lost.
    if (auto it = lines_.find(name);
        it != lines_.end() && scalar && values_.count(name) && values_[name] == text) {
      return Status::Ok();
    } else if (it != lines_.end()) {
      return Status::InvalidArgument(Where(path_, key.Mark()) + ": " + name +
                                     " is already given at line " + std::to_string(it->second) +
                                     " with another value; a key may appear in several sections "
                                     "only with the same value");
    }
    lines_[name] = line;
    // An unknown key's value is kept as text only so that BuildConfig can name the key.
    values_[name] = scalar ? text : Dump(value);
    return Status::Ok();
  }

  static std::string Dump(const YAML::Node& n) {
    YAML::Emitter e;
    e << YAML::Flow << n;
    return e.c_str();
  }

  std::string path_;
  std::vector<std::string>* ignored_;
  RawConfig values_;
  std::map<std::string, int> lines_;
};

// Checks between keys of the algorithm sections, which no single key's check can see.
Status CheckAlgorithmKeys(const Config& c) {
  const std::string& opt = c.federated_optimizer;
  if (c.enable_defense && c.defense_type.empty()) {
    return Status::InvalidArgument(
        "enable_defense is true but no defense_type is given; allowed: " +
        Join(algorithms::DefenseTypeNames(), ", "));
  }
  if (c.enable_defense) {
    // Checked here as well as by the rule itself, so that a run cannot fail on its first round.
    const int n = c.client_num_per_round;
    const int f = c.byzantine_client_num;
    const std::string& d = c.defense_type;
    const int need = d == "bulyan" ? 4 * f + 3 : (d == "krum" || d == "multikrum") ? 2 * f + 3 : 0;
    if (n < need) {
      return Status::InvalidArgument(
          d + " needs client_num_per_round >= " + (d == "bulyan" ? "4f + 3" : "2f + 3") +
          " (byzantine_client_num f = " + std::to_string(f) + ": at least " + std::to_string(need) +
          "), got " + std::to_string(n));
    }
    if (d == "multikrum" && c.krum_param_m > n) {
      return Status::InvalidArgument("krum_param_m (" + std::to_string(c.krum_param_m) +
                                     ") must be <= client_num_per_round (" + std::to_string(n) +
                                     ")");
    }
  }
  if (c.enable_dp && c.epsilon == 0.0 && c.noise_multiplier == 0.0) {
    return Status::InvalidArgument(
        "enable_dp needs the privacy target epsilon (> 0; the noise is derived for comm_round "
        "rounds) or noise_multiplier (> 0)");
  }
  if (c.enable_attack && c.byzantine_client_num == 0 && c.ratio_of_poisoned_client == 0.0) {
    return Status::InvalidArgument(
        "enable_attack needs byzantine_client_num (attackers in each round) or "
        "ratio_of_poisoned_client (a fixed fraction of all clients) > 0");
  }
  if (c.enable_attack && c.byzantine_client_num > c.client_num_per_round) {
    return Status::InvalidArgument(
        "byzantine_client_num (" + std::to_string(c.byzantine_client_num) +
        ") must be <= client_num_per_round (" + std::to_string(c.client_num_per_round) + ")");
  }
  if (opt == "FedProx" && c.fedprox_mu <= 0.0) {
    return Status::InvalidArgument(
        "federated_optimizer FedProx needs fedprox_mu > 0 (0 is FedAvg)");
  }
  const bool async = algorithms::IsAsynchronous(opt);
  if (async && c.max_concurrency > c.client_num_in_total) {
    return Status::InvalidArgument("max_concurrency (" + std::to_string(c.max_concurrency) +
                                   ") must be <= client_num_in_total (" +
                                   std::to_string(c.client_num_in_total) + ")");
  }
  if (c.heterogeneity == "trace" && c.trace_file.empty()) {
    return Status::InvalidArgument(
        "heterogeneity trace needs trace_file (a CSV: see "
        "docs/configuration.md)");
  }
  if (c.secure_aggregation != "none") {
    // The same resolution a round uses, for a round of client_num_per_round clients.
    auto task = SecureTaskForRound(SecureOptionsFrom(c), c.client_num_per_round, 1, 0, 0);
    if (!task.ok()) return Status::InvalidArgument(task.status().message());
  } else if (c.dropout_rate > 0.0) {
    return Status::InvalidArgument(
        "dropout_rate simulates clients vanishing during secure aggregation; set "
        "secure_aggregation to secagg or secagg_plus, or dropout_rate to 0");
  }
  // Features that cannot run together: the one table the round controller consults too.
  return CheckCompatible(RunFeaturesOf(c));
}

}  // namespace

Result<RawConfig> ReadYamlConfig(const std::string& path, std::vector<std::string>* ignored_keys) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound("config file '" + path + "' not found");
  if (fs::is_directory(path, ec)) {
    return Status::InvalidArgument("config file '" + path +
                                   "' is a directory; expected a YAML file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::PermissionDenied("cannot read config file '" + path +
                                    "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Status::DataLoss("cannot read config file '" + path + "': " + std::strerror(errno));
  }

  YamlFlattener flattener(path, ignored_keys);
  try {
    const YAML::Node root = YAML::Load(text.str());
    FEDML_RETURN_IF_ERROR(flattener.AddRoot(root));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(Where(path, e.mark) + ": malformed YAML: " + e.msg);
  }
  return flattener.TakeValues();
}

Result<Config> BuildConfig(const RawConfig& file_values, const RawConfig& overrides) {
  RawConfig merged = file_values;
  for (const auto& [key, value] : overrides) merged[key] = value;

  Config config;
  for (const auto& [key, value] : merged) {
    if (const IgnoreRule* rule = FindIgnoreRule(key)) {
      if (IsHarmless(*rule, value)) continue;
      return NotSupportedValue(*rule, key, value);
    }
    const KeySpec* spec = FindKey(key);
    if (!spec) return UnknownKey(key);
    FEDML_RETURN_IF_ERROR(ParseValue(*spec, value, &config));
  }
  if (config.dataset == "mnist" && merged.count("data_cache_dir") == 0) {
    config.data_cache_dir = kDefaultMnistDir;
  }

  for (const KeySpec& spec : Keys()) {
    if (spec.validate) FEDML_RETURN_IF_ERROR(spec.validate(config));
  }
  if (config.dataset != "fashion_mnist" && config.dataset != "mnist" &&
      config.dataset != "synthetic" && merged.count("data_cache_dir") == 0) {
    // No Debian package holds these: the user downloads them (README, "Data sets").
    return Status::InvalidArgument("dataset " + config.dataset +
                                   " needs data_cache_dir: the directory its files were unpacked "
                                   "into (docs/configuration.md says what each expects)");
  }
  if (config.client_num_per_round > config.client_num_in_total) {
    return Status::InvalidArgument(
        "client_num_per_round (" + std::to_string(config.client_num_per_round) +
        ") must be <= client_num_in_total (" + std::to_string(config.client_num_in_total) + ")");
  }
  FEDML_RETURN_IF_ERROR(CheckAlgorithmKeys(config));
  return config;
}

Result<ConfigLoadResult> LoadConfig(const std::string& path, const RawConfig& overrides) {
  ConfigLoadResult out;
  RawConfig file_values;
  if (!path.empty()) {
    FEDML_ASSIGN_OR_RETURN(file_values, ReadYamlConfig(path, &out.ignored_keys));
  }
  for (const auto& [key, value] : overrides) {
    const IgnoreRule* rule = FindIgnoreRule(key);
    if (rule && IsHarmless(*rule, value)) AddIgnored(&out.ignored_keys, key);
  }
  FEDML_ASSIGN_OR_RETURN(out.config, BuildConfig(file_values, overrides));
  for (const RawConfig* raw : {static_cast<const RawConfig*>(&file_values), &overrides}) {
    for (const auto& kv : *raw) {
      if (IsKnownKey(kv.first) && std::find(out.given_keys.begin(), out.given_keys.end(),
                                            kv.first) == out.given_keys.end()) {
        out.given_keys.push_back(kv.first);
      }
    }
  }
  return out;
}

bool IsIgnoredKey(const std::string& key) { return FindIgnoreRule(key) != nullptr; }

bool operator==(const Config& a, const Config& b) {
  for (const KeySpec& spec : Keys()) {
    const bool same = std::visit([&](auto member) { return a.*member == b.*member; }, spec.field);
    if (!same) return false;
  }
  return true;
}

bool IsKnownKey(const std::string& key) { return FindKey(key) != nullptr; }

std::vector<std::string> KnownKeys() {
  std::vector<std::string> names;
  for (const KeySpec& k : Keys()) names.push_back(k.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::string NearestKnownKey(const std::string& key) {
  // Case is ignored in the distance so that "Comm_Round" still finds comm_round.
  const std::string lower = Lower(key);
  const size_t limit = std::max<size_t>(2, key.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& name : KnownKeys()) {
    const size_t d = EditDistance(lower, name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  return best;
}

std::string TrainingDevice(const Config& config) {
  if (!config.device.empty()) return config.device;
  return config.using_gpu ? "cuda:" + std::to_string(config.gpu_id) : "cpu";
}

std::string NormalizedBackend(const std::string& backend) {
  if (backend == "sp" || backend == "inproc") return "inproc";
  if (backend == "MPI" || backend == "mpi") return "mpi";
  if (backend == "GRPC" || backend == "grpc") return "grpc";
  return backend;
}

std::string ConfigToYaml(const Config& config) {
  std::string out = "# fedml-cpp run configuration (FedML layout)\n";
  for (const char* section : kSections) {
    out += "\n";
    out += section;
    out += ":\n";
    for (const KeySpec& spec : Keys()) {
      if (spec.section == section) out += "  " + spec.name + ": " + YamlValue(spec, config) + "\n";
    }
  }
  return out;
}

}  // namespace fedml::api
