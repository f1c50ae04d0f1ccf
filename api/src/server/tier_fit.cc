#include "server/tier_fit.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "fedml/core/log.h"
#include "fedml/core/text.h"

namespace fedml::api::server {

using core::Message;
using core::MessageType;

namespace {

// The per-contributor sample counts of a partial (kTierSamplesAttr), one per contributor.
Result<std::vector<std::int64_t>> ContributorSamples(const Message& partial) {
  const auto it = partial.attrs.find(kTierSamplesAttr);
  const std::vector<std::string> fields =
      it == partial.attrs.end() ? std::vector<std::string>() : core::SplitTrimmed(it->second, ',');
  if (fields.size() != partial.client_ids.size()) {
    return Status::InvalidArgument("it names " + std::to_string(partial.client_ids.size()) +
                                   " contributors but gives " + std::to_string(fields.size()) +
                                   " sample counts (" + kTierSamplesAttr + ")");
  }
  std::vector<std::int64_t> samples;
  for (const std::string& f : fields) {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), n);
    if (ec != std::errc() || end != f.data() + f.size()) {
      return Status::InvalidArgument("sample count '" + f + "' is not an integer");
    }
    samples.push_back(n);
  }
  return samples;
}

}  // namespace

Result<std::vector<std::int64_t>> TierFit::CheckPartial(const Message& msg,
                                                        const std::set<std::int64_t>& selected,
                                                        const std::set<std::int64_t>& taken) const {
  if (msg.type == MessageType::kInvalid) {
    const auto error = msg.attrs.find("error");
    return Status::InvalidArgument(error == msg.attrs.end() ? "refused" : error->second);
  }
  const bool secure_partial = msg.attrs.count(kTierSecureAttr) > 0;
  if (secure_partial != ctx_.options.secure.enabled()) {
    return Status::InvalidArgument(
        secure_partial ? "it is a secure aggregate, and this run has no secure aggregation"
                       : "this run aggregates securely in each subtree, and it is not a secure "
                         "aggregate");
  }
  std::vector<std::int64_t> samples;
  if (!secure_partial) {
    FEDML_ASSIGN_OR_RETURN(samples, ContributorSamples(msg));
  }
  std::int64_t total = 0;
  std::set<std::int64_t> mine;
  for (std::size_t i = 0; i < msg.client_ids.size(); ++i) {
    const std::int64_t client = msg.client_ids[i];
    if (!selected.count(client)) {
      return Status::InvalidArgument("it names client " + std::to_string(client) +
                                     ", which this round did not sample");
    }
    if (taken.count(client) || !mine.insert(client).second) {
      return Status::InvalidArgument("it names client " + std::to_string(client) +
                                     ", whose update is already in this round");
    }
    if (secure_partial) continue;  // its clients' counts are theirs to keep
    FEDML_RETURN_IF_ERROR(ctx_.CheckClaim(client, samples[i])
                              .WithContext("client " + std::to_string(client) + "'s update"));
    total += samples[i];
  }
  if (secure_partial) {
    // Each client's weight is min(samples / max_weight, 1), at least 1 / max_weight.
    const auto n = static_cast<double>(msg.client_ids.size());
    const double most = n * ctx_.options.secure.max_weight;
    if (static_cast<double>(msg.num_samples) < n || static_cast<double>(msg.num_samples) > most) {
      return Status::InvalidArgument(
          "its weight " + std::to_string(msg.num_samples) + " is outside what " +
          std::to_string(msg.client_ids.size()) + " clients can have in a secure round: [" +
          std::to_string(msg.client_ids.size()) + ", " + std::to_string(most) + "] (max_weight)");
    }
    return std::vector<std::int64_t>(msg.client_ids.size(), 0);  // counts unknown here
  }
  if (!samples.empty() && total != msg.num_samples) {
    return Status::InvalidArgument("its weight " + std::to_string(msg.num_samples) +
                                   " is not the sum of its contributors' samples " +
                                   std::to_string(total));
  }
  return samples;
}

