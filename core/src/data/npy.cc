// NumPy .npy files and the tensor data set directory (fedml/core/data/dataset.h).
//
// The format (numpy.lib.format, versions 1.0-3.0): the magic "\x93NUMPY", a major and a minor
// version byte, the header's length (2 bytes little-endian for version 1, 4 for 2 and 3), then
// the header: a Python dict literal {'descr': <type>, 'fortran_order': <bool>, 'shape': <tuple>}
// padded with spaces and ended by '\n'; then the array's bytes.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "data_files.h"
#include "fedml/core/data/dataset.h"

namespace fedml::core::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMaxHeaderBytes = 1 << 16;

// The array types read, by their descr without the byte-order character.
struct NpyType {
  char kind;  // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  std::size_t size;
};

// A cursor over the header's dict literal.
class HeaderReader {
 public:
  HeaderReader(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  void SkipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  Status Expect(char c, const char* what) {
    if (Eat(c)) return Status::Ok();
    return Error(std::string("expected ") + what);
  }
  Result<std::string> QuotedString() {
    SkipSpace();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) {
      return Error("expected a quoted string");
    }
    const char quote = s_[pos_++];
    const std::size_t end = s_.find(quote, pos_);
    if (end == std::string::npos) return Error("a string is not closed");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  Result<std::string> Word() {
    SkipSpace();
    const std::size_t start = pos_;
    while (pos_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == start) return Error("expected a value");
    return s_.substr(start, pos_ - start);
  }
  Result<std::vector<std::int64_t>> Tuple() {
    FEDML_RETURN_IF_ERROR(Expect('(', "'(' opening the shape"));
    std::vector<std::int64_t> dims;
    while (!Eat(')')) {
      FEDML_ASSIGN_OR_RETURN(const std::string w, Word());
      if (w.size() > 18 || w.find_first_not_of("0123456789") != std::string::npos) {
        return Error("the shape holds '" + w + "', not a dimension");
      }
      dims.push_back(std::stoll(w));
      if (!Eat(',')) {
        FEDML_RETURN_IF_ERROR(Expect(')', "',' or ')' in the shape"));
        break;
      }
    }
    return dims;
  }
  Status Error(const std::string& what) const {
    return Status::DataLoss(path_ + ": the .npy header (" + std::to_string(s_.size()) +
                            " bytes) is not the dict numpy writes: " + what + " at byte " +
                            std::to_string(pos_));
  }

 private:
  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

Result<NpyType> ParseDescr(const std::string& descr, const std::string& path) {
  const auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument(path + ": array type '" + descr + "' " + why +
                                   "; allowed: float32/64 ('<f4', '<f8'), int8/16/32/64, "
                                   "uint8/16/32/64, bool, little-endian or byte-sized");
  };
  if (descr.size() < 3) return refuse("is not a NumPy type string");
  const char order = descr[0];
  const char kind = descr[1];
  const std::string size_text = descr.substr(2);
  if (size_text.size() > 2 || size_text.find_first_not_of("0123456789") != std::string::npos) {
    return refuse("is not a plain numeric type");
  }
  const std::size_t size = std::stoul(size_text);
  const bool ok_kind =
      (kind == 'f' && (size == 4 || size == 8)) ||
      ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
      (kind == 'b' && size == 1);
  if (!ok_kind) return refuse("is not supported");
  if (order == '>' && size > 1) return refuse("is big-endian");
  if (order != '<' && order != '|' && order != '=' && !(order == '>' && size == 1)) {
    return refuse("has an unknown byte order");
  }
  return NpyType{kind, size};
}

double ReadValue(const std::uint8_t* p, const NpyType& type) {
  std::uint64_t raw = 0;
  for (std::size_t b = 0; b < type.size; ++b) raw |= std::uint64_t{p[b]} << (8 * b);
  switch (type.kind) {
    case 'f':
      if (type.size == 4) {
        const auto bits = static_cast<std::uint32_t>(raw);
        float f = 0;
        std::memcpy(&f, &bits, sizeof(f));
        return f;
      } else {
        double d = 0;
        std::memcpy(&d, &raw, sizeof(d));
        return d;
      }
    case 'i': {
      const unsigned shift = static_cast<unsigned>(64 - 8 * type.size);
      return static_cast<double>(static_cast<std::int64_t>(raw << shift) >> shift);
    }
    default:
      return static_cast<double>(raw);
  }
}

// The integer column `name` of the directory (labels or client ids): shape (n,), values >= 0.
Result<std::vector<std::int64_t>> IntegerColumn(const std::string& path, std::size_t n,
                                                const char* what) {
  FEDML_ASSIGN_OR_RETURN(const NpyArray a, LoadNpy(path));
  if (!a.integral || a.shape.size() != 1) {
    return Status::InvalidArgument(path + ": " + what +
                                   " must be a one-dimensional array of an integer type");
  }
  if (static_cast<std::size_t>(a.shape[0]) != n) {
    return Status::DataLoss(path + ": " + std::to_string(a.shape[0]) + " " + what + " for " +
                            std::to_string(n) + " samples");
  }
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (a.values[i] < 0) {
      return Status::DataLoss(path + ": entry " + std::to_string(i) + " is " +
                              std::to_string(static_cast<std::int64_t>(a.values[i])) + "; " + what +
                              " must be >= 0");
    }
    out[i] = static_cast<std::int64_t>(a.values[i]);
  }
  return out;
}

