#include "fedml/api/config.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>
#include <catch2/catch.hpp>

#include "fedml/api/options.h"
#include "fedml/core/comm/grpc.h"

// Failed comparisons of two Configs print both as YAML.
namespace Catch {
template <>
struct StringMaker<fedml::api::Config> {
  static std::string convert(const fedml::api::Config& c) {
    return "\n" + fedml::api::ConfigToYaml(c);
  }
};
}  // namespace Catch

namespace fedml::api {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

// A YAML file in the temp directory, removed when the test ends.
class TempYaml {
 public:
  explicit TempYaml(const std::string& text) {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("fedml_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
              ".yaml"))
                .string();
    std::ofstream(path_) << text;
  }
  ~TempYaml() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Result<Config> Build(const RawConfig& overrides) { return BuildConfig({}, overrides); }

// The error message of building with `overrides`; fails the test if building succeeds.
std::string BuildError(const RawConfig& overrides) {
  auto r = Build(overrides);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  return r.status().message();
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// FedML's python/examples/federate/simulation/sp_fedavg_mnist_lr_example/fedml_config.yaml,
// with its cloud keys (credentials replaced) and a FedML environment_args section.
constexpr const char* kFedmlYaml = R"(common_args:
  training_type: "simulation"
  random_seed: 0
  config_version: "release"
  mlops_api_key: 0123456789abcdef
  mlops_project_name: sp_fedavg_test
  mlops_run_name: fedml_torch_fedavg_mnist_lr_mlsys
  scenario: "horizontal"

environment_args:
  bootstrap: config/bootstrap.sh

data_args:
  dataset: "mnist"
  data_cache_dir: ~/.cache/fedml_data
  partition_method: "hetero"
  partition_alpha: 0.5

model_args:
  model: "lr"

train_args:
  federated_optimizer: "FedAvg"
  client_id_list: "[]"
  client_num_in_total: 1
  client_num_per_round: 1
  comm_round: 3 # 3 is for quick GitHub sanity check.
  epochs: 1
  batch_size: 10
  client_optimizer: sgd
  learning_rate: 0.03
  weight_decay: 0.001

validation_args:
  frequency_of_the_test: 1

device_args:
  using_gpu: false
  gpu_id: 0

comm_args:
  backend: "sp"
  is_mobile: 0

tracking_args:
  enable_tracking: false
  enable_wandb: false
  wandb_key: not-a-real-key
  wandb_entity: fedml-ai
  wandb_project: simulation
  run_name: fedml_torch_fedavg_mnist_lr
  using_mlops: true
  log_file_dir: ./log
)";

TEST_CASE("defaults are the README default run", "[config]") {
  const Config c;
  CHECK(c.dataset == "fashion_mnist");
  CHECK(c.model == "cnn");
  CHECK(c.client_num_in_total == 100);
  CHECK(c.partition_method == "hetero");
  CHECK(c.partition_alpha == 0.5);
  CHECK(c.client_num_per_round == 10);
  CHECK(c.epochs == 1);
  CHECK(c.batch_size == 32);
  CHECK(c.client_optimizer == "sgd");
  CHECK(c.learning_rate == 0.05);
  CHECK(c.comm_round == 20);
  CHECK(c.federated_optimizer == "FedAvg");
  CHECK(NormalizedBackend(c.backend) == "inproc");

  // No file and no overrides: the defaults, valid, nothing ignored.
  auto r = LoadConfig("", {});
  REQUIRE(r.ok());
  CHECK(r->config == c);
  CHECK(r->ignored_keys.empty());
}

#ifdef FEDML_SOURCE_DIR
TEST_CASE("examples/fedavg_fashion_mnist.yaml is the default run", "[config]") {
  auto r = LoadConfig(std::string(FEDML_SOURCE_DIR) + "/examples/fedavg_fashion_mnist.yaml", {});
  REQUIRE(r.ok());
  CHECK(r->config == Config{});
  CHECK(r->ignored_keys.empty());
}

TEST_CASE("every example config loads without an ignored key", "[config]") {
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(FEDML_SOURCE_DIR) + "/examples")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    ++files;
    auto r = LoadConfig(entry.path().string(), {});
    INFO((r.ok() ? std::string() : r.status().ToString()));
    REQUIRE(r.ok());
    CHECK(r->ignored_keys.empty());
  }
  CHECK(files >= 4);
}
#endif

