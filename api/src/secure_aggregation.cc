#include "fedml/api/secure_aggregation.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fedml/api/config.h"
#include "fedml/core/random.h"

namespace fedml::api {

namespace {

// Domain tags for DeriveSeed, so these draws never coincide with other draws of the run.
constexpr std::uint64_t kGraphTag = 0x7365636772617068ULL;  // "secgraph"
constexpr std::uint64_t kDropTag = 0x73656364726f70ULL;     // "secdrop"

std::string DoubleText(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.17g", v);  // reads back exactly
  return text;
}

}  // namespace

const std::vector<std::string>& SecureDropoutStageNames() {
  static const std::vector<std::string> names = {"advertise_keys", "share_keys", "mask_input"};
  return names;
}

Result<SecureTask> SecureTaskForRound(const SecureAggregationOptions& options, int n,
                                      std::size_t model_numel, std::uint64_t seed,
                                      std::int64_t round) {
  const bool plus = options.protocol == "secagg_plus";
  if (!plus && options.protocol != "secagg") {
    return Status::InvalidArgument("secure_aggregation must be secagg or secagg_plus, got '" +
                                   options.protocol + "'");
  }
  if (n < 2) {
    return Status::FailedPrecondition(
        "secure aggregation needs at least 2 clients in a round (a sum of one is that client's "
        "update), got " +
        std::to_string(n));
  }
  if (!plus && options.num_shares != 0) {
    return Status::InvalidArgument(
        "num_shares applies to secagg_plus only (secagg shares with every client), got " +
        std::to_string(options.num_shares));
  }
  if (plus && options.num_shares != 0 && options.num_shares < 2) {
    return Status::InvalidArgument("num_shares must be 0 (automatic) or >= 2, got " +
                                   std::to_string(options.num_shares));
  }
  int m = n;  // the neighbourhood, the client included
  if (plus) {
    if (options.num_shares > 0) {
      m = options.num_shares;
    } else {
      m = 2 * static_cast<int>(std::ceil(std::log2(static_cast<double>(n)))) + 1;
    }
    m = std::min(m, n);
    // No k-regular graph has odd k and an odd number of vertices; k + 1 <= n - 1 then holds.
    if ((m - 1) % 2 == 1 && n % 2 == 1) ++m;
  }
  const double rt = options.reconstruction_threshold;
  if (!std::isfinite(rt) || rt < 0.0 || (rt >= 1.0 && rt != std::floor(rt))) {
    return Status::InvalidArgument(
        "reconstruction_threshold must be 0 (a majority), a fraction in (0, 1) or a whole number "
        ">= 1, got " +
        DoubleText(rt));
  }
  int t = 0;
  if (rt == 0.0) {
    t = m / 2 + 1;
  } else if (rt < 1.0) {
    t = std::max(1, static_cast<int>(std::ceil(rt * m - 1e-9)));
  } else {
    t = static_cast<int>(std::min(rt, 1e9));
  }
  if (t > m) {
    return Status::FailedPrecondition(
        "reconstruction_threshold " + std::to_string(t) + " exceeds the " + std::to_string(m) +
        " clients of a neighbourhood in a round of " + std::to_string(n) + " clients");
  }
  FEDML_RETURN_IF_ERROR(core::security::ValidateQuantization(options.quantization, n));
  if (!(options.max_weight > 0.0) || !std::isfinite(options.max_weight)) {
    return Status::InvalidArgument("max_weight must be finite and > 0, got " +
                                   DoubleText(options.max_weight));
  }
  SecureTask task;
  task.params.num_clients = n;
  task.params.threshold = t;
  task.params.num_neighbours = plus ? m - 1 : 0;
  task.params.modulus = options.quantization.modulus;
  task.params.vector_length = model_numel + 2;
  task.params.graph_seed = core::DeriveSeed(seed, {kGraphTag, static_cast<std::uint64_t>(round)});
  task.quantization = options.quantization;
  task.max_weight = options.max_weight;
  task.round_id = static_cast<std::uint64_t>(round) + 1;
  task.signed_round = !options.signing_ca_pem.empty();
  FEDML_RETURN_IF_ERROR(algorithms::ValidateSecAggParams(task.params));
  return task;
}

void PutSecureTaskAttrs(const SecureTask& task, std::map<std::string, std::string>& attrs) {
  const algorithms::SecAggParams& p = task.params;
  attrs["secagg.n"] = std::to_string(p.num_clients);
  attrs["secagg.t"] = std::to_string(p.threshold);
  attrs["secagg.k"] = std::to_string(p.num_neighbours);
  attrs["secagg.modulus"] = std::to_string(p.modulus);
  attrs["secagg.length"] = std::to_string(p.vector_length);
  attrs["secagg.graph_seed"] = std::to_string(p.graph_seed);
  attrs["secagg.round_id"] = std::to_string(task.round_id);
  attrs["secagg.clip"] = DoubleText(task.quantization.clipping_range);
  attrs["secagg.qrange"] = std::to_string(task.quantization.quantization_range);
  attrs["secagg.max_weight"] = DoubleText(task.max_weight);
  attrs["secagg.index"] = std::to_string(task.index);
  if (task.signed_round) attrs["secagg.signed"] = "1";
}

bool HasSecureTaskAttrs(const std::map<std::string, std::string>& attrs) {
  return attrs.count("secagg.n") > 0;
}

Status CheckSecureTaskLimits(const SecureTask& task, const SecureClientLimits& limits) {
  const algorithms::SecAggParams& p = task.params;
  const int n = p.num_clients;
  const int k = p.num_neighbours;
  const int t = p.threshold;
  auto refuse = [](const std::string& why) {
    return Status::PermissionDenied("refusing a secure round: " + why);
  };
  if (n < limits.min_clients) {
    return refuse(
        "it has " + std::to_string(n) +
        " participants, fewer than secagg_min_clients = " + std::to_string(limits.min_clients) +
        " (the sum of so few inputs, with peers the server may simulate, gives one away)");
  }
  const int hood = k == 0 ? n : k + 1;
  if (2 * t <= hood) {
    return refuse("its threshold " + std::to_string(t) + " is not more than half of the " +
                  std::to_string(hood) +
                  " clients that hold each secret's shares (a server that told one half a client "
                  "dropped and the other half it survived would get both of its secrets)");
  }
  if (k != 0) {
    int floor = limits.min_neighbours;
    if (floor <= 0) {
      floor = 0;
      while ((1LL << floor) < n) ++floor;  // ceil(log2 n)
    }
    floor = std::min(floor, n - 1);
    if (k < floor) {
      return refuse("SecAgg+ degree k = " + std::to_string(k) + " is below " +
                    std::to_string(floor) + " for " + std::to_string(n) +
                    " participants (secagg_min_neighbours; a few neighbours are all a server "
                    "needs to simulate)");
    }
  }
  return Status::Ok();
}

Result<SecureTask> SecureTaskFromAttrs(const std::map<std::string, std::string>& attrs) {
  auto text = [&](const char* key) -> Result<std::string> {
    const auto it = attrs.find(key);
    if (it == attrs.end() || it->second.empty()) {
      return Status::InvalidArgument(std::string("secure aggregation task without ") + key);
    }
    return it->second;
  };
  auto unsigned_value = [&](const char* key) -> Result<std::uint64_t> {
    FEDML_ASSIGN_OR_RETURN(std::string v, text(key));
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v[0] == '-' || *end != '\0' || errno != 0) {
      return Status::InvalidArgument(std::string("secure aggregation task: ") + key +
                                     " is not an unsigned integer: '" + v + "'");
    }
    return static_cast<std::uint64_t>(x);
  };
  auto int_value = [&](const char* key) -> Result<int> {
    FEDML_ASSIGN_OR_RETURN(std::uint64_t v, unsigned_value(key));
    if (v > static_cast<std::uint64_t>(INT32_MAX)) {
      return Status::InvalidArgument(std::string("secure aggregation task: ") + key +
                                     " is out of range: " + std::to_string(v));
    }
    return static_cast<int>(v);
  };
  auto double_value = [&](const char* key) -> Result<double> {
    FEDML_ASSIGN_OR_RETURN(std::string v, text(key));
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (*end != '\0' || !std::isfinite(x)) {
      return Status::InvalidArgument(std::string("secure aggregation task: ") + key +
                                     " is not a finite number: '" + v + "'");
    }
    return x;
  };
  SecureTask task;
  FEDML_ASSIGN_OR_RETURN(task.params.num_clients, int_value("secagg.n"));
  FEDML_ASSIGN_OR_RETURN(task.params.threshold, int_value("secagg.t"));
  FEDML_ASSIGN_OR_RETURN(task.params.num_neighbours, int_value("secagg.k"));
  FEDML_ASSIGN_OR_RETURN(task.params.modulus, unsigned_value("secagg.modulus"));
  FEDML_ASSIGN_OR_RETURN(std::uint64_t length, unsigned_value("secagg.length"));
  task.params.vector_length = static_cast<std::size_t>(length);
  FEDML_ASSIGN_OR_RETURN(task.params.graph_seed, unsigned_value("secagg.graph_seed"));
  FEDML_ASSIGN_OR_RETURN(task.round_id, unsigned_value("secagg.round_id"));
  FEDML_ASSIGN_OR_RETURN(task.quantization.clipping_range, double_value("secagg.clip"));
  FEDML_ASSIGN_OR_RETURN(task.quantization.quantization_range, unsigned_value("secagg.qrange"));
  task.quantization.modulus = task.params.modulus;
  FEDML_ASSIGN_OR_RETURN(task.max_weight, double_value("secagg.max_weight"));
  FEDML_ASSIGN_OR_RETURN(task.index, int_value("secagg.index"));
  const auto signed_round = attrs.find("secagg.signed");
  if (signed_round != attrs.end()) {
    if (signed_round->second != "1") {
      return Status::InvalidArgument("secure aggregation task: secagg.signed is not '1': '" +
                                     signed_round->second + "'");
    }
    task.signed_round = true;
  }
  FEDML_RETURN_IF_ERROR(algorithms::ValidateSecAggParams(task.params));
  FEDML_RETURN_IF_ERROR(
      core::security::ValidateQuantization(task.quantization, task.params.num_clients));
  if (task.index >= task.params.num_clients) {
    return Status::InvalidArgument("secure aggregation task: participant " +
                                   std::to_string(task.index) + " of " +
                                   std::to_string(task.params.num_clients));
  }
  if (!(task.max_weight > 0.0)) {
    return Status::InvalidArgument("secure aggregation task: max_weight must be > 0");
  }
  return task;
}