Result<Dataset> LoadSplit(const std::string& directory, const std::string& split) {
  const std::string x_path = (std::filesystem::path(directory) / ("x_" + split + ".npy")).string();
  const std::string y_path = (std::filesystem::path(directory) / ("y_" + split + ".npy")).string();
  FEDML_ASSIGN_OR_RETURN(const NpyArray x, LoadNpy(x_path));
  if (x.shape.empty()) {
    return Status::InvalidArgument(x_path + ": a scalar; features must have shape (N, ...)");
  }
  const auto n = static_cast<std::size_t>(x.shape[0]);
  if (n == 0) return Status::InvalidArgument(x_path + ": no samples");
  Dataset ds;
  ds.sample_shape.assign(x.shape.begin() + 1, x.shape.end());
  if (ds.sample_shape.empty()) ds.sample_shape = {1};
  ds.features.resize(x.values.size());
  for (std::size_t i = 0; i < x.values.size(); ++i) {
    const double v = x.values[i];
    if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
      return Status::DataLoss(x_path + ": value " + std::to_string(i) + " is not a finite float32");
    }
    ds.features[i] = static_cast<float>(v);
  }
  FEDML_ASSIGN_OR_RETURN(ds.labels, IntegerColumn(y_path, n, "labels"));
  return ds;
}

}  // namespace

