// The data set loaders against their formats' documented layouts: CIFAR-10/100 binary records,
// LEAF's JSON (FEMNIST, Shakespeare) with its natural partition, and NumPy .npy directories.
// Every fixture is written here byte for byte in the real format, since the data sets themselves
// are not packaged; each format's malformed files must be refused naming the file and what was
// expected.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"
#include "npy_writer.h"
#include "temp_dir.h"

using Catch::Matchers::Contains;
using fedml::StatusCode;
using fedml::core::data::LoadCifar;
using fedml::core::data::LoadDatasetFiles;
using fedml::core::data::LoadLeaf;
using fedml::core::data::LoadNpy;
using fedml::core::data::LoadNpyDirectory;
using fedml::core::data::TrainTest;
using fedml::testing::LittleEndian;
using fedml::testing::Npy;
using fedml::testing::TempDir;
using fedml::testing::WriteBytes;

namespace {

void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// n CIFAR records: label bytes, then pixel k of record i = (i * 7 + k) % 256.
std::vector<std::uint8_t> CifarRecords(int n,
                                       const std::vector<std::vector<std::uint8_t>>& labels) {
  std::vector<std::uint8_t> out;
  for (int i = 0; i < n; ++i) {
    for (std::uint8_t b : labels[static_cast<std::size_t>(i)]) out.push_back(b);
    for (int k = 0; k < 3072; ++k) out.push_back(static_cast<std::uint8_t>((i * 7 + k) % 256));
  }
  return out;
}

}  // namespace

TEST_CASE("CIFAR-10's binary batches load as 3x32x32 samples, normalised per channel", "[data]") {
  TempDir dir("cifar10");
  const std::string root = dir.File("cifar-10-batches-bin");  // as the archive unpacks
  for (int b = 1; b <= 5; ++b) {
    WriteBytes(root + "/data_batch_" + std::to_string(b) + ".bin",
               CifarRecords(2, {{static_cast<std::uint8_t>(b)}, {9}}));
  }
  WriteBytes(root + "/test_batch.bin", CifarRecords(3, {{0}, {1}, {2}}));
  for (const std::string& where : {dir.path(), root}) {
    auto data = LoadCifar(where, "cifar10");
    REQUIRE(data.ok());
    CHECK(data->train.size() == 10);
    CHECK(data->test.size() == 3);
    CHECK(data->train.sample_shape == std::vector<std::int64_t>{3, 32, 32});
    CHECK(data->train.num_classes == 10);
    CHECK(data->train.labels[0] == 1);
    CHECK(data->train.labels[8] == 5);
    CHECK(data->train.labels[9] == 9);
    CHECK(data->natural.client_indices.empty());
    // Record 1 of the first batch, pixel 1500 (green plane): value (7 + 1500) % 256.
    const float v = ((1507 % 256) / 255.0F - 0.4822F) / 0.2435F;
    CHECK(data->train.features[3072 + 1500] == Approx(v));
  }
  // A batch of the wrong size, a label out of range, a missing batch: named, with what is wanted.
  WriteBytes(root + "/data_batch_3.bin", std::vector<std::uint8_t>(3073 * 2 + 5, 0));
  auto bad_size = LoadCifar(root, "cifar10");
  CHECK(bad_size.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad_size.status().message(),
             Contains("data_batch_3.bin") && Contains("3073-byte records"));
  WriteBytes(root + "/data_batch_3.bin", CifarRecords(1, {{10}}));
  auto bad_label = LoadCifar(root, "cifar10");
  CHECK_THAT(bad_label.status().message(), Contains("data_batch_3.bin") && Contains("0..9"));
  std::filesystem::remove(root + "/data_batch_3.bin");
  auto missing = LoadCifar(root, "cifar10");
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Contains("data_batch_3.bin") && Contains("cifar.html"));
}

