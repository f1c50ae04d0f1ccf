#include "fedml/algorithms/server_optimizer.h"

#include <cmath>
#include <utility>

namespace fedml::algorithms {
namespace {

Status OutOfRange(const std::string& what, double value, const std::string& allowed) {
  return Status::InvalidArgument(what + " is " + std::to_string(value) + "; allowed: " + allowed);
}

}  // namespace

std::vector<std::string> ServerOptimizerNames() { return {"sgd", "adagrad", "adam", "yogi"}; }

Status ValidateServerOptimizer(const ServerOptimizerOptions& o) {
  bool known = false;
  std::string names;
  for (const std::string& n : ServerOptimizerNames()) {
    known = known || n == o.type;
    names += (names.empty() ? "" : ", ") + n;
  }
  if (!known) {
    return Status::InvalidArgument("unknown server_optimizer '" + o.type + "'; allowed: " + names);
  }
  if (!(o.lr > 0) || !std::isfinite(o.lr)) return OutOfRange("server_lr", o.lr, "> 0");
  if (!(o.momentum >= 0 && o.momentum < 1)) {
    return OutOfRange("server_momentum", o.momentum, "[0, 1)");
  }
  if (o.momentum != 0 && o.type != "sgd") {
    return Status::InvalidArgument("server_momentum applies to server_optimizer sgd (FedAvgM); " +
                                   o.type + " has its own moments (beta1, beta2)");
  }
  if (!(o.beta1 >= 0 && o.beta1 < 1)) return OutOfRange("beta1", o.beta1, "[0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) return OutOfRange("beta2", o.beta2, "[0, 1)");
  if (!(o.tau > 0) || !std::isfinite(o.tau)) return OutOfRange("tau", o.tau, "> 0");
  return Status::Ok();
}

ServerOptimizer::ServerOptimizer(std::unique_ptr<Aggregator> inner, ServerOptimizerOptions options)
    : ForwardingAggregator(std::move(inner)),
      options_(std::move(options)),
      kind_(options_.type == "sgd"       ? Kind::kSgd
            : options_.type == "adagrad" ? Kind::kAdagrad
            : options_.type == "adam"    ? Kind::kAdam
                                         : Kind::kYogi) {}

std::string ServerOptimizer::name() const {
  const std::string& t = options_.type;
  const std::string opt = t == "sgd"       ? (options_.momentum > 0 ? "FedAvgM" : "ServerSGD")
                          : t == "adagrad" ? "FedAdagrad"
                          : t == "adam"    ? "FedAdam"
                                           : "FedYogi";
  return opt + "(" + inner_->name() + ")";
}

Status ServerOptimizer::Begin(const core::ModelState& global, const RoundInfo& info) {
  FEDML_RETURN_IF_ERROR(inner_->Begin(global, info));
  global_ = global;
  if (m_.size() != global.numel()) {  // first round, or another model: fresh moments
    m_.assign(global.numel(), 0.0f);
    const bool adaptive = options_.type != "sgd";
    v_.assign(adaptive ? global.numel() : 0, static_cast<float>(options_.tau * options_.tau));
  }
  return Status::Ok();
}

Result<core::ModelState> ServerOptimizer::Finalize() {
  FEDML_ASSIGN_OR_RETURN(core::ModelState aggregate, inner_->Finalize());
  FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(aggregate, name() + ": the inner aggregate"));
  const double lr = options_.lr;
  const double b1 = options_.beta1;
  const double b2 = options_.beta2;
  const double tau = options_.tau;
  const Kind kind = kind_;
  double step_sq = 0.0;
  for (const core::TensorSpec& spec : global_.specs()) {
    if (!core::IsFloatingPoint(spec.dtype)) continue;  // integer buffers keep the inner's value
    const std::size_t begin = spec.offset;
    const std::size_t end = begin + spec.numel();
    float* out = aggregate.data();
    const float* x = global_.data();
    for (std::size_t i = begin; i < end; ++i) {
      const double delta = static_cast<double>(out[i]) - static_cast<double>(x[i]);
      double step;
      if (kind == Kind::kSgd) {
        const double v = options_.momentum * static_cast<double>(m_[i]) + delta;
        m_[i] = static_cast<float>(v);
        step = lr * v;
      } else {
        const double m = b1 * static_cast<double>(m_[i]) + (1 - b1) * delta;
        double v = static_cast<double>(v_[i]);
        const double d2 = delta * delta;
        if (kind == Kind::kAdagrad) {
          v += d2;
        } else if (kind == Kind::kAdam) {
          v = b2 * v + (1 - b2) * d2;
        } else {  // yogi: v moves towards delta^2 by at most (1 - b2) delta^2
          v -= (1 - b2) * d2 * (v > d2 ? 1.0 : (v < d2 ? -1.0 : 0.0));
        }
        m_[i] = static_cast<float>(m);
        v_[i] = static_cast<float>(v);
        step = lr * m / (std::sqrt(v) + tau);
      }
      out[i] = static_cast<float>(static_cast<double>(x[i]) + step);
      step_sq += step * step;
    }
  }
  last_step_norm_ = std::sqrt(step_sq);
  return aggregate;
}

std::map<std::string, double> ServerOptimizer::RoundFigures() const {
  std::map<std::string, double> figures = inner_->RoundFigures();
  figures["server_step_norm"] = last_step_norm_;
  return figures;
}

std::map<std::string, core::ModelState> ServerOptimizer::SaveState() const {
  std::map<std::string, core::ModelState> state = inner_->SaveState();
  if (global_.empty() || m_.size() != global_.numel()) return state;  // no round yet
  core::ModelState m = core::ModelState::ZerosLike(global_);
  m.flat() = m_;
  state["server_opt_m"] = std::move(m);
  if (!v_.empty()) {
    core::ModelState v = core::ModelState::ZerosLike(global_);
    v.flat() = v_;
    state["server_opt_v"] = std::move(v);
  }
  return state;
}

Status ServerOptimizer::RestoreState(const std::map<std::string, core::ModelState>& state) {
  FEDML_RETURN_IF_ERROR(inner_->RestoreState(state));
  const auto m = state.find("server_opt_m");
  if (m == state.end()) return Status::Ok();
  const bool adaptive = options_.type != "sgd";
  const auto v = state.find("server_opt_v");
  if (adaptive != (v != state.end()) || (adaptive && v->second.numel() != m->second.numel())) {
    return Status::InvalidArgument(name() + ": the checkpoint's server optimizer state is not " +
                                   options_.type + "'s (was server_optimizer changed?)");
  }
  // Begin keeps moments whose size fits the global model it is given.
  m_ = m->second.flat();
  v_ = adaptive ? v->second.flat() : std::vector<float>();
  return Status::Ok();
}

}  // namespace fedml::algorithms