Result<NpyArray> LoadNpy(const std::string& path) {
  FEDML_ASSIGN_OR_RETURN(const std::vector<std::uint8_t> bytes, ReadDataFile(path, "a .npy file"));
  const std::size_t magic_len = sizeof(kMagic) - 1;
  if (bytes.size() < magic_len + 4 || std::memcmp(bytes.data(), kMagic, magic_len) != 0) {
    return Status::DataLoss(path + ": not a .npy file (it does not start with \"\\x93NUMPY\")");
  }
  const int major = bytes[magic_len];
  if (major < 1 || major > 3) {
    return Status::DataLoss(path + ": .npy format version " + std::to_string(major) +
                            " is not supported; allowed: 1, 2, 3");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < magic_len + 2 + len_bytes) {
    return Status::DataLoss(path + ": truncated in the .npy preamble");
  }
  std::size_t header_len = 0;
  for (std::size_t b = 0; b < len_bytes; ++b) {
    header_len |= std::size_t{bytes[magic_len + 2 + b]} << (8 * b);
  }
  const std::size_t data_at = magic_len + 2 + len_bytes + header_len;
  if (header_len > kMaxHeaderBytes || data_at > bytes.size()) {
    return Status::DataLoss(path + ": the .npy header claims " + std::to_string(header_len) +
                            " bytes; the file holds " + std::to_string(bytes.size()) +
                            " in all (at most 65536 allowed)");
  }
  const std::string header(bytes.begin() + static_cast<std::ptrdiff_t>(magic_len + 2 + len_bytes),
                           bytes.begin() + static_cast<std::ptrdiff_t>(data_at));
  HeaderReader r(header, path);
  FEDML_RETURN_IF_ERROR(r.Expect('{', "'{'"));
  std::map<std::string, bool> seen;
  std::string descr;
  bool fortran = false;
  NpyArray out;
  while (!r.Eat('}')) {
    FEDML_ASSIGN_OR_RETURN(const std::string key, r.QuotedString());
    FEDML_RETURN_IF_ERROR(r.Expect(':', "':' after a key"));
    if (key == "descr") {
      FEDML_ASSIGN_OR_RETURN(descr, r.QuotedString());
    } else if (key == "fortran_order") {
      FEDML_ASSIGN_OR_RETURN(const std::string w, r.Word());
      if (w != "True" && w != "False") return r.Error("fortran_order is '" + w + "'");
      fortran = w == "True";
    } else if (key == "shape") {
      FEDML_ASSIGN_OR_RETURN(out.shape, r.Tuple());
    } else {
      return r.Error("unknown key '" + key + "'");
    }
    seen[key] = true;
    if (!r.Eat(',')) {
      FEDML_RETURN_IF_ERROR(r.Expect('}', "',' or '}'"));
      break;
    }
  }
  if (seen.size() != 3) return r.Error("descr, fortran_order and shape are all required");
  if (fortran) {
    return Status::InvalidArgument(path +
                                   ": a Fortran-order array; save it in C order "
                                   "(numpy.ascontiguousarray) first");
  }
  FEDML_ASSIGN_OR_RETURN(const NpyType type, ParseDescr(descr, path));
  std::size_t count = 1;
  for (std::int64_t d : out.shape) {
    const auto dim = static_cast<std::size_t>(d);
    if (dim != 0 && count > (bytes.size() / type.size) / dim + 1) {
      return Status::DataLoss(path + ": the shape promises more values than the file holds");
    }
    count *= dim;
  }
  const std::size_t payload = bytes.size() - data_at;
  if (payload != count * type.size) {
    return Status::DataLoss(path + ": the shape and type promise " +
                            std::to_string(count * type.size) + " bytes of data; the file holds " +
                            std::to_string(payload));
  }
  out.integral = type.kind == 'i' || type.kind == 'u' || type.kind == 'b';
  out.values.resize(count);
  const std::uint8_t* p = bytes.data() + data_at;
  for (std::size_t i = 0; i < count; ++i) {
    out.values[i] = ReadValue(p + i * type.size, type);
    if (out.integral && std::fabs(out.values[i]) > 9007199254740992.0) {
      return Status::DataLoss(path + ": value " + std::to_string(i) +
                              " is beyond 2^53, where it would not convert exactly");
    }
  }
  return out;
}

Result<TrainTest> LoadNpyDirectory(const std::string& directory) {
  TrainTest out;
  FEDML_ASSIGN_OR_RETURN(out.train, LoadSplit(directory, "train"));
  FEDML_ASSIGN_OR_RETURN(out.test, LoadSplit(directory, "test"));
  if (out.train.sample_shape != out.test.sample_shape) {
    return Status::DataLoss(directory +
                            ": x_train.npy and x_test.npy hold samples of different "
                            "shapes");
  }
  // A classifier's output layer has one unit per class: a label beyond this is a mistake.
  constexpr std::int64_t kMaxClasses = 1 << 20;
  std::int64_t max_label = 0;
  for (std::int64_t y : out.train.labels) max_label = std::max(max_label, y);
  for (std::int64_t y : out.test.labels) max_label = std::max(max_label, y);
  if (max_label >= kMaxClasses) {
    return Status::InvalidArgument(directory + ": the largest label is " +
                                   std::to_string(max_label) + "; labels must be class indices " +
                                   "below 2^20 (0..num_classes-1)");
  }
  out.train.num_classes = out.test.num_classes = static_cast<int>(max_label + 1);
  const std::string clients = (std::filesystem::path(directory) / "client_train.npy").string();
  std::error_code ec;
  if (std::filesystem::exists(clients, ec)) {
    FEDML_ASSIGN_OR_RETURN(const std::vector<std::int64_t> ids,
                           IntegerColumn(clients, out.train.size(), "client ids"));
    std::map<std::int64_t, std::vector<std::int64_t>> by_id;
    for (std::size_t i = 0; i < ids.size(); ++i)
      by_id[ids[i]].push_back(static_cast<std::int64_t>(i));
    for (auto& [id, samples] : by_id) {
      out.natural.client_indices.push_back(std::move(samples));
      out.natural_clients.push_back(std::to_string(id));
    }
  }
  return out;
}

}  // namespace fedml::core::data
