// Data loading, synthetic data and partitions.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using fedml::StatusCode;
using namespace fedml::core::data;

namespace {

const char* const kFashionDir = "/usr/share/datasets/fashion-mnist";

// A fresh directory, removed at scope exit.
class TempDir : public fedml::testing::TempDir {
 public:
  TempDir() : fedml::testing::TempDir("fedml_data_test") {}
};

using Bytes = std::vector<std::uint8_t>;

void PutBigEndian32(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

Bytes IdxImages(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  Bytes b;
  PutBigEndian32(b, 0x803);
  PutBigEndian32(b, n);
  PutBigEndian32(b, rows);
  PutBigEndian32(b, cols);
  // Pixel p of image i is (37 * i + 11 * p) mod 256: every image differs and 0/255 both occur.
  for (std::uint32_t i = 0; i < n; ++i) {
    for (std::uint32_t p = 0; p < rows * cols; ++p) {
      b.push_back(static_cast<std::uint8_t>((37 * i + 11 * p) % 256));
    }
  }
  return b;
}

Bytes IdxLabels(const std::vector<std::uint8_t>& labels) {
  Bytes b;
  PutBigEndian32(b, 0x801);
  PutBigEndian32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

std::uint32_t Crc32(const Bytes& data) {
  std::uint32_t c = 0xffffffffu;
  for (std::uint8_t byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A valid gzip file made of stored (uncompressed) deflate blocks, so that the test needs no zlib.
Bytes GzipStored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  const auto put16 = [&](std::uint32_t v) {
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
    out.push_back(static_cast<std::uint8_t>((v >> 8) & 0xff));
  };
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, data.size() - pos);
    out.push_back(pos + n == data.size() ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    put16(static_cast<std::uint32_t>(n));
    put16(static_cast<std::uint32_t>(~n & 0xffff));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < data.size());
  const std::uint32_t crc = Crc32(data);
  const auto size = static_cast<std::uint32_t>(data.size());
  put16(crc & 0xffff);
  put16(crc >> 16);
  put16(size & 0xffff);
  put16(size >> 16);
  return out;
}

void WriteFile(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Every index in [0, n) appears in exactly one client.
void RequireTruePartition(const Partition& p, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& client : p.client_indices) {
    for (std::int64_t i : client) {
      REQUIRE(i >= 0);
      REQUIRE(static_cast<std::size_t>(i) < n);
      ++seen[static_cast<std::size_t>(i)];
    }
  }
  REQUIRE(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
}

double MeanLabelEntropy(const Partition& p, const std::vector<std::int64_t>& labels, int k) {
  const auto stats = LabelStatistics(p, labels, k);
  double sum = 0.0;
  for (const auto& row : stats) {
    double total = 0.0;
    for (auto v : row) total += static_cast<double>(v);
    double h = 0.0;
    for (auto v : row) {
      if (v > 0) {
        const double q = static_cast<double>(v) / total;
        h -= q * std::log(q);
      }
    }
    sum += h;
  }
  return sum / static_cast<double>(stats.size());
}

// The real data set, read once for all the tests that use it.
const TrainTest& FashionMnist() {
  static const TrainTest data = [] {
    auto r = LoadMnistFormat(kFashionDir, "fashion_mnist");
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    return std::move(r).value();
  }();
  return data;
}

}  // namespace

TEST_CASE("Dataset::sample_numel multiplies the sample shape", "[data]") {
  Dataset d;
  d.sample_shape = {1, 28, 28};
  CHECK(d.sample_numel() == 784);
  d.sample_shape = {60};
  CHECK(d.sample_numel() == 60);
}

TEST_CASE("LoadIdx reads plain and gzip IDX files", "[data]") {
  TempDir dir;
  const Bytes images = IdxImages(3, 2, 3);
  const Bytes labels = IdxLabels({0, 9, 4});
  WriteFile(dir.File("img"), images);
  WriteFile(dir.File("lbl"), labels);
  WriteFile(dir.File("img.gz"), GzipStored(images));
  WriteFile(dir.File("lbl.gz"), GzipStored(labels));
  // Compressed content under a plain name: detected from the magic, not the name.
  WriteFile(dir.File("img-no-suffix"), GzipStored(images));

  IdxNormalization raw;
  raw.enabled = false;
  auto plain = LoadIdx(dir.File("img"), dir.File("lbl"), raw);
  INFO(plain.status().ToString());
  REQUIRE(plain.ok());
  CHECK(plain->size() == 3);
  CHECK(plain->sample_shape == std::vector<std::int64_t>{1, 2, 3});
  CHECK(plain->num_classes == 10);
  CHECK(plain->labels == std::vector<std::int64_t>{0, 9, 4});
  REQUIRE(plain->features.size() == 3 * 6);
  for (std::uint32_t i = 0; i < 3; ++i) {
    for (std::uint32_t p = 0; p < 6; ++p) {
      CHECK(plain->features[i * 6 + p] ==
            Approx(static_cast<float>((37 * i + 11 * p) % 256) / 255.0f));
    }
  }

  auto gz = LoadIdx(dir.File("img.gz"), dir.File("lbl.gz"), raw);
  INFO(gz.status().ToString());
  REQUIRE(gz.ok());
  CHECK(gz->features == plain->features);
  CHECK(gz->labels == plain->labels);
  auto mixed = LoadIdx(dir.File("img-no-suffix"), dir.File("lbl"), raw);
  REQUIRE(mixed.ok());
  CHECK(mixed->features == plain->features);

  IdxNormalization norm;
  norm.mean = 0.5f;
  norm.stddev = 0.25f;
  auto normalized = LoadIdx(dir.File("img"), dir.File("lbl"), norm);
  REQUIRE(normalized.ok());
  for (std::size_t i = 0; i < plain->features.size(); ++i) {
    CHECK(normalized->features[i] == Approx((plain->features[i] - 0.5f) / 0.25f));
  }

  norm.stddev = 0.0f;
  auto bad_norm = LoadIdx(dir.File("img"), dir.File("lbl"), norm);
  CHECK(bad_norm.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("LoadIdx rejects malformed files with messages naming path and problem", "[data]") {
  TempDir dir;
  const Bytes images = IdxImages(4, 3, 3);
  const Bytes labels = IdxLabels({1, 2, 3, 4});
  WriteFile(dir.File("img"), images);
  WriteFile(dir.File("lbl"), labels);
  IdxNormalization raw;
  raw.enabled = false;

  const auto expect_error = [&](const std::string& img, const std::string& lbl, StatusCode code,
                                const std::vector<std::string>& fragments) {
    auto r = LoadIdx(img, lbl, raw);
    REQUIRE_FALSE(r.ok());
    const std::string msg = r.status().message();
    INFO(r.status().ToString());
    CHECK(r.status().code() == code);
    for (const auto& f : fragments) CHECK(Contains(msg, f));
  };

  SECTION("missing file") {
    expect_error(dir.File("nope"), dir.File("lbl"), StatusCode::kNotFound,
                 {dir.File("nope"), "not found"});
  }
  SECTION("bad magic: a label file given as images, and vice versa") {
    expect_error(dir.File("lbl"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("lbl"), "bad magic", "0x00000801", "0x00000803"});
    expect_error(dir.File("img"), dir.File("img"), StatusCode::kDataLoss,
                 {dir.File("img"), "bad magic", "0x00000803", "0x00000801"});
  }
  SECTION("bad magic: arbitrary bytes") {
    WriteFile(dir.File("junk"), Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!',
                                      '!', '!', '!', '!'});
    expect_error(dir.File("junk"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("junk"), "bad magic"});
  }
  SECTION("truncated header") {
    WriteFile(dir.File("short"), Bytes(images.begin(), images.begin() + 10));
    expect_error(dir.File("short"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("short"), "truncated"});
    WriteFile(dir.File("tiny"), Bytes{0, 0});
    expect_error(dir.File("tiny"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("tiny"), "truncated"});
    WriteFile(dir.File("empty"), Bytes{});
    expect_error(dir.File("empty"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("empty"), "truncated"});
  }
  SECTION("truncated pixel data and label data") {
    WriteFile(dir.File("cut"), Bytes(images.begin(), images.end() - 1));
    expect_error(dir.File("cut"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("cut"), "truncated"});
    WriteFile(dir.File("cut-lbl"), Bytes(labels.begin(), labels.end() - 2));
    expect_error(dir.File("img"), dir.File("cut-lbl"), StatusCode::kDataLoss,
                 {dir.File("cut-lbl"), "truncated"});
  }
  SECTION("trailing bytes") {
    Bytes longer = images;
    longer.push_back(0);
    WriteFile(dir.File("long"), longer);
    expect_error(dir.File("long"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("long"), "trailing"});
  }
  SECTION("image/label count mismatch") {
    WriteFile(dir.File("lbl3"), IdxLabels({1, 2, 3}));
    expect_error(dir.File("img"), dir.File("lbl3"), StatusCode::kDataLoss,
                 {"mismatch", dir.File("img"), dir.File("lbl3"), "4", "3"});
  }
  SECTION("label out of range") {
    WriteFile(dir.File("lbl10"), IdxLabels({1, 2, 10, 4}));
    expect_error(dir.File("img"), dir.File("lbl10"), StatusCode::kDataLoss,
                 {dir.File("lbl10"), "label 10", "sample 2", "out of range"});
  }
  SECTION("zero-sized images") {
    WriteFile(dir.File("flat"), IdxImages(4, 0, 3));
    expect_error(dir.File("flat"), dir.File("lbl"), StatusCode::kDataLoss, {dir.File("flat")});
  }
  SECTION("truncated gzip stream") {
    const Bytes gz = GzipStored(images);
    WriteFile(dir.File("cut.gz"), Bytes(gz.begin(), gz.end() - 12));
    expect_error(dir.File("cut.gz"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("cut.gz"), "truncated gzip"});
  }
  SECTION("gzip CRC mismatch") {
    Bytes gz = GzipStored(images);
    gz[gz.size() - 8] ^= 0xff;  // first CRC-32 byte of the trailer
    WriteFile(dir.File("crc.gz"), gz);
    expect_error(dir.File("crc.gz"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("crc.gz"), "corrupt gzip"});
  }
  SECTION("garbage after the gzip stream") {
    Bytes gz = GzipStored(images);
    gz.push_back(0x42);
    WriteFile(dir.File("tail.gz"), gz);
    expect_error(dir.File("tail.gz"), dir.File("lbl"), StatusCode::kDataLoss,
                 {dir.File("tail.gz"), "trailing garbage"});
  }
  SECTION("a directory instead of a file") {
    expect_error(dir.path(), dir.File("lbl"), StatusCode::kInvalidArgument,
                 {dir.path(), "directory"});
  }
}

TEST_CASE("LoadIdx reads concatenated gzip members", "[data]") {
  TempDir dir;
  const Bytes images = IdxImages(2, 4, 4);
  Bytes two = GzipStored(Bytes(images.begin(), images.begin() + 20));
  const Bytes rest = GzipStored(Bytes(images.begin() + 20, images.end()));
  two.insert(two.end(), rest.begin(), rest.end());
  WriteFile(dir.File("img.gz"), two);
  WriteFile(dir.File("lbl"), IdxLabels({3, 5}));
  auto r = LoadIdx(dir.File("img.gz"), dir.File("lbl"));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->size() == 2);
}

TEST_CASE("LoadMnistFormat finds the four files, plain or .gz", "[data]") {
  TempDir dir;
  WriteFile(dir.File("train-images-idx3-ubyte.gz"), GzipStored(IdxImages(5, 28, 28)));
  WriteFile(dir.File("train-labels-idx1-ubyte"), IdxLabels({0, 1, 2, 3, 4}));
  WriteFile(dir.File("t10k-images-idx3-ubyte"), IdxImages(2, 28, 28));
  WriteFile(dir.File("t10k-labels-idx1-ubyte.gz"), GzipStored(IdxLabels({5, 6})));

  auto fashion = LoadMnistFormat(dir.path(), "fashion_mnist");
  INFO(fashion.status().ToString());
  REQUIRE(fashion.ok());
  CHECK(fashion->train.size() == 5);
  CHECK(fashion->test.size() == 2);
  CHECK(fashion->train.sample_shape == std::vector<std::int64_t>{1, 28, 28});
  CHECK(fashion->test.labels == std::vector<std::int64_t>{5, 6});
  // Pixel 0 of image 0 is 0: normalised to -mean/std with each data set's statistics.
  CHECK(fashion->train.features[0] == Approx(-0.2860f / 0.3530f));
  auto mnist = LoadMnistFormat(dir.path(), "mnist");
  REQUIRE(mnist.ok());
  CHECK(mnist->train.features[0] == Approx(-0.1307f / 0.3081f));

  auto unknown = LoadMnistFormat(dir.path(), "cifar10");
  CHECK(unknown.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(unknown.status().message(), "fashion_mnist"));

  // An error in one split says which split.
  WriteFile(dir.File("t10k-labels-idx1-ubyte.gz"), GzipStored(IdxLabels({5})));
  auto mismatch = LoadMnistFormat(dir.path(), "fashion_mnist");
  CHECK(mismatch.status().code() == StatusCode::kDataLoss);
  CHECK(Contains(mismatch.status().message(), "test split"));
}

TEST_CASE("LoadMnistFormat explains how to get missing Fashion-MNIST files", "[data]") {
  TempDir dir;
  auto r = LoadMnistFormat(dir.File("absent"), "fashion_mnist");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kNotFound);
  const std::string msg = r.status().message();
  INFO(msg);
  CHECK(Contains(msg, "train-images-idx3-ubyte"));
  CHECK(Contains(msg, "not found"));
  CHECK(Contains(msg, "dataset-fashion-mnist"));
  CHECK(Contains(msg, "apt-get install dataset-fashion-mnist"));
  CHECK(Contains(msg, "data_cache_dir"));
}

TEST_CASE("the installed Fashion-MNIST loads completely", "[data]") {
  const TrainTest& data = FashionMnist();
  REQUIRE(data.train.size() == 60000);
  REQUIRE(data.test.size() == 10000);
  CHECK(data.train.sample_shape == std::vector<std::int64_t>{1, 28, 28});
  CHECK(data.train.num_classes == 10);
  CHECK(data.train.features.size() == 60000u * 784u);
  CHECK(data.test.features.size() == 10000u * 784u);
  std::vector<std::int64_t> train_counts(10, 0), test_counts(10, 0);
  for (auto y : data.train.labels) {
    REQUIRE((y >= 0 && y < 10));
    ++train_counts[static_cast<std::size_t>(y)];
  }
  for (auto y : data.test.labels) {
    REQUIRE((y >= 0 && y < 10));
    ++test_counts[static_cast<std::size_t>(y)];
  }
  CHECK(train_counts == std::vector<std::int64_t>(10, 6000));
  CHECK(test_counts == std::vector<std::int64_t>(10, 1000));
  // The default normalisation is the training set's own statistics.
  double sum = 0.0, sum_sq = 0.0;
  for (float x : data.train.features) {
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(data.train.features.size());
  const double mean = sum / n;
  CHECK(std::abs(mean) < 0.01);
  CHECK(std::sqrt(sum_sq / n - mean * mean) == Approx(1.0).epsilon(0.01));
}

TEST_CASE("PartitionHomo deals out a shuffled, even partition", "[data]") {
  auto p = PartitionHomo(1003, 10, 42);
  REQUIRE(p.ok());
  REQUIRE(p->num_clients() == 10);
  RequireTruePartition(*p, 1003);
  for (std::size_t c = 0; c < 10; ++c) {
    CHECK(p->client_indices[c].size() == (c < 3 ? 101u : 100u));
  }
  auto again = PartitionHomo(1003, 10, 42);
  REQUIRE(again.ok());
  CHECK(again->client_indices == p->client_indices);
  auto other = PartitionHomo(1003, 10, 43);
  REQUIRE(other.ok());
  CHECK(other->client_indices != p->client_indices);
  // Shuffled, not dealt in index order.
  CHECK(!std::is_sorted(p->client_indices[0].begin(), p->client_indices[0].end()));

  auto one = PartitionHomo(5, 1, 0);
  REQUIRE(one.ok());
  RequireTruePartition(*one, 5);

  CHECK(PartitionHomo(10, 0, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(PartitionHomo(10, -3, 0).status().code() == StatusCode::kInvalidArgument);
  auto too_few = PartitionHomo(3, 4, 0);
  CHECK(too_few.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(too_few.status().message(), "num_samples >= num_clients"));
}

TEST_CASE("PartitionDirichlet on Fashion-MNIST: min size, partition, determinism", "[data]") {
  const auto& labels = FashionMnist().train.labels;
  auto p = PartitionDirichlet(labels, 10, 100, 0.5, 1);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  REQUIRE(p->num_clients() == 100);
  RequireTruePartition(*p, labels.size());
  for (const auto& client : p->client_indices) CHECK(client.size() >= 10);

  auto again = PartitionDirichlet(labels, 10, 100, 0.5, 1);
  REQUIRE(again.ok());
  CHECK(again->client_indices == p->client_indices);
  auto other = PartitionDirichlet(labels, 10, 100, 0.5, 2);
  REQUIRE(other.ok());
  CHECK(other->client_indices != p->client_indices);

  auto stats = LabelStatistics(*p, labels, 10);
  std::int64_t total = 0;
  std::vector<std::int64_t> per_class(10, 0);
  for (std::size_t c = 0; c < stats.size(); ++c) {
    std::int64_t row = 0;
    for (std::size_t k = 0; k < 10; ++k) {
      row += stats[c][k];
      per_class[k] += stats[c][k];
    }
    CHECK(row == static_cast<std::int64_t>(p->client_indices[c].size()));
    total += row;
  }
  CHECK(total == 60000);
  CHECK(per_class == std::vector<std::int64_t>(10, 6000));
}

TEST_CASE("PartitionDirichlet: a smaller alpha gives more label skew", "[data]") {
  const auto& labels = FashionMnist().train.labels;
  auto skewed = PartitionDirichlet(labels, 10, 20, 0.1, 3);
  auto mild = PartitionDirichlet(labels, 10, 20, 10.0, 3);
  REQUIRE(skewed.ok());
  REQUIRE(mild.ok());
  RequireTruePartition(*skewed, labels.size());
  RequireTruePartition(*mild, labels.size());
  const double h_skewed = MeanLabelEntropy(*skewed, labels, 10);
  const double h_mild = MeanLabelEntropy(*mild, labels, 10);
  INFO("entropy alpha=0.1: " << h_skewed << ", alpha=10: " << h_mild);
  CHECK(h_skewed < h_mild - 0.5);
  CHECK(h_mild > 0.9 * std::log(10.0));  // close to uniform over the 10 classes
}

TEST_CASE("PartitionDirichlet validates its arguments", "[data]") {
  std::vector<std::int64_t> labels(200);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 4);

  const auto code = [&](int k, int clients, double alpha, int min_size) {
    return PartitionDirichlet(labels, k, clients, alpha, 0, min_size).status().code();
  };
  CHECK(code(4, 5, 0.0, 10) == StatusCode::kInvalidArgument);
  CHECK(code(4, 5, -1.0, 10) == StatusCode::kInvalidArgument);
  CHECK(code(4, 5, std::nan(""), 10) == StatusCode::kInvalidArgument);
  CHECK(code(4, 0, 0.5, 10) == StatusCode::kInvalidArgument);
  CHECK(code(0, 5, 0.5, 10) == StatusCode::kInvalidArgument);
  CHECK(code(4, 5, 0.5, -1) == StatusCode::kInvalidArgument);
  CHECK(code(3, 5, 0.5, 10) == StatusCode::kInvalidArgument);  // label 3 out of range

  auto alpha_msg = PartitionDirichlet(labels, 4, 5, 0.0, 0).status().message();
  CHECK(Contains(alpha_msg, "alpha"));
  CHECK(Contains(alpha_msg, "> 0"));

  auto too_small = PartitionDirichlet(labels, 4, 30, 0.5, 0, 10);  // 200 < 30 * 10
  CHECK(too_small.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(too_small.status().message(), "num_clients * "));

  // Feasible in size, but a tiny alpha almost never gives 10 clients 10 samples each: the search
  // gives up with an explanation instead of looping forever.
  std::vector<std::int64_t> one_class(100, 0);
  auto hopeless = PartitionDirichlet(one_class, 1, 10, 1e-3, 0, 10);
  CHECK(hopeless.status().code() == StatusCode::kFailedPrecondition);
  CHECK(Contains(hopeless.status().message(), "larger alpha"));

  // min_size 0 still asks for one sample per client, and a feasible case succeeds.
  auto ok = PartitionDirichlet(labels, 4, 5, 1.0, 0, 0);
  REQUIRE(ok.ok());
  RequireTruePartition(*ok, labels.size());
  for (const auto& client : ok->client_indices) CHECK(!client.empty());
}

TEST_CASE("PartitionShards on Fashion-MNIST gives each client at most two classes", "[data]") {
  const auto& labels = FashionMnist().train.labels;
  auto p = PartitionShards(labels, 100, 2, 5);
  REQUIRE(p.ok());
  REQUIRE(p->num_clients() == 100);
  RequireTruePartition(*p, labels.size());
  // 6000 samples per class and 200 shards of 300: every shard is a single class.
  for (const auto& client : p->client_indices) {
    CHECK(client.size() == 600);
    std::set<std::int64_t> classes;
    for (auto i : client) classes.insert(labels[static_cast<std::size_t>(i)]);
    CHECK(classes.size() <= 2);
  }
  auto again = PartitionShards(labels, 100, 2, 5);
  REQUIRE(again.ok());
  CHECK(again->client_indices == p->client_indices);
  auto other = PartitionShards(labels, 100, 2, 6);
  REQUIRE(other.ok());
  CHECK(other->client_indices != p->client_indices);
}

TEST_CASE("PartitionShards covers every sample when shards do not divide evenly", "[data]") {
  std::vector<std::int64_t> labels(1037);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    labels[i] = static_cast<std::int64_t>((i * 7) % 10);
  }
  auto p = PartitionShards(labels, 10, 3, 9);
  REQUIRE(p.ok());
  RequireTruePartition(*p, labels.size());
  // 30 shards of 34 or 35 samples; a shard spans at most two labels.
  for (const auto& client : p->client_indices) {
    CHECK(client.size() >= 3 * 34);
    CHECK(client.size() <= 3 * 35);
    std::set<std::int64_t> classes;
    for (auto i : client) classes.insert(labels[static_cast<std::size_t>(i)]);
    CHECK(classes.size() <= 6);
  }
  CHECK(PartitionShards(labels, 0, 2, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(PartitionShards(labels, 10, 0, 0).status().code() == StatusCode::kInvalidArgument);
  auto too_many = PartitionShards(labels, 600, 2, 0);  // 1200 shards > 1037 samples
  CHECK(too_many.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(too_many.status().message(), "shards"));
}

TEST_CASE("LabelStatistics counts and FormatLabelStatistics tabulates", "[data]") {
  const std::vector<std::int64_t> labels = {0, 1, 1, 2, 2, 2, 0};
  Partition p;
  p.client_indices = {{0, 1, 2}, {3, 4, 5, 6}};
  const auto stats = LabelStatistics(p, labels, 3);
  REQUIRE(stats.size() == 2);
  CHECK(stats[0] == std::vector<std::int64_t>{1, 2, 0});
  CHECK(stats[1] == std::vector<std::int64_t>{1, 0, 3});

  const std::string table = FormatLabelStatistics(stats);
  INFO(table);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = table.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(table.substr(start, nl - start));
  }
  REQUIRE(lines.size() == 4);  // header, two clients, total
  CHECK(Contains(lines[0], "client"));
  CHECK(Contains(lines[0], "samples"));
  CHECK(Contains(lines[0], "c2"));
  // Columns line up: every line has the same length.
  for (const auto& l : lines) CHECK(l.size() == lines[0].size());
  const auto numbers = [](const std::string& line) {
    std::vector<long> out;
    std::size_t i = 0;
    while (i < line.size()) {
      if (std::isdigit(static_cast<unsigned char>(line[i]))) {
        std::size_t used = 0;
        out.push_back(std::stol(line.substr(i), &used));
        i += used;
      } else {
        ++i;
      }
    }
    return out;
  };
  CHECK(numbers(lines[1]) == std::vector<long>{0, 3, 1, 2, 0});
  CHECK(numbers(lines[2]) == std::vector<long>{1, 4, 1, 0, 3});
  CHECK(Contains(lines[3], "total"));
  CHECK(numbers(lines[3]) == std::vector<long>{7, 2, 2, 3});
}

TEST_CASE("GenerateSynthetic is deterministic, shaped and partitioned", "[data]") {
  SyntheticOptions o;
  o.num_clients = 30;
  o.seed = 11;
  auto a = GenerateSynthetic(o);
  INFO(a.status().ToString());
  REQUIRE(a.ok());
  CHECK(a->train.sample_shape == std::vector<std::int64_t>{60});
  CHECK(a->test.sample_shape == std::vector<std::int64_t>{60});
  CHECK(a->train.num_classes == 10);
  CHECK(a->train.features.size() == a->train.size() * 60);
  CHECK(a->test.features.size() == a->test.size() * 60);
  REQUIRE(a->partition.num_clients() == 30);
  RequireTruePartition(a->partition, a->train.size());
  std::size_t expected_test = 0;
  for (const auto& client : a->partition.client_indices) {
    // train = floor(0.9 * n) with n in [min_samples, max_samples].
    CHECK(client.size() >= 45);
    CHECK(client.size() <= 900);
    const std::size_t n_lo = (client.size() * 10 + 8) / 9;  // smallest n with floor(0.9n) = size
    expected_test += n_lo - client.size();
  }
  CHECK(a->test.size() >= expected_test);
  CHECK(a->test.size() <= expected_test + 30);
  for (auto y : a->train.labels) REQUIRE((y >= 0 && y < 10));
  for (auto y : a->test.labels) REQUIRE((y >= 0 && y < 10));
  for (float x : a->train.features) REQUIRE(std::isfinite(x));
  // Labels come from an argmax of 10 logits: more than one class occurs overall.
  CHECK(std::set<std::int64_t>(a->train.labels.begin(), a->train.labels.end()).size() > 1);

  auto b = GenerateSynthetic(o);
  REQUIRE(b.ok());
  CHECK(b->train.features == a->train.features);
  CHECK(b->train.labels == a->train.labels);
  CHECK(b->test.features == a->test.features);
  CHECK(b->partition.client_indices == a->partition.client_indices);

  o.seed = 12;
  auto c = GenerateSynthetic(o);
  REQUIRE(c.ok());
  CHECK(c->train.features != a->train.features);

  // A client's data do not depend on how many clients there are.
  o.seed = 11;
  o.num_clients = 5;
  auto few = GenerateSynthetic(o);
  REQUIRE(few.ok());
  const std::size_t prefix = few->train.size();
  REQUIRE(prefix <= a->train.size());
  CHECK(std::equal(few->train.labels.begin(), few->train.labels.end(), a->train.labels.begin()));
  CHECK(std::equal(few->train.features.begin(), few->train.features.end(),
                   a->train.features.begin()));
}

TEST_CASE("GenerateSynthetic respects the sample cap and validates options", "[data]") {
  SyntheticOptions o;
  o.num_clients = 20;
  o.min_samples = 10;
  o.max_samples = 20;
  o.dimension = 5;
  o.num_classes = 3;
  auto r = GenerateSynthetic(o);
  REQUIRE(r.ok());
  CHECK(r->train.sample_shape == std::vector<std::int64_t>{5});
  for (const auto& client : r->partition.client_indices) {
    CHECK(client.size() >= 9);
    CHECK(client.size() <= 18);
  }
  for (auto y : r->train.labels) REQUIRE((y >= 0 && y < 3));

  const auto code = [](SyntheticOptions bad) { return GenerateSynthetic(bad).status().code(); };
  SyntheticOptions bad;
  bad.num_clients = 0;
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.alpha = -1;
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.beta = std::nan("");
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.dimension = 0;
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.num_classes = 1;
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.min_samples = 5;
  CHECK(code(bad) == StatusCode::kInvalidArgument);
  bad = {};
  bad.max_samples = 40;
  auto msg = GenerateSynthetic(bad).status().message();
  CHECK(Contains(msg, "max_samples"));
}