TEST_CASE("CIFAR-100's records carry a coarse and a fine label; the fine one is used", "[data]") {
  TempDir dir("cifar100");
  WriteBytes(dir.File("train.bin"), CifarRecords(3, {{0, 99}, {19, 5}, {3, 42}}));
  WriteBytes(dir.File("test.bin"), CifarRecords(1, {{1, 7}}));
  auto data = LoadCifar(dir.path(), "cifar100");
  REQUIRE(data.ok());
  CHECK(data->train.labels == std::vector<std::int64_t>{99, 5, 42});
  CHECK(data->train.num_classes == 100);
  CHECK(data->test.labels == std::vector<std::int64_t>{7});
  WriteBytes(dir.File("test.bin"), CifarRecords(1, {{20, 7}}));  // coarse label 20
  auto bad = LoadCifar(dir.path(), "cifar100");
  CHECK_THAT(bad.status().message(), Contains("test.bin") && Contains("coarse 0..19"));
  CHECK(LoadCifar(dir.path(), "cifar20").status().code() == StatusCode::kInvalidArgument);
}

namespace {

// A FEMNIST user: n samples, sample i all pixels (i + 1) / 10, label (i * 13) % 62.
std::string FemnistUser(int n) {
  std::string x = "[", y = "[";
  for (int i = 0; i < n; ++i) {
    x += i ? ", [" : "[";
    for (int p = 0; p < 784; ++p) x += (p ? "," : "") + std::to_string((i + 1) / 10.0);
    x += "]";
    y += (i ? ", " : "") + std::to_string((i * 13) % 62);
  }
  return "{\"x\": " + x + "], \"y\": " + y + "]}";
}

std::string LeafFile(const std::vector<std::pair<std::string, int>>& users) {
  std::string names, counts, data;
  for (std::size_t u = 0; u < users.size(); ++u) {
    names += (u ? ", \"" : "\"") + users[u].first + "\"";
    counts += (u ? ", " : "") + std::to_string(users[u].second);
    data += (u ? ", \"" : "\"") + users[u].first + "\": " + FemnistUser(users[u].second);
  }
  return "{\"users\": [" + names + "], \"num_samples\": [" + counts +
         "], \"hierarchies\": [], \"user_data\": {" + data + "}}";
}

}  // namespace

