// Data sets and partitions for federated simulation. Torch-free: features are plain float
// buffers that the LibTorch trainer wraps without copying (fedml/core/train/local_trainer.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core::data {

/// Samples stored row-major: sample i's features are features[i * sample_numel(), ...).
struct Dataset {
  std::vector<float> features;
  std::vector<std::int64_t> labels;
  std::vector<std::int64_t> sample_shape;  // e.g. {1, 28, 28} for images, {60} for synthetic
  int num_classes = 0;

  std::size_t size() const { return labels.size(); }
  std::size_t sample_numel() const;
};

/// Reads an IDX image file (magic 0x00000803, u8 pixels) and an IDX label file (0x00000801),
/// plain or gzip-compressed (detected from the content, not the name). Pixels are scaled to
/// [0, 1] and then normalised as (x - mean) / std when `normalize` holds mean/std. Errors name
/// the path and what was wrong (missing file, bad magic, truncated, count mismatch, label out of
/// range).
struct IdxNormalization {
  bool enabled = true;
  float mean = 0.2860f;  // Fashion-MNIST training-set statistics
  float stddev = 0.3530f;
};
Result<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                        const IdxNormalization& norm = {});

/// Train and test splits of an MNIST-format directory: looks for
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte with or without ".gz". `dataset_name`
/// ("fashion_mnist" or "mnist") picks the normalisation and the hint printed when files are
/// missing (for Fashion-MNIST: the Debian package dataset-fashion-mnist, which installs into
/// /usr/share/datasets/fashion-mnist).
struct TrainTest {
  Dataset train;
  Dataset test;
};
Result<TrainTest> LoadMnistFormat(const std::string& directory, const std::string& dataset_name);

/// A partition of a training set over clients: client_indices[c] lists sample indices of client c.
struct Partition {
  std::vector<std::vector<std::int64_t>> client_indices;
  std::size_t num_clients() const { return client_indices.size(); }
};

/// LEAF's synthetic(alpha, beta) (Li et al., FedProx): each client has its own softmax-linear
/// model W_k, b_k ~ N(u_k, 1), u_k ~ N(0, alpha), and features x ~ N(v_k, Sigma), v_k ~ N(B_k, 1),
/// B_k ~ N(0, beta), Sigma diagonal with Sigma_jj = j^-1.2 (j = 1..dimension); y = argmax of
/// softmax(x W_k + b_k). As in FedProx's generator, alpha and beta are standard deviations.
/// Client k has floor(lognormal(4, 2)) + min_samples samples, at most max_samples; the first
/// floor(90%) are training samples. Deterministic for a seed, and client k's data do not depend on
/// num_clients. The data are already partitioned: `partition` maps each client to its training
/// samples (contiguous, in client order), and `test` pools the held-out ~10% of every client.
/// Errors for num_clients < 1, negative alpha/beta, dimension < 1, num_classes < 2,
/// min_samples < 10 or max_samples < min_samples.
struct SyntheticOptions {
  int num_clients = 100;
  double alpha = 0.5;
  double beta = 0.5;
  int dimension = 60;
  int num_classes = 10;
  int min_samples = 50;    // per client, before the train/test split
  int max_samples = 1000;  // per client cap
  std::uint64_t seed = 0;
};
struct SyntheticData {
  Dataset train;
  Dataset test;
  Partition partition;
};
Result<SyntheticData> GenerateSynthetic(const SyntheticOptions& options);

/// IID: shuffles with the seed and deals samples out evenly (sizes differ by at most one).
/// Errors for num_clients < 1 or num_samples < num_clients.
Result<Partition> PartitionHomo(std::size_t num_samples, int num_clients, std::uint64_t seed);

/// Non-IID label skew as in FedML's `hetero`: for each class, the class's samples are split over
/// clients in proportions drawn from Dirichlet(alpha), a client's proportion zeroed once it holds
/// N / num_clients samples; redrawn until every client holds at least max(min_size, 1) samples
/// (FedML uses 10). Errors (INVALID_ARGUMENT) for alpha <= 0, labels outside [0, num_classes), or
/// when the data set is too small for num_clients * min_size; FAILED_PRECONDITION when 1000 draws
/// all leave some client too small.
Result<Partition> PartitionDirichlet(const std::vector<std::int64_t>& labels, int num_classes,
                                     int num_clients, double alpha, std::uint64_t seed,
                                     int min_size = 10);

/// McMahan et al.'s pathological non-IID split: samples sorted by label, cut into
/// num_clients * shards_per_client shards, each client gets `shards_per_client` random shards.
/// Shard sizes differ by at most one, so every sample is assigned (no remainder is dropped). A
/// shard spans at most two labels, and exactly one when every class count is a multiple of the
/// shard size (Fashion-MNIST with 100 clients x 2 shards: 200 shards of 300). Errors for
/// num_clients < 1, shards_per_client < 1 or fewer samples than shards.
Result<Partition> PartitionShards(const std::vector<std::int64_t>& labels, int num_clients,
                                  int shards_per_client, std::uint64_t seed);

/// stats[c][k] = number of samples of class k held by client c. Indices or labels out of range
/// are not counted.
std::vector<std::vector<std::int64_t>> LabelStatistics(const Partition& partition,
                                                       const std::vector<std::int64_t>& labels,
                                                       int num_classes);
/// A human-readable table: a header line, one line per client with its sample count and
/// per-class counts, and a final "total" line with the column sums.
std::string FormatLabelStatistics(const std::vector<std::vector<std::int64_t>>& stats);

}  // namespace fedml::core::data
