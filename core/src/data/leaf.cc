// LEAF's JSON data sets, FEMNIST and Shakespeare, with their natural partition
// (fedml/core/data/dataset.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data_files.h"
#include "fedml/core/data/dataset.h"
#include "fedml/core/json.h"

namespace fedml::core::data {
namespace {

constexpr std::size_t kFemnistPixels = 28 * 28;
constexpr int kFemnistClasses = 62;
constexpr std::size_t kShakespeareSequence = 80;

const json::Value* Member(const json::Value& object, const std::string& name) {
  for (const auto& [key, value] : object.members) {
    if (key == name) return &value;
  }
  return nullptr;
}

// One LEAF file's samples, appended to `out`; the users in file order and their sample counts
// appended to `users` / `counts`.
class LeafReader {
 public:
  LeafReader(const std::string& dataset, Dataset& out) : dataset_(dataset), out_(out) {}

  Status ReadFile(const std::string& path, std::vector<std::string>& users,
                  std::vector<std::size_t>& counts) {
    FEDML_ASSIGN_OR_RETURN(const std::vector<std::uint8_t> bytes,
                           ReadDataFile(path, "a LEAF JSON file"));
    json::ParseOptions options;
    options.max_bytes = bytes.size() + 1;  // a data file, not a config: no size limit of its own
    options.input = "the LEAF file";
    auto parsed = json::Parse(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), options);
    if (!parsed.ok()) return Status::DataLoss(path + ": " + parsed.status().message());
    const json::Value& root = parsed.value();
    const auto fail = [&](const std::string& what) {
      return Status::DataLoss(path + ": " + what +
                              " (LEAF's layout: {\"users\": [...], \"num_samples\": [...], "
                              "\"user_data\": {user: {\"x\": [...], \"y\": [...]}}})");
    };
    if (root.kind != json::Value::Kind::kObject) return fail("the file is not a JSON object");
    const json::Value* user_list = Member(root, "users");
    const json::Value* num_samples = Member(root, "num_samples");
    const json::Value* user_data = Member(root, "user_data");
    if (user_list == nullptr || user_list->kind != json::Value::Kind::kArray) {
      return fail("\"users\" is missing or not an array");
    }
    if (num_samples == nullptr || num_samples->kind != json::Value::Kind::kArray ||
        num_samples->items.size() != user_list->items.size()) {
      return fail("\"num_samples\" is missing, not an array, or not one count per user");
    }
    if (user_data == nullptr || user_data->kind != json::Value::Kind::kObject) {
      return fail("\"user_data\" is missing or not an object");
    }
    // Users by name, indexed once: a Shakespeare file lists about a thousand of them.
    std::map<std::string, const json::Value*> data_of;
    for (const auto& [key, value] : user_data->members) data_of.emplace(key, &value);
    for (std::size_t u = 0; u < user_list->items.size(); ++u) {
      const json::Value& name = user_list->items[u];
      if (name.kind != json::Value::Kind::kString)
        return fail("user " + std::to_string(u) + " is not a string");
      const auto found = data_of.find(name.text);
      const json::Value* data = found == data_of.end() ? nullptr : found->second;
      const std::string who = "user " + json::DescribeBytes(name.text);
      if (data == nullptr || data->kind != json::Value::Kind::kObject) {
        return fail(who + " has no object in \"user_data\"");
      }
      const json::Value* x = Member(*data, "x");
      const json::Value* y = Member(*data, "y");
      if (x == nullptr || y == nullptr || x->kind != json::Value::Kind::kArray ||
          y->kind != json::Value::Kind::kArray || x->items.size() != y->items.size()) {
        return fail(who + ": \"x\" and \"y\" must be arrays of the same length");
      }
      const std::string& count_text = num_samples->items[u].text;
      if (num_samples->items[u].kind != json::Value::Kind::kNumber ||
          count_text != std::to_string(x->items.size())) {
        return fail(who + ": num_samples says " + json::DescribeBytes(count_text) +
                    " but x holds " + std::to_string(x->items.size()) + " samples");
      }
      for (std::size_t i = 0; i < x->items.size(); ++i) {
        Status st = dataset_ == "femnist" ? AppendFemnist(x->items[i], y->items[i])
                                          : AppendShakespeare(x->items[i], y->items[i]);
        if (!st.ok()) return fail(who + ", sample " + std::to_string(i) + ": " + st.message());
      }
      users.push_back(name.text);
      counts.push_back(x->items.size());
    }
    return Status::Ok();
  }

