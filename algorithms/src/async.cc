#include "fedml/algorithms/async.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>

namespace fedml::algorithms {
namespace {

Status OutOfRange(const std::string& what, double value, const std::string& allowed) {
  return Status::InvalidArgument(what + " is " + std::to_string(value) + "; allowed: " + allowed);
}

std::string ClientName(const ClientUpdate& u) {
  return "update from client " + std::to_string(u.client_id);
}

}  // namespace

std::vector<std::string> StalenessFunctionNames() { return {"constant", "polynomial", "hinge"}; }

Status ValidateStaleness(const StalenessOptions& o) {
  bool known = false;
  std::string names;
  for (const std::string& n : StalenessFunctionNames()) {
    known = known || n == o.function;
    names += (names.empty() ? "" : ", ") + n;
  }
  if (!known) {
    return Status::InvalidArgument("unknown staleness_function '" + o.function +
                                   "'; allowed: " + names);
  }
  if (!std::isfinite(o.a)) return OutOfRange("staleness_a", o.a, "a finite number");
  if (!std::isfinite(o.b)) return OutOfRange("staleness_b", o.b, "a finite number");
  if (o.function == "polynomial" && !(o.a >= 0)) {
    return OutOfRange("staleness_a", o.a, ">= 0 for the polynomial staleness function");
  }
  if (o.function == "hinge") {
    if (!(o.a > 0)) return OutOfRange("staleness_a", o.a, "> 0 for the hinge staleness function");
    if (!(o.b >= 0)) {
      return OutOfRange("staleness_b", o.b, ">= 0 for the hinge staleness function");
    }
  }
  return Status::Ok();
}

double StalenessWeight(const StalenessOptions& o, std::int64_t staleness) {
  if (staleness < 0) return std::numeric_limits<double>::quiet_NaN();
  const double t = static_cast<double>(staleness);
  if (o.function == "constant") return 1.0;
  if (o.function == "polynomial") return std::pow(1.0 + t, -o.a);
  if (o.function == "hinge") return t <= o.b ? 1.0 : 1.0 / (o.a * (t - o.b) + 1.0);
  return std::numeric_limits<double>::quiet_NaN();
}

Result<std::int64_t> UpdateStaleness(const RoundInfo& info, const ClientUpdate& update) {
  const std::int64_t staleness = info.model_version - update.base_version;
  if (staleness < 0) {
    return Status::InvalidArgument(
        ClientName(update) + " has base_version " + std::to_string(update.base_version) +
        ", newer than the model version " + std::to_string(info.model_version) +
        " being aggregated (staleness " + std::to_string(staleness) +
        "); an update cannot be trained from a future model");
  }
  return staleness;
}

Status ValidateFedAsync(const FedAsyncOptions& o) {
  if (!(o.alpha > 0 && o.alpha <= 1)) return OutOfRange("async_alpha", o.alpha, "(0, 1]");
  return ValidateStaleness(o.staleness);
}

// ---------------------------------------------------------------------------------------------
// FedAsync

FedAsync::FedAsync(FedAsyncOptions options) : options_(std::move(options)) {}

Status FedAsync::Begin(const core::ModelState& global, const RoundInfo& info) {
  begun_ = false;
  accepted_ = false;
  client_ = core::ModelState();
  FEDML_RETURN_IF_ERROR(ValidateFedAsync(options_).WithContext("FedAsync"));
  if (global.empty()) return Status::InvalidArgument("FedAsync: the global model has no tensors");
  global_ = global;
  info_ = info;
  begun_ = true;
  return Status::Ok();
}

Status FedAsync::Accumulate(ClientUpdate update) {
  if (!begun_) {
    return Status::FailedPrecondition(
        "FedAsync: Accumulate called before Begin (or after Finalize); call Begin first");
  }
  if (accepted_) {
    return Status::FailedPrecondition(
        "FedAsync mixes one update per model version; call Begin first (version " +
        std::to_string(info_.model_version) + " already has an update; " + ClientName(update) +
        " refused)");
  }
  const std::string what = "FedAsync: " + ClientName(update);
  FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(update.state, what));
  if (update.num_samples <= 0) {
    return Status::InvalidArgument(what + " has num_samples " + std::to_string(update.num_samples) +
                                   "; the sample count must be > 0");
  }
  FEDML_ASSIGN_OR_RETURN(const std::int64_t staleness, UpdateStaleness(info_, update));
  FEDML_RETURN_IF_ERROR(update.state.CheckFinite().WithContext(what));
  staleness_ = staleness;
  mixing_weight_ = options_.alpha * StalenessWeight(options_.staleness, staleness);
  client_ = std::move(update.state);
  accepted_ = true;
  return Status::Ok();
}