TEST_CASE("a FedML fedml_config.yaml loads; cloud keys are ignored and named", "[config]") {
  TempYaml file(kFedmlYaml);
  auto r = LoadConfig(file.path(), {});
  REQUIRE(r.ok());
  const Config& c = r->config;
  CHECK(c.training_type == "simulation");
  CHECK(c.dataset == "mnist");
  CHECK(c.model == "lr");
  CHECK(c.client_num_in_total == 1);
  CHECK(c.client_num_per_round == 1);
  CHECK(c.comm_round == 3);
  CHECK(c.batch_size == 10);
  CHECK(c.learning_rate == 0.03);
  CHECK(c.weight_decay == 0.001);
  CHECK(c.backend == "sp");
  CHECK(NormalizedBackend(c.backend) == "inproc");
  if (const char* home = std::getenv("HOME"); home && *home) {
    CHECK(c.data_cache_dir == std::string(home) + "/.cache/fedml_data");
  }

  const std::vector<std::string>& ignored = r->ignored_keys;
  for (const char* key :
       {"config_version", "mlops_api_key", "mlops_project_name", "mlops_run_name", "scenario",
        "environment_args", "client_id_list", "is_mobile", "enable_tracking", "enable_wandb",
        "wandb_key", "wandb_entity", "wandb_project", "run_name", "using_mlops", "log_file_dir"}) {
    CAPTURE(key);
    CHECK(Has(ignored, key));
    CHECK(IsIgnoredKey(key));
  }
  CHECK_FALSE(Has(ignored, "bootstrap"));  // inside environment_args, which is named whole
  CHECK(ignored.size() == 16);

  // ReadYamlConfig alone flattens the sections and leaves the ignored keys out.
  std::vector<std::string> ignored2;
  auto raw = ReadYamlConfig(file.path(), &ignored2);
  REQUIRE(raw.ok());
  CHECK(raw->at("comm_round") == "3");
  CHECK(raw->at("backend") == "sp");
  CHECK(raw->count("wandb_key") == 0);
  CHECK(ignored2 == ignored);
}