Result<SecureInputVector> SecureInput(const core::ModelState& trained,
                                      const core::ModelState& global, std::int64_t num_samples,
                                      const SecureTask& task, std::uint64_t rounding_seed) {
  FEDML_RETURN_IF_ERROR(trained.CheckSameLayout(global, "the trained model"));
  if (num_samples <= 0) {
    return Status::InvalidArgument("a client's sample count must be > 0, got " +
                                   std::to_string(num_samples));
  }
  const std::size_t numel = global.numel();
  if (numel + 2 != task.params.vector_length) {
    return Status::InvalidArgument(
        "the model has " + std::to_string(numel) + " values but the round's vectors hold " +
        std::to_string(task.params.vector_length) + " words (weight, values, clipped fraction)");
  }
  const double w = std::min(static_cast<double>(num_samples) / task.max_weight, 1.0);
  const double clip = task.quantization.clipping_range;
  std::vector<float> values(numel + 2);
  values[0] = static_cast<float>(w);
  SecureInputVector out;
  const float* x = trained.data();
  const float* g = global.data();
  for (std::size_t i = 0; i < numel; ++i) {
    const double v = w * (static_cast<double>(x[i]) - static_cast<double>(g[i]));
    if (std::fabs(v) > clip) ++out.clipped;
    values[i + 1] = static_cast<float>(v);
  }
  // The fraction clipped goes into the sum, scaled into the clipping range, so the server learns
  // the survivors' total, not each client's (which says how large its update was).
  values[numel + 1] = numel == 0 ? 0.0F
                                 : static_cast<float>(clip * static_cast<double>(out.clipped) /
                                                      static_cast<double>(numel));
  out.words.resize(numel + 2);
  FEDML_RETURN_IF_ERROR(core::security::Quantize(values.data(), values.size(), task.quantization,
                                                 rounding_seed, out.words.data()));
  return out;
}

