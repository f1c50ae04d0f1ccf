// The fit stage of a server whose ranks are aggregators (ServerOptions::aggregators): every
// connected aggregator is sent the round's whole sample with the model, and answers with one
// sample-weighted mean of the sampled clients it serves, naming them (its contributors) and each
// one's sample count. Since a mean of subtree means weighted by their sample totals is the mean
// of all the updates, the round's model is the flat run's (up to float32 rounding of each
// partial). What the top server checks of a partial, as it checks a client's update: its
// contributors were sampled this round, appear in no other partial, each claims a sample count
// the server allows (CheckClaim), and the counts add up to the partial's weight; the model's
// layout and finiteness are the aggregator's (Accumulate) and the decoder's checks. With secure
// aggregation each aggregator runs it with its own clients and forwards the secure mean; the
// server then checks the weight against the number of contributors (kTierSecureAttr).
//
// Threat model: an aggregator sees its clients' updates in the clear and is trusted like the
// server for their privacy and for the mean it forwards (a lying aggregator can bias its
// subtree's mean within what the checks above allow); it cannot claim clients it was not sent,
// clients another aggregator reported, or more samples than the server allows per client.
//
// Contract: internal; runs on the controller's thread over the context's pool.
#pragma once

#include <set>
#include <vector>

#include "server/sync_rounds.h"

namespace fedml::api::server {

/// The attribute of a partial that lists its contributors' sample counts, comma-separated, in
/// the order of Message::client_ids.
inline constexpr const char* kTierSamplesAttr = "tier_samples";
/// The attribute ("1") of a partial that is its subtree's secure aggregate (the aggregator ran
/// secure aggregation with its clients and knows only their sum): no per-client counts, and a
/// weight of round(sum of min(samples / max_weight, 1)) x max_weight, so between the number of
/// contributors and that number x max_weight.
inline constexpr const char* kTierSecureAttr = "tier_secure";

class TierFit final : public FitStage {
 public:
  explicit TierFit(ServerContext& ctx) : ctx_(ctx) {}
  /// One partial per aggregator, whatever the sample's size.
  int Summands(int) const override { return ctx_.options.aggregators; }
  Status Run(std::int64_t round, const std::vector<std::int64_t>& sampled, core::ModelState& global,
             RoundMetrics& metrics) override;

 private:
  /// Checks one partial against what this server knows (`selected`: the round's sample; `taken`:
  /// the contributors of the partials accepted before it): the contributors' sample counts (0s
  /// for a secure partial), or why it is refused.
  Result<std::vector<std::int64_t>> CheckPartial(const core::Message& msg,
                                                 const std::set<std::int64_t>& selected,
                                                 const std::set<std::int64_t>& taken) const;

  ServerContext& ctx_;
};

}  // namespace fedml::api::server