TEST_CASE("keys outside sections and in unknown sections are accepted", "[config]") {
  TempYaml file("comm_round: 7\nmy_args:\n  epochs: 3\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE(r.ok());
  CHECK(r->config.comm_round == 7);
  CHECK(r->config.epochs == 3);
}

TEST_CASE("an empty file keeps every default", "[config]") {
  TempYaml file("# nothing but a comment\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE(r.ok());
  CHECK(r->config == Config{});
}

TEST_CASE("overrides win over the file", "[config]") {
  TempYaml file("train_args:\n  comm_round: 5\n  epochs: 2\n");
  auto r = LoadConfig(file.path(), {{"comm_round", "9"}, {"model", "mlp"}});
  REQUIRE(r.ok());
  CHECK(r->config.comm_round == 9);  // overridden
  CHECK(r->config.epochs == 2);      // from the file
  CHECK(r->config.model == "mlp");   // only in the overrides

  // A cross-key rule is judged on the merged values: the override makes the file valid.
  TempYaml many("train_args:\n  client_num_per_round: 150\n");
  CHECK_FALSE(LoadConfig(many.path(), {}).ok());
  CHECK(LoadConfig(many.path(), {{"client_num_in_total", "200"}}).ok());
}

TEST_CASE("cloud keys given as overrides are ignored and named", "[config]") {
  auto r = LoadConfig("", {{"using_mlops", "true"}, {"wandb_project", "x"}, {"epochs", "2"}});
  REQUIRE(r.ok());
  CHECK(r->config.epochs == 2);
  CHECK(Has(r->ignored_keys, "using_mlops"));
  CHECK(Has(r->ignored_keys, "wandb_project"));
  CHECK(r->ignored_keys.size() == 2);
}

TEST_CASE("ignored keys with a value that changes the run are errors", "[config]") {
  CHECK_THAT(BuildError({{"scenario", "hierarchical"}}),
             Contains("scenario 'hierarchical' is not supported") && Contains("horizontal"));
  CHECK_THAT(BuildError({{"is_mobile", "1"}}), Contains("is_mobile '1' is not supported"));
  CHECK_THAT(BuildError({{"batch_num", "5"}}), Contains("allowed: -1"));
  CHECK(Build({{"batch_num", "-1"}, {"is_mobile", "False"}}).ok());

  TempYaml file("common_args:\n  scenario: hierarchical\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Contains("scenario 'hierarchical'"));
}

TEST_CASE("an unknown key is an error naming the nearest known key", "[config]") {
  CHECK_THAT(BuildError({{"comm_rounds", "5"}}),
             Equals("unknown config key 'comm_rounds'; did you mean 'comm_round'?"));
  CHECK_THAT(BuildError({{"learning_rat", "0.1"}}), Contains("did you mean 'learning_rate'?"));
  CHECK_THAT(BuildError({{"Batch_Size", "4"}}), Contains("did you mean 'batch_size'?"));
  // Nothing close: no guess, but a pointer to the list of keys.
  const std::string far = BuildError({{"frobnicate", "1"}});
  CHECK_THAT(far, Contains("unknown config key 'frobnicate'"));
  CHECK_THAT(far, !Contains("did you mean"));

  // The same from a file.
  TempYaml file("train_args:\n  epoch: 3\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Contains("unknown config key 'epoch'; did you mean 'epochs'?"));
}

TEST_CASE("NearestKnownKey suggests only within max(2, len/3) edits", "[config]") {
  CHECK(NearestKnownKey("comm_round") == "comm_round");
  CHECK(NearestKnownKey("modle") == "model");  // 2 edits, allowed for short keys
  CHECK(NearestKnownKey("xyz").empty());       // 3 edits from any 3-letter key
  CHECK(NearestKnownKey("client_num_per_rnd") == "client_num_per_round");  // 2 edits
  CHECK(NearestKnownKey("completely_unrelated_key").empty());
}

TEST_CASE("a value of the wrong type is an error naming key, type and value", "[config]") {
  CHECK_THAT(BuildError({{"comm_round", "abc"}}),
             Equals("comm_round expects an integer, got 'abc'"));
  CHECK_THAT(BuildError({{"comm_round", "2.5"}}), Contains("expects an integer, got '2.5'"));
  CHECK_THAT(BuildError({{"comm_round", "99999999999"}}), Contains("expects an integer"));
  CHECK_THAT(BuildError({{"comm_round", ""}}), Contains("expects an integer, got ''"));
  CHECK_THAT(BuildError({{"random_seed", "-1"}}),
             Equals("random_seed expects a non-negative integer, got '-1'"));
  CHECK_THAT(BuildError({{"learning_rate", "fast"}}),
             Equals("learning_rate expects a finite number, got 'fast'"));
  CHECK_THAT(BuildError({{"learning_rate", "inf"}}), Contains("expects a finite number"));
  CHECK_THAT(BuildError({{"using_gpu", "maybe"}}),
             Equals("using_gpu expects a boolean (true/false/yes/no/1/0), got 'maybe'"));
}

TEST_CASE("values of every type parse", "[config]") {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, bool>>{{"true", true},
                                                                                {"yes", true},
                                                                                {"1", true},
                                                                                {"True", true},
                                                                                {"false", false},
                                                                                {"no", false},
                                                                                {"0", false},
                                                                                {"FALSE", false}}) {
    CAPTURE(text);
    auto r = Build({{"using_gpu", text}});
    REQUIRE(r.ok());
    CHECK(r->using_gpu == expected);
  }
  auto r = Build({{"random_seed", "18446744073709551615"},
                  {"learning_rate", "5e-3"},
                  {"comm_round", "+3"},
                  {"momentum", " 0.9 "}});
  REQUIRE(r.ok());
  CHECK(r->random_seed == 18446744073709551615ull);
  CHECK(r->learning_rate == 5e-3);
  CHECK(r->comm_round == 3);
  CHECK(r->momentum == 0.9);
}

TEST_CASE("each range rule is enforced and says what is allowed", "[config]") {
  struct Case {
    std::string key, value, message;
  };
  const std::vector<Case> cases = {
      {"comm_round", "-3", "comm_round must be >= 1, got -3"},
      {"comm_round", "0", "comm_round must be >= 1, got 0"},
      {"epochs", "0", "epochs must be >= 1, got 0"},
      {"batch_size", "0", "batch_size must be >= 1, got 0"},
      {"client_num_in_total", "0", "client_num_in_total must be >= 1, got 0"},
      {"client_num_per_round", "0", "client_num_per_round must be >= 1, got 0"},
      {"client_num_per_round", "200",
       "client_num_per_round (200) must be <= client_num_in_total (100)"},
      {"learning_rate", "0", "learning_rate must be > 0.0, got 0.0"},
      {"learning_rate", "-0.1", "learning_rate must be > 0.0, got -0.1"},
      {"weight_decay", "-1e-4", "weight_decay must be >= 0.0, got -1e-04"},
      {"momentum", "1", "momentum must be in [0.0, 1.0), got 1.0"},
      {"momentum", "-0.5", "momentum must be in [0.0, 1.0), got -0.5"},
      {"partition_alpha", "0", "partition_alpha must be > 0.0, got 0.0"},
      {"frequency_of_the_test", "0", "frequency_of_the_test must be >= 1, got 0"},
      {"worker_num", "0", "worker_num must be >= 1, got 0"},
      {"round_timeout_s", "0", "round_timeout_s must be > 0.0, got 0.0"},
      {"worker_timeout_s", "-1", "worker_timeout_s must be >= 0.0, got -1.0"},
      {"shards_per_client", "0", "shards_per_client must be >= 1, got 0"},
      {"gpu_id", "-1", "gpu_id must be >= 0, got -1"},
      {"torch_threads", "-2", "torch_threads must be >= 0, got -2"},
      {"dataset", "imagenet",
       "dataset must be one of fashion_mnist, mnist, cifar10, cifar100, femnist, shakespeare, "
       "npy, synthetic; got 'imagenet'"},
      {"dataset", "cifar10", "dataset cifar10 needs data_cache_dir"},
      {"partition_method", "iid",
       "partition_method must be one of homo, hetero, shards, natural; got 'iid'"},
      {"model", "vgg16", "model must be one of lr, mlp, cnn, cnn_cifar, cnn_femnist"},
      {"client_optimizer", "adagrad", "client_optimizer must be one of sgd, adam; got 'adagrad'"},
      {"backend", "MQTT_S3", "backend must be one of sp, inproc, MPI, mpi, GRPC, grpc"},
      {"federated_optimizer", "FedProxy", "federated_optimizer must be one of FedAvg, FedOpt"},
      {"training_type", "vertical",
       "training_type must be one of simulation, cross_silo, cross_device; got 'vertical'"},
      {"device", "gpu", "device must be '' (derived from using_gpu and gpu_id), 'cpu' or 'cuda:N'"},
      {"device", "cuda:", "got 'cuda:'"},
      {"device", "cuda:x", "got 'cuda:x'"},
      {"log_level", "verbose",
       "log_level must be one of debug, info, warning, error; got 'verbose'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key, c.value);
    CHECK_THAT(BuildError({{c.key, c.value}}), Contains(c.message));
  }
  // The edges that are allowed.
  CHECK(Build({{"momentum", "0"},
               {"weight_decay", "0"},
               {"client_num_per_round", "100"},
               {"device", "cuda:1"},
               {"backend", "GRPC"},
               {"partition_alpha", "1e-9"}})
            .ok());
  CHECK(Build({{"device", "cpu"}, {"backend", "mpi"}}).ok());
}

TEST_CASE("mnist defaults data_cache_dir; synthetic and explicit values are kept", "[config]") {
  auto mnist = Build({{"dataset", "mnist"}});
  REQUIRE(mnist.ok());
  CHECK(mnist->data_cache_dir == "/usr/share/datasets/mnist");

  auto explicit_dir = Build({{"dataset", "mnist"}, {"data_cache_dir", "/data/m"}});
  REQUIRE(explicit_dir.ok());
  CHECK(explicit_dir->data_cache_dir == "/data/m");

  auto synthetic = Build({{"dataset", "synthetic"}});
  REQUIRE(synthetic.ok());
  CHECK(synthetic->data_cache_dir == Config{}.data_cache_dir);
}

TEST_CASE("malformed YAML names the file and the line", "[config]") {
  TempYaml file("train_args:\n  comm_round: 5\n  epochs: [1, 2\nmodel_args:\n  model: cnn\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(r.status().message(),
             Contains(file.path()) && Contains("malformed YAML") && Contains("line "));

  TempYaml bad_indent("train_args:\n  comm_round: 5\n epochs: 2\n");
  auto r2 = LoadConfig(bad_indent.path(), {});
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.status().message(), Contains(bad_indent.path()) && Contains("line 3"));
}

TEST_CASE("a non-scalar value of a known key names the line", "[config]") {
  TempYaml file("train_args:\n  comm_round: 5\n  epochs: [1, 2]\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Contains(file.path()) && Contains("line 3") &&
                                       Contains("epochs must be a single value, got a list"));
}

TEST_CASE("a key given in two sections is an error naming both lines", "[config]") {
  TempYaml file("train_args:\n  epochs: 5\nvalidation_args:\n  epochs: 2\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Contains("line 4") && Contains("epochs is already given at line 2"));
}

TEST_CASE("a top level that is not a mapping is an error", "[config]") {
  TempYaml file("- comm_round\n- 5\n");
  auto r = LoadConfig(file.path(), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Contains("expected FedML sections") && Contains("list"));
}

TEST_CASE("a missing file is NOT_FOUND and names the path", "[config]") {
  const std::string path = "/nonexistent/dir/fedml_config.yaml";
  auto r = LoadConfig(path, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kNotFound);
  CHECK_THAT(r.status().message(), Contains(path));

  std::vector<std::string> ignored;
  CHECK(ReadYamlConfig(path, &ignored).status().code() == StatusCode::kNotFound);
}

TEST_CASE("ConfigToYaml round-trips through LoadConfig", "[config]") {
  SECTION("defaults") {
    TempYaml file(ConfigToYaml(Config{}));
    auto r = LoadConfig(file.path(), {});
    REQUIRE(r.ok());
    CHECK(r->config == Config{});
    CHECK(r->ignored_keys.empty());
  }
  SECTION("every field changed, with awkward strings and doubles") {
    Config c;
    c.training_type = "cross_silo";
    c.random_seed = 18446744073709551615ull;
    c.dataset = "synthetic";
    c.data_cache_dir = "/tmp/dir with spaces/\"quoted\" #not-a-comment: x";
    c.partition_method = "shards";
    c.partition_alpha = 0.1;
    c.shards_per_client = 3;
    c.synthetic_alpha = 0.0;
    c.synthetic_beta = 1.0 / 3.0;
    c.synthetic_dimension = 7;
    c.model = "mlp";
    c.model_file_cache_folder = "yes";  // would read as a boolean unquoted
    c.federated_optimizer = "FedAvg";
    c.client_num_in_total = 12;
    c.client_num_per_round = 12;
    c.comm_round = 1;
    c.epochs = 4;
    c.batch_size = 1;
    c.client_optimizer = "adam";
    c.learning_rate = 1e-7;
    c.momentum = 0.999;
    c.weight_decay = 123456.789;
    c.frequency_of_the_test = 3;
    c.worker_num = 5;
    c.using_gpu = true;
    c.gpu_id = 2;
    c.device = "cuda:3";
    c.backend = "GRPC";
    c.round_timeout_s = 0.25;
    c.metrics_file = "m\tetrics\n.csv";
    c.checkpoint_dir = "~";  // not a path to expand: it is written quoted
    c.log_level = "debug";
    c.torch_threads = 4;

    const std::string yaml = ConfigToYaml(c);
    INFO(yaml);
    CHECK_THAT(yaml, Contains("train_args:\n") && Contains("  comm_round: 1\n"));
    TempYaml file(yaml);
    auto r = LoadConfig(file.path(), {});
    REQUIRE(r.ok());
    // "~" comes back as $HOME: paths get "~" expanded however they are written.
    if (const char* home = std::getenv("HOME"); home && *home) c.checkpoint_dir = home;
    CHECK(r->config == c);
  }
}

TEST_CASE("backend aliases normalise", "[config]") {
  CHECK(NormalizedBackend("sp") == "inproc");
  CHECK(NormalizedBackend("inproc") == "inproc");
  CHECK(NormalizedBackend("MPI") == "mpi");
  CHECK(NormalizedBackend("mpi") == "mpi");
  CHECK(NormalizedBackend("GRPC") == "grpc");
  CHECK(NormalizedBackend("grpc") == "grpc");
  auto r = Build({{"backend", "sp"}});
  REQUIRE(r.ok());
  CHECK(NormalizedBackend(r->backend) == "inproc");
}

TEST_CASE("a deployed server's push limits come from the config", "[config]") {
  auto c = Build(
      {{"push_idle_timeout_s", "0.5"}, {"push_timeout_s", "90"}, {"max_queued_updates", "2"}});
  REQUIRE(c.ok());
  const core::grpc_comm::ServerOptions o = GrpcServerOptionsFrom(*c);
  CHECK(o.push_idle_timeout == std::chrono::milliseconds(500));
  CHECK(o.push_timeout == std::chrono::milliseconds(90000));
  CHECK(o.max_queued_frames == 2);
  const core::grpc_comm::ServerOptions d = GrpcServerOptionsFrom(*Build({}));
  CHECK(d.push_idle_timeout == core::grpc_comm::ServerOptions{}.push_idle_timeout);
  CHECK(d.max_queued_frames == core::grpc_comm::ServerOptions{}.max_queued_frames);
  CHECK_THAT(BuildError({{"max_queued_updates", "0"}}),
             Contains("max_queued_updates must be >= 1"));
  CHECK_THAT(BuildError({{"push_idle_timeout_s", "0"}}),
             Contains("push_idle_timeout_s must be > 0"));
}

TEST_CASE("KnownKeys lists every key once, sorted, and no ignored key", "[config]") {
  const std::vector<std::string> keys = KnownKeys();
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  CHECK(std::adjacent_find(keys.begin(), keys.end()) == keys.end());
  CHECK(keys.size() == 107);
  for (const std::string& k : keys) {
    CAPTURE(k);
    CHECK(IsKnownKey(k));
    CHECK_FALSE(IsIgnoredKey(k));
  }
  CHECK_FALSE(IsKnownKey("comm_rounds"));
  CHECK_FALSE(IsKnownKey("using_mlops"));

  // Every known key appears in ConfigToYaml, so the YAML layout covers the whole table.
  const std::string yaml = ConfigToYaml(Config{});
  for (const std::string& k : keys) {
    CAPTURE(k);
    CHECK_THAT(yaml, Contains("  " + k + ": "));
  }
}

}  // namespace
}  // namespace fedml::api