Result<SecureMean> SecureMeanFromSum(const std::vector<std::uint32_t>& sum, int num_summands,
                                     const core::ModelState& global, const SecureTask& task) {
  if (sum.size() != global.numel() + 2) {
    return Status::InvalidArgument("the secure sum has " + std::to_string(sum.size()) +
                                   " words; the model needs " + std::to_string(global.numel() + 2));
  }
  std::vector<float> values(sum.size());
  FEDML_RETURN_IF_ERROR(core::security::DequantizeSum(sum.data(), sum.size(), num_summands,
                                                      task.quantization, values.data()));
  SecureMean mean;
  mean.weight_sum = values[0];
  if (!(mean.weight_sum > 0.0)) {
    return Status::FailedPrecondition("the survivors' weights sum to " +
                                      DoubleText(mean.weight_sum) + "; nothing to average");
  }
  mean.model = global;
  float* m = mean.model.data();
  for (std::size_t i = 0; i < global.numel(); ++i) {
    m[i] = static_cast<float>(static_cast<double>(m[i]) +
                              static_cast<double>(values[i + 1]) / mean.weight_sum);
  }
  mean.samples = std::max<std::int64_t>(1, std::llround(mean.weight_sum * task.max_weight));
  const double clipped = static_cast<double>(values[global.numel() + 1]) /
                         task.quantization.clipping_range / static_cast<double>(num_summands);
  mean.clipped_fraction = std::min(1.0, std::max(0.0, clipped));
  return mean;
}

std::vector<int> SimulatedDropouts(std::uint64_t seed, std::int64_t round, int n, double rate) {
  if (n <= 0 || !(rate > 0.0)) return {};
  const auto count = std::min<std::int64_t>(n, std::llround(std::min(rate, 1.0) * n));
  core::Rng rng(core::DeriveSeed(seed, {kDropTag, static_cast<std::uint64_t>(round)}));
  std::vector<int> out;
  for (std::int64_t i : rng.SampleWithoutReplacement(n, count)) out.push_back(static_cast<int>(i));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace fedml::api
