// Splitting a training set over simulated clients: IID, Dirichlet label skew (FedML's "hetero")
// and McMahan et al.'s label-sorted shards. Every result is a true partition of the samples, and
// every draw comes from fedml::core::Rng so that a seed gives the same split on every platform.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"
#include "fedml/core/random.h"

namespace fedml::core::data {
namespace {

// Each partitioner draws from its own stream, so that two partitioners given the same seed do
// not share random numbers.
constexpr std::uint64_t kHomoStream = 0x686f6d6f;       // "homo"
constexpr std::uint64_t kDirichletStream = 0x64697269;  // "diri"
constexpr std::uint64_t kShardsStream = 0x73686172;     // "shar"

// FedML redraws until the smallest client is big enough, with no bound; with a small alpha and
// many clients that can take forever, so give up after this many draws with an explanation.
constexpr int kMaxDirichletAttempts = 1000;

Status CheckNumClients(const char* fn, int num_clients) {
  if (num_clients < 1) {
    return Status::InvalidArgument(std::string(fn) + ": num_clients must be >= 1, got " +
                                   std::to_string(num_clients));
  }
  return Status::Ok();
}

}  // namespace

Result<Partition> PartitionHomo(std::size_t num_samples, int num_clients, std::uint64_t seed) {
  FEDML_RETURN_IF_ERROR(CheckNumClients("PartitionHomo", num_clients));
  const auto clients = static_cast<std::size_t>(num_clients);
  if (num_samples < clients) {
    return Status::InvalidArgument("PartitionHomo: " + std::to_string(num_samples) +
                                   " samples cannot give each of " + std::to_string(num_clients) +
                                   " clients at least one; need num_samples >= num_clients");
  }
  std::vector<std::int64_t> order(num_samples);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(DeriveSeed(seed, {kHomoStream}));
  rng.Shuffle(order);

  // As numpy.array_split: the first num_samples % num_clients clients get one extra sample.
  Partition p;
  p.client_indices.resize(clients);
  const std::size_t base = num_samples / clients;
  const std::size_t extra = num_samples % clients;
  std::size_t pos = 0;
  for (std::size_t c = 0; c < clients; ++c) {
    const std::size_t n = base + (c < extra ? 1 : 0);
    p.client_indices[c].assign(order.begin() + static_cast<std::ptrdiff_t>(pos),
                               order.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return p;
}

Result<Partition> PartitionDirichlet(const std::vector<std::int64_t>& labels, int num_classes,
                                     int num_clients, double alpha, std::uint64_t seed,
                                     int min_size) {
  FEDML_RETURN_IF_ERROR(CheckNumClients("PartitionDirichlet", num_clients));
  if (num_classes < 1) {
    return Status::InvalidArgument("PartitionDirichlet: num_classes must be >= 1, got " +
                                   std::to_string(num_classes));
  }
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    return Status::InvalidArgument(
        "PartitionDirichlet: alpha must be a finite number > 0 (small = more label skew), got " +
        std::to_string(alpha));
  }
  if (min_size < 0) {
    return Status::InvalidArgument("PartitionDirichlet: min_size must be >= 0, got " +
                                   std::to_string(min_size));
  }
  const std::size_t n = labels.size();
  const auto clients = static_cast<std::size_t>(num_clients);
  if (n < clients * static_cast<std::size_t>(min_size) || n < clients) {
    return Status::InvalidArgument(
        "PartitionDirichlet: " + std::to_string(n) + " samples are too few for " +
        std::to_string(num_clients) + " clients with at least " +
        std::to_string(std::max(min_size, 1)) + " each; need num_samples >= num_clients * " +
        "max(min_size, 1)");
  }
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      return Status::InvalidArgument(
          "PartitionDirichlet: label " + std::to_string(labels[i]) + " of sample " +
          std::to_string(i) + " is outside [0, num_classes = " + std::to_string(num_classes) + ")");
    }
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));
  }

  Rng rng(DeriveSeed(seed, {kDirichletStream}));
  // FedML's balancing trick: a client that already holds its fair share N / num_clients gets no
  // more of the following classes, which keeps client sizes from drifting too far apart.
  const double fair_share = static_cast<double>(n) / static_cast<double>(clients);
  const std::size_t required = std::max<std::size_t>(static_cast<std::size_t>(min_size), 1);
  std::size_t best_smallest = 0;
  Partition p;
  for (int attempt = 0; attempt < kMaxDirichletAttempts; ++attempt) {
    p.client_indices.assign(clients, {});
    auto& batches = p.client_indices;
    for (const auto& class_indices : by_class) {
      std::vector<std::int64_t> idx = class_indices;
      rng.Shuffle(idx);
      std::vector<double> prop = rng.Dirichlet(alpha, num_clients);
      double sum = 0.0;
      for (std::size_t c = 0; c < clients; ++c) {
        if (static_cast<double>(batches[c].size()) >= fair_share) prop[c] = 0.0;
        sum += prop[c];
      }
      if (idx.empty()) continue;
      if (!(sum > 0.0)) {
        // Every client still below its fair share drew a proportion that underflowed to zero
        // (tiny alpha): hand the class to one of them, chosen uniformly. Some client is always
        // below its share here, since not all N samples have been dealt yet.
        std::vector<std::size_t> open;
        for (std::size_t c = 0; c < clients; ++c) {
          if (static_cast<double>(batches[c].size()) < fair_share) open.push_back(c);
        }
        std::fill(prop.begin(), prop.end(), 0.0);
        prop[open[rng.UniformInt(open.size())]] = 1.0;
        sum = 1.0;
      }
      // Cut points floor(cumsum(prop) * len), as FedML's (np.cumsum(p) * len).astype(int)[:-1].
      const std::size_t len = idx.size();
      double cumulative = 0.0;
      std::size_t start = 0;
      for (std::size_t c = 0; c < clients; ++c) {
        std::size_t end = len;
        if (c + 1 < clients) {
          cumulative += prop[c] / sum;
          const double cut = std::floor(cumulative * static_cast<double>(len));
          end = std::clamp(static_cast<std::size_t>(std::max(cut, 0.0)), start, len);
        }
        batches[c].insert(batches[c].end(), idx.begin() + static_cast<std::ptrdiff_t>(start),
                          idx.begin() + static_cast<std::ptrdiff_t>(end));
        start = end;
      }
    }
    std::size_t smallest = batches[0].size();
    for (const auto& b : batches) smallest = std::min(smallest, b.size());
    if (smallest >= required) {
      for (auto& b : batches) rng.Shuffle(b);
      return p;
    }
    best_smallest = std::max(best_smallest, smallest);
  }
  return Status::FailedPrecondition(
      "PartitionDirichlet: " + std::to_string(kMaxDirichletAttempts) + " draws with alpha " +
      std::to_string(alpha) + " never gave all " + std::to_string(num_clients) +
      " clients at least " + std::to_string(required) + " samples (best smallest client: " +
      std::to_string(best_smallest) + "); use a larger alpha, fewer clients or a smaller min_size");
}

