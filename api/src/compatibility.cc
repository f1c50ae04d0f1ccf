#include "fedml/api/compatibility.h"

#include "fedml/algorithms/registry.h"
#include "fedml/core/text.h"

namespace fedml::api {

namespace {

// Secure aggregation reveals only a round's sum: what it cannot stand in for (the last reason
// that applies is the one named).
std::string SecureConflict(const RunFeatures& f) {
  std::string what;
  if (!f.linear) what = f.strategy + " (not linear)";
  if (f.asynchronous) what = f.strategy + " (asynchronous: no rounds to sum)";
  if (f.strategy == "SCAFFOLD") what = "SCAFFOLD (its control variates travel in the clear)";
  if (f.strategy == "FedNova") what = "FedNova (it normalises each update on its own)";
  if (!f.defense.empty()) what = "defense_type " + f.defense + " (it must see each update)";
  if (f.dp == "cdp") {
    what = "central DP (it clips each update on the server; use dp_solution_type ldp)";
  }
  return what;
}

// Verified work replays committed segments of plain local SGD in synchronous rounds: what it
// cannot replay or settle (the last reason that applies is the one named).
std::string VerificationConflict(const RunFeatures& f) {
  std::string what;
  if (f.client_optimizer != "sgd" || f.client_momentum != 0.0) {
    what = "client_optimizer " + f.client_optimizer + " with momentum " +
           std::to_string(f.client_momentum) + " (its state at a checkpoint is not committed)";
  }
  if (f.strategy == "FedProx" || f.strategy == "SCAFFOLD") {
    what = f.strategy + " (its local objective has state)";
  }
  if (f.asynchronous) what = f.strategy + " (verification settles updates at the end of a round)";
  if (!f.secure.empty())
    what = "secure_aggregation " + f.secure + " (the server never sees an update)";
  if (f.dp == "ldp") what = "local DP (its noise is added after the committed trajectory ends)";
  return what;
}

// An aggregation tier forwards one sample-weighted mean per subtree: what needs more than that
// from each client, or rounds (the last reason that applies is the one named).
std::string TierConflict(const RunFeatures& f) {
  std::string what;
  if (!f.linear) what = f.strategy + " (not linear)";
  if (f.asynchronous) what = f.strategy + " (asynchronous: no rounds to sum per subtree)";
  if (f.strategy == "SCAFFOLD") what = "SCAFFOLD (its control variates are per client)";
  if (f.strategy == "FedNova") what = "FedNova (it normalises each update on its own)";
  if (!f.defense.empty()) what = "defense_type " + f.defense + " (it must see each update)";
  if (f.dp == "cdp") what = "central DP (it clips each update on the server)";
  if (f.verification) what = "verification (the server must see each update to check it)";
  if (f.over_selection > 1.0) what = "over_selection (rounds close at the aggregators' replies)";
  return what;
}

}  // namespace

Status CheckCompatible(const RunFeatures& f) {
  const std::string& opt = f.strategy;
  const bool defense = !f.defense.empty();
  const bool cdp = f.dp == "cdp";
  if (defense && (opt == "SCAFFOLD" || opt == "FedNova")) {
    return Status::InvalidArgument(
        "defense_type " + f.defense + " cannot replace " + opt +
        "'s own averaging; defenses combine with FedAvg, FedProx and the FedOpt family");
  }
  if (cdp && (defense || opt == "SCAFFOLD" || opt == "FedNova")) {
    return Status::InvalidArgument(
        "central DP (dp_solution_type cdp) clips and averages on the server, which " +
        (defense ? "defense_type " + f.defense : opt) +
        " would replace; combine cdp with FedAvg, FedProx or the FedOpt family, or use ldp");
  }
  if (opt == "FedAsync" && (defense || cdp)) {
    return Status::InvalidArgument(
        "FedAsync mixes one update at a time, so " +
        std::string(defense ? "a defense" : "central DP") +
        " has nothing to combine; use FedBuff (which buffers buffer_size updates) for defenses");
  }
  if (f.asynchronous && cdp) {
    return Status::InvalidArgument(
        "central DP's accountant assumes rounds of sampled clients, which " + opt +
        " does not have; use dp_solution_type ldp");
  }
  if (opt == "FedAsync" && f.server_optimizer != "sgd") {
    return Status::InvalidArgument("FedAsync's mixing is its own server step; server_optimizer " +
                                   f.server_optimizer + " combines with FedBuff instead");
  }
  if (!f.secure.empty()) {
    const std::string what = SecureConflict(f);
    if (!what.empty()) {
      return Status::InvalidArgument(
          "secure_aggregation " + f.secure +
          " reveals only the sum of a round's updates and so needs a linear aggregator: it "
          "combines with linear aggregation (" +
          core::Join(algorithms::LinearStrategyNames(), ", ") + "), not with " + what);
    }
  }
  if (f.verification) {
    const std::string what = VerificationConflict(f);
    if (!what.empty()) {
      return Status::InvalidArgument(
          "verification replays committed segments of plain local SGD (client_optimizer sgd, "
          "momentum 0) in synchronous rounds; it does not combine with " +
          what);
    }
  }
  if (f.over_selection > 1.0 && f.asynchronous) {
    return Status::InvalidArgument(
        "over_selection closes a synchronous round when client_num_per_round updates are in; " +
        opt + " has no rounds to close (it takes updates as they come); leave over_selection at 1");
  }
  if (f.tier) {
    const std::string what = TierConflict(f);
    if (!what.empty()) {
      return Status::InvalidArgument(
          "aggregator_num > 0 (an aggregation tier) forwards one sample-weighted mean per "
          "aggregator each round and so needs a linear aggregator in synchronous rounds (" +
          core::Join(algorithms::LinearStrategyNames(), ", ") + "); it does not combine with " +
          what);
    }
  }
  if (opt == "SCAFFOLD" && f.client_optimizer != "sgd") {
    return Status::InvalidArgument(
        "SCAFFOLD's control variates assume local SGD; client_optimizer is '" + f.client_optimizer +
        "'");
  }
  return Status::Ok();
}

}  // namespace fedml::api