Status TierFit::Run(std::int64_t round, const std::vector<std::int64_t>& sampled,
                    core::ModelState& global, RoundMetrics& metrics) {
  const int aggregators = ctx_.options.aggregators;
  // A secure subtree round runs its protocol's stages after training.
  const auto stages = ctx_.options.secure.enabled() ? 4 * ctx_.options.secure.stage_timeout
                                                    : core::Clock::duration{};
  const core::Deadline deadline = core::Clock::now() + ctx_.options.round_timeout + stages;
  const std::set<std::int64_t> selected(sampled.begin(), sampled.end());
  std::set<std::int64_t> taken;  // contributors of the partials accepted so far
  double loss_weighted = 0.0;
  double loss_weight = 0.0;
  int refused_clients = 0;  // clients whose updates an aggregator or this server refused
  auto settle = [&](int pos, Message&& msg) {
    // The aggregator's count of its clients' refused updates: a figure for the row, never more
    // than the round's sample (a peer's number, bounded before it is used).
    const auto subtree_refused = msg.metrics.find("subtree_refused");
    if (subtree_refused != msg.metrics.end() && std::isfinite(subtree_refused->second) &&
        subtree_refused->second > 0) {
      const int n =
          static_cast<int>(std::min(subtree_refused->second, static_cast<double>(sampled.size())));
      metrics.refused += n;
      refused_clients += n;
    }
    Result<std::vector<std::int64_t>> samples = CheckPartial(msg, selected, taken);
    Status st = samples.status();
    if (st.ok() && samples->empty()) return;  // none of the sample is connected to it
    const std::vector<std::int64_t> contributors = msg.client_ids;
    const auto loss = msg.metrics.find("train_loss");
    const double partial_loss = loss == msg.metrics.end() ? 0.0 : loss->second;
    const auto secs = msg.metrics.find("train_seconds");
    if (secs != msg.metrics.end()) metrics.extra["client_train_seconds"] += secs->second;
    std::string sha;
    if (st.ok()) {
      algorithms::ClientUpdate update =
          ServerContext::UpdateFromReply(contributors.front(), std::move(msg));
      sha = ctx_.ledger.Hash(update);
      const auto weight = static_cast<double>(update.num_samples);
      st = ctx_.aggregator.Accumulate(std::move(update));
      if (st.ok()) {
        loss_weighted += partial_loss * weight;
        loss_weight += weight;
      }
    }
    if (!st.ok()) {
      ++metrics.refused;
      refused_clients += static_cast<int>(contributors.size());
      for (std::int64_t c : contributors) {
        if (selected.count(c)) ctx_.RecordOutcome(c, 0, "", false);
      }
      FEDML_LOG_WARNING("round %lld: the partial aggregate of aggregator %d refused: %s",
                        static_cast<long long>(round) + 1, pos, st.ToString().c_str());
      return;
    }
    for (std::size_t i = 0; i < contributors.size(); ++i) {
      taken.insert(contributors[i]);
      ctx_.RecordOutcome(contributors[i], (*samples)[i], sha, true);
    }
    metrics.clients += static_cast<int>(contributors.size());
    if (ctx_.on_progress) {
      ctx_.on_progress(round + 1, static_cast<int>(taken.size()), static_cast<int>(sampled.size()));
    }
  };
  WorkerPool::Batch batch;
  batch.round = round;
  batch.model_version = ctx_.model_version;
  batch.n = aggregators;
  batch.reply_type = MessageType::kClientUpdate;
  batch.deadline = deadline;
  batch.owner = [](int pos) { return pos + 1; };
  batch.make_task = [&](int) {
    Message task;
    task.type = MessageType::kTrainTask;
    task.client_ids = sampled;
    task.model = global;
    ctx_.TagTask(task);
    return task;
  };
  batch.describe = [](int pos) { return "aggregator " + std::to_string(pos); };
  batch.on_result = settle;
  const int dropped_before = metrics.dropped;
  FEDML_RETURN_IF_ERROR(ctx_.pool.Dispatch(batch, metrics));
  // A lost aggregator counts as one dropped task in the pool; what the round lost is every
  // sampled client whose update neither arrived nor was refused.
  metrics.dropped = dropped_before + std::max(0, static_cast<int>(sampled.size()) -
                                                     metrics.clients - refused_clients);
  metrics.train_loss = loss_weight > 0 ? loss_weighted / loss_weight : 0.0;
  // min_clients counts clients, not partials.
  return ctx_.EndTraining(round, metrics.clients, global, metrics,
                          deadline - ctx_.options.round_timeout - stages);
}

}  // namespace fedml::api::server
