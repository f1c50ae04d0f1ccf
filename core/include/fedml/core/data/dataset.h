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
/// A partition of a training set over clients: client_indices[c] lists sample indices of client c.
struct Partition {
  std::vector<std::vector<std::int64_t>> client_indices;
  std::size_t num_clients() const { return client_indices.size(); }
};

struct TrainTest {
  Dataset train;
  Dataset test;
  /// The data set's own split of `train` over its clients (LEAF's users, the client ids of a
  /// tensor directory), in the order the files list them, and their names; empty when it has
  /// none (MNIST, CIFAR).
  Partition natural;
  std::vector<std::string> natural_clients;
};
Result<TrainTest> LoadMnistFormat(const std::string& directory, const std::string& dataset_name);

/// CIFAR-10 and CIFAR-100, binary version (https://www.cs.toronto.edu/~kriz/cifar.html:
/// cifar-10-binary.tar.gz, cifar-100-binary.tar.gz, unpacked), from `directory` or its
/// cifar-10-batches-bin / cifar-100-binary subdirectory. CIFAR-10: data_batch_1.bin ..
/// data_batch_5.bin and test_batch.bin, records of 1 label byte (0..9) then 3072 pixel bytes
/// (1024 red, 1024 green, 1024 blue, rows top to bottom). CIFAR-100: train.bin and test.bin,
/// records of a coarse label byte (0..19), a fine label byte (0..99, the label used) and the
/// same 3072 pixel bytes. Samples are {3, 32, 32}, scaled to [0, 1] and normalised per channel
/// with the training set's usual mean and standard deviation. Errors name the file: missing,
/// a size that is not a whole number of records, a label out of range.
Result<TrainTest> LoadCifar(const std::string& directory, const std::string& dataset_name);

/// LEAF's JSON (https://github.com/TalwalkarLab/leaf; data/<name>/data after its preprocessing):
/// `directory` holds train/ and test/, each with *.json files (read in name order) of the form
/// {"users": [u...], "num_samples": [n...], "user_data": {u: {"x": [...], "y": [...]}}} (a
/// "hierarchies" member is ignored). "femnist": each x a list of 784 numbers (28 x 28 pixels),
/// each y a class 0..61. "shakespeare": each x an 80-character string, each y one character,
/// both over LEAF's 80-letter vocabulary (LeafShakespeareVocabulary), features the letters'
/// indices. The natural partition gives each training user (in file order) its own samples; the
/// test set pools every user's test samples. Errors name the file and the user: a member
/// missing or of the wrong kind, counts that disagree with num_samples, a sample of the wrong
/// size, a label or letter outside the vocabulary. Each file is parsed whole (fedml/core/json.h:
/// about 12 times the file's size in memory while it is read).
Result<TrainTest> LoadLeaf(const std::string& directory, const std::string& dataset_name);
/// LEAF's Shakespeare letters, index = position: "\n !\"&'(),-.0123456789:;>?A..Z[]a..z}".
const std::string& LeafShakespeareVocabulary();

/// A tensor data set for anything else: `directory` holds NumPy .npy files (format versions 1-3,
/// little-endian or byte-sized types, C order) x_train.npy, y_train.npy, x_test.npy, y_test.npy
/// and optionally client_train.npy. x: float32/float64/uint8/int8/int16/int32/int64, shape
/// (N, ...), taken as float32 as they are (normalise in Python). y: an integer type, shape (N,),
/// values >= 0; num_classes is the largest label + 1. client_train: an integer type, shape (N,),
/// each sample's client id >= 0; the natural partition has one client per distinct id, in
/// increasing id order. Errors name the file and what was expected (a header that is not a .npy
/// dictionary, a type, a Fortran-order array, a count that does not match).
Result<TrainTest> LoadNpyDirectory(const std::string& directory);

/// A parsed .npy array: its shape and its values as float64 (every supported type converts
/// exactly, int64 beyond 2^53 excepted, which is refused). Errors as LoadNpyDirectory's.
struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<double> values;
  bool integral = false;  // the file's type is an integer type
};
Result<NpyArray> LoadNpy(const std::string& path);

/// The file-based data sets by name: "fashion_mnist", "mnist" (LoadMnistFormat), "cifar10",
/// "cifar100" (LoadCifar), "femnist", "shakespeare" (LoadLeaf), "npy" (LoadNpyDirectory).
/// INVALID_ARGUMENT for another name, listing these.
Result<TrainTest> LoadDatasetFiles(const std::string& dataset_name, const std::string& directory);
/// The names LoadDatasetFiles accepts.
const std::vector<std::string>& DatasetFileNames();

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