TEST_CASE("LEAF FEMNIST: one client per writer, in file order, with its own samples", "[data]") {
  TempDir dir("femnist");
  WriteText(dir.File("train/all_data_0_train.json"), LeafFile({{"f0001_41", 3}, {"f0002_07", 1}}));
  WriteText(dir.File("train/all_data_1_train.json"), LeafFile({{"f0100_12", 2}}));
  WriteText(dir.File("test/all_data_0_test.json"), LeafFile({{"f0001_41", 1}, {"f0100_12", 1}}));
  auto data = LoadLeaf(dir.path(), "femnist");
  REQUIRE(data.ok());
  CHECK(data->train.size() == 6);
  CHECK(data->test.size() == 2);
  CHECK(data->train.sample_shape == std::vector<std::int64_t>{1, 28, 28});
  CHECK(data->train.num_classes == 62);
  CHECK(data->natural_clients == std::vector<std::string>{"f0001_41", "f0002_07", "f0100_12"});
  REQUIRE(data->natural.num_clients() == 3);
  CHECK(data->natural.client_indices[0] == std::vector<std::int64_t>{0, 1, 2});
  CHECK(data->natural.client_indices[1] == std::vector<std::int64_t>{3});
  CHECK(data->natural.client_indices[2] == std::vector<std::int64_t>{4, 5});
  CHECK(data->train.labels == std::vector<std::int64_t>{0, 13, 26, 0, 0, 13});
  CHECK(data->train.features[784 * 2 + 5] == Approx(0.3));
  // The same data through the by-name loader.
  auto by_name = LoadDatasetFiles("femnist", dir.path());
  REQUIRE(by_name.ok());
  CHECK(by_name->natural.num_clients() == 3);

  // Malformed files: each refused naming the file, the user and what LEAF's layout expects.
  const std::string file = dir.File("train/all_data_1_train.json");
  WriteText(file, "{\"users\": [\"u\"], \"num_samples\": [3], \"user_data\": {\"u\": " +
                      FemnistUser(2) + "}}");
  auto count = LoadLeaf(dir.path(), "femnist");
  CHECK(count.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(count.status().message(), Contains("all_data_1_train.json") && Contains("user 'u'") &&
                                           Contains("num_samples says '3'"));
  WriteText(file,
            "{\"users\": [\"u\"], \"num_samples\": [1], \"user_data\": {\"u\": "
            "{\"x\": [[0.5, 0.5]], \"y\": [3]}}}");
  CHECK_THAT(LoadLeaf(dir.path(), "femnist").status().message(),
             Contains("all_data_1_train.json") && Contains("784 pixels"));
  WriteText(file, "{\"users\": [\"u\"], \"num_samples\": [1], \"user_data\": {}}");
  CHECK_THAT(LoadLeaf(dir.path(), "femnist").status().message(),
             Contains("has no object in \"user_data\"") && Contains("LEAF's layout"));
  WriteText(file, "{\"users\": [\"u\"], \"num_samples\": [1], \"user_data\": {\"u\": " +
                      FemnistUser(1).replace(FemnistUser(1).rfind("0]"), 2, "62]") + "}}");
  CHECK_THAT(LoadLeaf(dir.path(), "femnist").status().message(), Contains("class 0..61"));
  WriteText(file, "{\"users\": [\"u\"], ");
  CHECK_THAT(LoadLeaf(dir.path(), "femnist").status().message(),
             Contains("all_data_1_train.json") && Contains("not valid JSON"));
  WriteText(file, LeafFile({{"f0001_41", 1}}));  // a writer in two training files
  CHECK_THAT(LoadLeaf(dir.path(), "femnist").status().message(),
             Contains("more than one training file"));
  WriteText(file, LeafFile({{"f0100_12", 2}}));
  std::filesystem::remove_all(dir.File("test"));
  CHECK(LoadLeaf(dir.path(), "femnist").status().code() == StatusCode::kNotFound);
}

TEST_CASE("LEAF Shakespeare: 80-letter sequences over LEAF's vocabulary, next letter as label",
          "[data]") {
  const std::string& vocab = fedml::core::data::LeafShakespeareVocabulary();
  REQUIRE(vocab.size() == 80);
  CHECK(vocab.find('A') == 25);
  TempDir dir("shakespeare");
  std::string line;
  for (int i = 0; i < 80; ++i) line += "To be, or not to be: that is the question."[i % 42];
  const std::string user = "{\"x\": [\"" + line + "\", \"" + line + "\"], \"y\": [\"n\", \"}\"]}";
  const std::string file =
      "{\"users\": [\"THE_TRAGEDY_OF_HAMLET_HAMLET\"], \"num_samples\": [2], "
      "\"user_data\": {\"THE_TRAGEDY_OF_HAMLET_HAMLET\": " +
      user + "}}";
  WriteText(dir.File("train/a.json"), file);
  WriteText(dir.File("test/a.json"), file);
  auto data = LoadLeaf(dir.path(), "shakespeare");
  REQUIRE(data.ok());
  CHECK(data->train.sample_shape == std::vector<std::int64_t>{80});
  CHECK(data->train.num_classes == 80);
  CHECK(data->train.labels ==
        std::vector<std::int64_t>{static_cast<std::int64_t>(vocab.find('n')), 79});
  CHECK(data->train.features[0] == static_cast<float>(vocab.find('T')));
  CHECK(data->natural.num_clients() == 1);
  std::string bad_line = line;
  bad_line[3] = '#';  // not in the vocabulary
  WriteText(dir.File("train/a.json"),
            "{\"users\": [\"u\"], \"num_samples\": [1], \"user_data\": {\"u\": {\"x\": [\"" +
                bad_line + "\"], \"y\": [\"a\"]}}}");
  CHECK_THAT(LoadLeaf(dir.path(), "shakespeare").status().message(),
             Contains("a.json") && Contains("'#'") && Contains("80-letter vocabulary"));
  WriteText(
      dir.File("train/a.json"),
      "{\"users\": [\"u\"], \"num_samples\": [1], \"user_data\": {\"u\": {\"x\": [\"short\"], "
      "\"y\": [\"a\"]}}}");
  CHECK_THAT(LoadLeaf(dir.path(), "shakespeare").status().message(),
             Contains("80-character string"));
}

TEST_CASE(
    "A directory of .npy files loads as a data set, with client ids as its natural "
    "partition",
    "[data]") {
  TempDir dir("npy");
  const std::vector<float> x = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
                                13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};  // 4 samples of 2 x 3
  WriteBytes(dir.File("x_train.npy"), Npy("<f4", "(4, 2, 3)", LittleEndian(x)));
  WriteBytes(dir.File("y_train.npy"), Npy("<i8", "(4,)", LittleEndian<std::int64_t>({3, 0, 1, 3})));
  WriteBytes(dir.File("client_train.npy"),
             Npy("<i4", "(4,)", LittleEndian<std::int32_t>({7, 2, 7, 2}), false, 2));
  WriteBytes(dir.File("x_test.npy"), Npy("|u1", "(1, 2, 3)", {9, 8, 7, 6, 5, 255}));
  WriteBytes(dir.File("y_test.npy"), Npy("|u1", "(1,)", {4}));
  auto data = LoadNpyDirectory(dir.path());
  REQUIRE(data.ok());
  CHECK(data->train.sample_shape == std::vector<std::int64_t>{2, 3});
  CHECK(data->train.features == x);
  CHECK(data->train.labels == std::vector<std::int64_t>{3, 0, 1, 3});
  CHECK(data->train.num_classes == 5);  // the largest label anywhere + 1
  CHECK(data->test.features[5] == 255.0F);
  CHECK(data->natural_clients == std::vector<std::string>{"2", "7"});
  REQUIRE(data->natural.num_clients() == 2);
  CHECK(data->natural.client_indices[0] == std::vector<std::int64_t>{1, 3});
  CHECK(data->natural.client_indices[1] == std::vector<std::int64_t>{0, 2});

  // Malformed files, each named with what is expected.
  const std::string f = dir.File("y_test.npy");
  struct Bad {
    std::vector<std::uint8_t> bytes;
    const char* says;
  };
  std::vector<std::uint8_t> truncated = Npy("|u1", "(3,)", {1, 2});
  std::vector<std::uint8_t> not_npy = {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<Bad> cases = {
      {not_npy, "not a .npy file"},
      {Npy(">f4", "(1,)", {0, 0, 0, 0}), "big-endian"},
      {Npy("<c8", "(1,)", std::vector<std::uint8_t>(8, 0)), "not supported"},
      {Npy("|u1", "(1,)", {4}, true), "Fortran-order"},
      {truncated, "promise 3 bytes"},
      {Npy("<f4", "(1,)", {0, 0, 128, 63}), "integer type"},
      {Npy("|u1", "(2,)", {1, 2}), "2 labels for 1 samples"},
      {Npy("<i2", "(1,)", {0xff, 0xff}), "must be >= 0"},
      {Npy("<f99999999999999999999", "(1,)", {0}), "is not a plain numeric type"},
  };
  for (const Bad& b : cases) {
    WriteBytes(f, b.bytes);
    auto r = LoadNpyDirectory(dir.path());
    INFO(b.says);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Contains("y_test.npy") && Contains(b.says));
  }
  WriteBytes(f, Npy("<i8", "(1,)", LittleEndian<std::int64_t>({std::int64_t{1} << 40})));
  CHECK_THAT(LoadNpyDirectory(dir.path()).status().message(), Contains("below 2^20"));
  std::vector<std::uint8_t> garbage = Npy("|u1", "(1,)", {4});
  garbage[10] = '[';  // the dict's '{'
  WriteBytes(f, garbage);
  CHECK_THAT(LoadNpyDirectory(dir.path()).status().message(),
             Contains("not the dict numpy writes"));
  auto missing = LoadNpy(dir.File("nothing.npy"));
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(LoadDatasetFiles("imagenet", dir.path()).status().code() == StatusCode::kInvalidArgument);
}