Result<core::ModelState> FedAsync::Finalize() {
  if (!begun_) {
    return Status::FailedPrecondition("FedAsync: Finalize called before Begin (or twice)");
  }
  if (!accepted_) {
    return Status::FailedPrecondition("FedAsync: no update was accepted for model version " +
                                      std::to_string(info_.model_version));
  }
  const double a = mixing_weight_;
  float* x = global_.data();
  const float* c = client_.data();
  for (const core::TensorSpec& spec : global_.specs()) {
    const std::size_t begin = spec.offset;
    const std::size_t end = begin + spec.numel();
    if (!core::IsFloatingPoint(spec.dtype)) {  // integer buffers: the client's value
      std::copy(c + begin, c + end, x + begin);
      continue;
    }
    for (std::size_t i = begin; i < end; ++i) {
      x[i] =
          static_cast<float>((1.0 - a) * static_cast<double>(x[i]) + a * static_cast<double>(c[i]));
    }
  }
  figures_ = {{"async_mixing_weight", a},
              {"staleness_mean", static_cast<double>(staleness_)},
              {"staleness_max", static_cast<double>(staleness_)}};
  begun_ = false;
  accepted_ = false;
  client_ = core::ModelState();
  return std::move(global_);
}

std::map<std::string, double> FedAsync::RoundFigures() const { return figures_; }

// ---------------------------------------------------------------------------------------------
// StalenessWeighted

StalenessWeighted::StalenessWeighted(std::unique_ptr<Aggregator> inner, StalenessOptions options)
    : ForwardingAggregator(std::move(inner)), options_(std::move(options)) {}

std::string StalenessWeighted::name() const { return inner_->name() + "+staleness"; }

Status StalenessWeighted::Begin(const core::ModelState& global, const RoundInfo& info) {
  begun_ = false;
  FEDML_RETURN_IF_ERROR(ValidateStaleness(options_).WithContext(name()));
  FEDML_RETURN_IF_ERROR(inner_->Begin(global, info));
  global_ = global;
  info_ = info;
  staleness_.clear();
  begun_ = true;
  return Status::Ok();
}

Status StalenessWeighted::Accumulate(ClientUpdate update) {
  if (!begun_) {
    return Status::FailedPrecondition(name() +
                                      ": Accumulate called before Begin (or after Finalize)");
  }
  const std::string what = name() + ": " + ClientName(update);
  FEDML_ASSIGN_OR_RETURN(const std::int64_t staleness, UpdateStaleness(info_, update));
  FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(update.state, what));
  if (staleness > 0 && !update.base) {
    return Status::InvalidArgument(
        what + ": an update trained from model version " + std::to_string(update.base_version) +
        " (staleness " + std::to_string(staleness) + ") needs its base model (ClientUpdate::base)");
  }
  if (update.base) {
    FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(*update.base, what + ": its base model"));
  }
  FEDML_RETURN_IF_ERROR(update.state.CheckFinite().WithContext(what));
  // s(0) = 1, and a staleness-0 base is Begin's global: x + (x_i - x) is x_i up to rounding, so
  // such an update goes on as it came (which keeps the inner's result bit for bit).
  const bool untouched = staleness == 0 && (!update.base || update.base->flat() == global_.flat());
  if (!untouched) {
    // Rebase in place: x_i <- x + s (x_i - b_i) on floating-point tensors; integer buffers keep
    // the client's value. With x_i finite, a non-finite output means a NaN or Inf in the base
    // (or in the global model), or an overflow.
    const double s = StalenessWeight(options_, staleness);
    const float* x = global_.data();
    const float* b = update.base->data();
    float* xi = update.state.data();
    bool finite = true;
    for (const core::TensorSpec& spec : global_.specs()) {
      if (!core::IsFloatingPoint(spec.dtype)) continue;
      const std::size_t end = spec.offset + spec.numel();
      for (std::size_t i = spec.offset; i < end; ++i) {
        const double d = static_cast<double>(xi[i]) - static_cast<double>(b[i]);
        xi[i] = static_cast<float>(static_cast<double>(x[i]) + s * d);
        finite = finite && std::isfinite(xi[i]);
      }
    }
    if (!finite) {
      const Status base_finite = update.base->CheckFinite();
      return Status::InvalidArgument(
          what + ": rebasing onto the global model gave a NaN or Inf (" +
          (base_finite.ok() ? std::string("overflow, or a NaN or Inf in the global model")
                            : "its base model: " + base_finite.message()) +
          ")");
    }
  }
  FEDML_RETURN_IF_ERROR(inner_->Accumulate(std::move(update)));
  staleness_.push_back(staleness);
  return Status::Ok();
}

Result<core::ModelState> StalenessWeighted::Finalize() {
  FEDML_ASSIGN_OR_RETURN(core::ModelState result, inner_->Finalize());
  double sum = 0.0;
  std::int64_t max = 0;
  for (const std::int64_t t : staleness_) {
    sum += static_cast<double>(t);
    max = std::max(max, t);
  }
  last_mean_ = staleness_.empty() ? 0.0 : sum / static_cast<double>(staleness_.size());
  last_max_ = static_cast<double>(max);
  finalized_ = true;
  staleness_.clear();
  begun_ = false;
  return result;
}

std::map<std::string, double> StalenessWeighted::RoundFigures() const {
  std::map<std::string, double> figures = inner_->RoundFigures();
  if (finalized_) {
    figures["staleness_mean"] = last_mean_;
    figures["staleness_max"] = last_max_;
  }
  return figures;
}

}  // namespace fedml::algorithms