 private:
  Status AppendFemnist(const json::Value& x, const json::Value& y) {
    if (x.kind != json::Value::Kind::kArray || x.items.size() != kFemnistPixels) {
      return Status::DataLoss("x is not a list of 784 pixels");
    }
    for (const json::Value& v : x.items) {
      char* end = nullptr;
      const float f = v.kind == json::Value::Kind::kNumber ? std::strtof(v.text.c_str(), &end) : 0;
      if (v.kind != json::Value::Kind::kNumber || end == v.text.c_str() || *end != '\0' ||
          !std::isfinite(f)) {
        return Status::DataLoss("a pixel is " + json::DescribeBytes(v.text) + ", not a number");
      }
      out_.features.push_back(f);
    }
    const std::string& t = y.text;
    if (y.kind != json::Value::Kind::kNumber || t.empty() || t.size() > 3 ||
        t.find_first_not_of("0123456789") != std::string::npos || std::stoi(t) >= kFemnistClasses) {
      return Status::DataLoss("label " + json::DescribeBytes(t) + " is not a class 0..61");
    }
    out_.labels.push_back(std::stoi(t));
    return Status::Ok();
  }

  Status AppendShakespeare(const json::Value& x, const json::Value& y) {
    const std::string& vocabulary = LeafShakespeareVocabulary();
    if (x.kind != json::Value::Kind::kString || x.text.size() != kShakespeareSequence) {
      return Status::DataLoss("x is not an 80-character string");
    }
    if (y.kind != json::Value::Kind::kString || y.text.size() != 1) {
      return Status::DataLoss("y is not one character");
    }
    for (char c : x.text + y.text) {
      if (vocabulary.find(c) == std::string::npos) {
        return Status::DataLoss("the character " + json::DescribeBytes(std::string(1, c)) +
                                " is not in LEAF's 80-letter vocabulary");
      }
    }
    for (char c : x.text) out_.features.push_back(static_cast<float>(vocabulary.find(c)));
    out_.labels.push_back(static_cast<std::int64_t>(vocabulary.find(y.text[0])));
    return Status::Ok();
  }

  const std::string& dataset_;
  Dataset& out_;
};

Result<std::vector<std::string>> JsonFiles(const std::filesystem::path& dir,
                                           const std::string& dataset) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::NotFound(dataset + ": " + dir.string() +
                            " is not a directory; data_cache_dir must hold LEAF's train/ and "
                            "test/ (data/" +
                            dataset + "/data after LEAF's preprocessing)");
  }
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(entry.path().string());
    }
  }
  if (ec) return Status::Unavailable(dir.string() + ": cannot list: " + ec.message());
  if (files.empty()) return Status::NotFound(dataset + ": no *.json file in " + dir.string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

const std::string& LeafShakespeareVocabulary() {
  static const std::string kLetters =
      "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}";
  return kLetters;
}

Result<TrainTest> LoadLeaf(const std::string& directory, const std::string& dataset_name) {
  TrainTest out;
  if (dataset_name == "femnist") {
    out.train.sample_shape = {1, 28, 28};
    out.train.num_classes = kFemnistClasses;
  } else if (dataset_name == "shakespeare") {
    out.train.sample_shape = {static_cast<std::int64_t>(kShakespeareSequence)};
    out.train.num_classes = static_cast<int>(LeafShakespeareVocabulary().size());
  } else {
    return Status::InvalidArgument("unknown LEAF data set \"" + dataset_name +
                                   "\"; allowed: femnist, shakespeare");
  }
  out.test.sample_shape = out.train.sample_shape;
  out.test.num_classes = out.train.num_classes;
  const std::filesystem::path root(directory);
  std::vector<std::size_t> counts;
  {
    FEDML_ASSIGN_OR_RETURN(const std::vector<std::string> files,
                           JsonFiles(root / "train", dataset_name));
    LeafReader reader(dataset_name, out.train);
    for (const std::string& f : files) {
      FEDML_RETURN_IF_ERROR(reader.ReadFile(f, out.natural_clients, counts));
    }
  }
  std::map<std::string, int> seen;
  std::int64_t next = 0;
  for (std::size_t u = 0; u < counts.size(); ++u) {
    if (++seen[out.natural_clients[u]] > 1) {
      return Status::DataLoss(dataset_name + ": user " +
                              json::DescribeBytes(out.natural_clients[u]) +
                              " appears in more than one training file");
    }
    std::vector<std::int64_t> mine(counts[u]);
    for (auto& i : mine) i = next++;
    out.natural.client_indices.push_back(std::move(mine));
  }
  {
    FEDML_ASSIGN_OR_RETURN(const std::vector<std::string> files,
                           JsonFiles(root / "test", dataset_name));
    LeafReader reader(dataset_name, out.test);
    std::vector<std::string> test_users;
    std::vector<std::size_t> test_counts;
    for (const std::string& f : files) {
      FEDML_RETURN_IF_ERROR(reader.ReadFile(f, test_users, test_counts));
    }
  }
  if (out.train.size() == 0 || out.test.size() == 0) {
    return Status::DataLoss(dataset_name + ": " + directory + " holds no " +
                            (out.train.size() == 0 ? "training" : "test") + " samples");
  }
  return out;
}

}  // namespace fedml::core::data
