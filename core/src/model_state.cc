#include "fedml/core/model_state.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string_view>
#include <unordered_set>

namespace fedml::core {

std::string DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kInt16:
      return "int16";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kBool:
      return "bool";
  }
  return "invalid(" + std::to_string(static_cast<int>(dtype)) + ")";
}

bool IsValidDType(std::uint32_t raw) { return raw >= 1 && raw <= 10; }

bool IsFloatingPoint(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBFloat16;
}

std::size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
      return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::size_t TensorSpec::numel() const {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

static std::string ShapeString(const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Result<float*> ModelState::AddZeros(const std::string& name, const std::vector<std::int64_t>& shape,
                                    DType original_dtype) {
  if (name.empty()) return Status::InvalidArgument("tensor name must not be empty");
  if (Find(name) >= 0) {
    return Status::InvalidArgument("duplicate tensor name '" + name + "' in model state");
  }
  for (auto d : shape) {
    if (d < 0) {
      return Status::InvalidArgument("tensor '" + name + "' has negative dimension in shape " +
                                     ShapeString(shape));
    }
  }
  TensorSpec spec{name, original_dtype, shape, values_.size()};
  values_.resize(values_.size() + spec.numel(), 0.0f);
  specs_.push_back(std::move(spec));
  return values_.data() + specs_.back().offset;
}

Status ModelState::Add(const std::string& name, const std::vector<std::int64_t>& shape,
                       const float* values, DType original_dtype) {
  FEDML_ASSIGN_OR_RETURN(float* dst, AddZeros(name, shape, original_dtype));
  const std::size_t n = specs_.back().numel();
  if (n > 0) std::memcpy(dst, values, n * sizeof(float));
  return Status::Ok();
}

ModelState ModelState::ZerosLike(const ModelState& other) {
  ModelState out;
  out.specs_ = other.specs_;
  out.values_.assign(other.values_.size(), 0.0f);
  return out;
}

Result<ModelState> ModelState::ZerosFromSpecs(std::vector<TensorSpec> specs) {
  std::unordered_set<std::string_view> names;
  names.reserve(specs.size());
  std::size_t total = 0;
  for (TensorSpec& spec : specs) {
    if (spec.name.empty()) return Status::InvalidArgument("tensor name must not be empty");
    if (!names.insert(spec.name).second) {
      return Status::InvalidArgument("duplicate tensor name '" + spec.name + "' in model state");
    }
    std::size_t n = 1;
    bool zero = false;
    for (auto d : spec.shape) {
      if (d < 0) {
        return Status::InvalidArgument("tensor '" + spec.name +
                                       "' has negative dimension in shape " +
                                       ShapeString(spec.shape));
      }
      zero = zero || d == 0;
    }
    for (auto d : spec.shape) {
      if (zero) break;
      const auto ud = static_cast<std::size_t>(d);
      if (n > std::numeric_limits<std::size_t>::max() / ud) {
        return Status::InvalidArgument("tensor '" + spec.name + "': element count of shape " +
                                       ShapeString(spec.shape) + " overflows");
      }
      n *= ud;
    }
    if (zero) n = 0;
    if (n > std::numeric_limits<std::size_t>::max() - total) {
      return Status::InvalidArgument("model state element count overflows");
    }
    spec.offset = total;
    total += n;
  }
  ModelState out;
  out.values_.assign(total, 0.0f);
  out.specs_ = std::move(specs);
  return out;
}

int ModelState::Find(const std::string& name) const {
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const float* ModelState::TensorData(const std::string& name) const {
  const int i = Find(name);
  return i < 0 ? nullptr : values_.data() + specs_[i].offset;
}

float* ModelState::TensorData(const std::string& name) {
  const int i = Find(name);
  return i < 0 ? nullptr : values_.data() + specs_[i].offset;
}

Status ModelState::CheckSameLayout(const ModelState& other, const std::string& what) const {
  if (specs_.size() != other.specs_.size()) {
    return Status::InvalidArgument(what + " has " + std::to_string(other.specs_.size()) +
                                   " tensors, expected " + std::to_string(specs_.size()));
  }
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const TensorSpec& a = specs_[i];
    const TensorSpec& b = other.specs_[i];
    if (a.name != b.name) {
      return Status::InvalidArgument(what + ": tensor " + std::to_string(i) + " is '" + b.name +
                                     "', expected '" + a.name + "'");
    }
    if (a.shape != b.shape) {
      return Status::InvalidArgument(what + ": tensor '" + a.name + "' has shape " +
                                     ShapeString(b.shape) + ", expected " + ShapeString(a.shape));
    }
    if (a.dtype != b.dtype) {
      return Status::InvalidArgument(what + ": tensor '" + a.name + "' has dtype " +
                                     DTypeName(b.dtype) + ", expected " + DTypeName(a.dtype));
    }
  }
  return Status::Ok();
}

Status ModelState::CheckFinite() const {
  for (const TensorSpec& s : specs_) {
    const float* p = values_.data() + s.offset;
    const std::size_t n = s.numel();
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(p[i])) {
        return Status::InvalidArgument("tensor '" + s.name + "' holds a non-finite value (" +
                                       std::to_string(p[i]) + ") at element " + std::to_string(i) +
                                       "; only finite values are allowed");
      }
    }
  }
  return Status::Ok();
}

double L2Distance(const ModelState& a, const ModelState& b) {
  double sum = 0.0;
  const std::size_t n = std::min(a.numel(), b.numel());
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a.data()[i]) - b.data()[i];
    sum += d * d;
  }
  return std::sqrt(sum);
}

}  // namespace fedml::core