Result<Partition> PartitionShards(const std::vector<std::int64_t>& labels, int num_clients,
                                  int shards_per_client, std::uint64_t seed) {
  FEDML_RETURN_IF_ERROR(CheckNumClients("PartitionShards", num_clients));
  if (shards_per_client < 1) {
    return Status::InvalidArgument("PartitionShards: shards_per_client must be >= 1, got " +
                                   std::to_string(shards_per_client));
  }
  const std::size_t n = labels.size();
  const std::size_t num_shards =
      static_cast<std::size_t>(num_clients) * static_cast<std::size_t>(shards_per_client);
  if (n < num_shards) {
    return Status::InvalidArgument("PartitionShards: " + std::to_string(n) +
                                   " samples cannot fill " + std::to_string(num_shards) +
                                   " shards (num_clients * shards_per_client); need at least one "
                                   "sample per shard");
  }
  // Stable sort, so that equal labels stay in index order and the split depends only on the seed.
  std::vector<std::int64_t> sorted(n);
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(), [&](std::int64_t a, std::int64_t b) {
    return labels[static_cast<std::size_t>(a)] < labels[static_cast<std::size_t>(b)];
  });
  // Shard s covers sorted[bounds[s], bounds[s + 1]). Sizes differ by at most one, so no sample is
  // left over; when n is a multiple of num_shards all shards have n / num_shards samples.
  std::vector<std::size_t> bounds(num_shards + 1);
  const std::size_t base = n / num_shards;
  const std::size_t extra = n % num_shards;
  for (std::size_t s = 0; s < num_shards; ++s) bounds[s + 1] = bounds[s] + base + (s < extra);

  std::vector<std::size_t> shard_order(num_shards);
  std::iota(shard_order.begin(), shard_order.end(), 0);
  Rng rng(DeriveSeed(seed, {kShardsStream}));
  rng.Shuffle(shard_order);

  Partition p;
  p.client_indices.resize(static_cast<std::size_t>(num_clients));
  for (std::size_t k = 0; k < num_shards; ++k) {
    const std::size_t s = shard_order[k];
    auto& client = p.client_indices[k / static_cast<std::size_t>(shards_per_client)];
    client.insert(client.end(), sorted.begin() + static_cast<std::ptrdiff_t>(bounds[s]),
                  sorted.begin() + static_cast<std::ptrdiff_t>(bounds[s + 1]));
  }
  return p;
}

std::vector<std::vector<std::int64_t>> LabelStatistics(const Partition& partition,
                                                       const std::vector<std::int64_t>& labels,
                                                       int num_classes) {
  const std::size_t k = static_cast<std::size_t>(std::max(num_classes, 0));
  std::vector<std::vector<std::int64_t>> stats(partition.num_clients(),
                                               std::vector<std::int64_t>(k, 0));
  for (std::size_t c = 0; c < partition.num_clients(); ++c) {
    for (std::int64_t i : partition.client_indices[c]) {
      // Indices or labels out of range are not counted (there is no status to report them in);
      // the partitioners above never produce them.
      if (i < 0 || static_cast<std::size_t>(i) >= labels.size()) continue;
      const std::int64_t y = labels[static_cast<std::size_t>(i)];
      if (y < 0 || y >= num_classes) continue;
      ++stats[c][static_cast<std::size_t>(y)];
    }
  }
  return stats;
}

std::string FormatLabelStatistics(const std::vector<std::vector<std::int64_t>>& stats) {
  std::size_t num_classes = 0;
  for (const auto& row : stats) num_classes = std::max(num_classes, row.size());
  std::vector<std::int64_t> class_totals(num_classes, 0);
  std::vector<std::int64_t> client_totals(stats.size(), 0);
  std::int64_t total = 0;
  for (std::size_t c = 0; c < stats.size(); ++c) {
    for (std::size_t k = 0; k < stats[c].size(); ++k) {
      client_totals[c] += stats[c][k];
      class_totals[k] += stats[c][k];
    }
    total += client_totals[c];
  }
  // One width for every column, wide enough for the largest number (the grand total) and the
  // headers, so that the table lines up.
  int width = static_cast<int>(std::to_string(total).size());
  width = std::max(width, static_cast<int>(std::to_string(stats.size()).size()));
  width = std::max(width, static_cast<int>(std::string("samples").size()));
  std::string out;
  char buf[64];
  const auto cell = [&](const std::string& s) {
    std::snprintf(buf, sizeof(buf), " %*s", width, s.c_str());
    out += buf;
  };
  cell("client");
  cell("samples");
  for (std::size_t k = 0; k < num_classes; ++k) cell("c" + std::to_string(k));
  out += '\n';
  for (std::size_t c = 0; c < stats.size(); ++c) {
    cell(std::to_string(c));
    cell(std::to_string(client_totals[c]));
    for (std::size_t k = 0; k < num_classes; ++k) {
      cell(std::to_string(k < stats[c].size() ? stats[c][k] : 0));
    }
    out += '\n';
  }
  cell("total");
  cell(std::to_string(total));
  for (std::int64_t t : class_totals) cell(std::to_string(t));
  out += '\n';
  return out;
}

}  // namespace fedml::core::data
