// ModelState: an ordered set of named tensors (a model's parameters and buffers) held in one
// contiguous float32 buffer, the "flat view" that aggregation, the wire codec and secure
// aggregation work on. Torch-free on purpose: communication, aggregation and crypto code include
// this header without paying for LibTorch (see fedml/core/train/torch_bridge.h for the bridge).
//
// Values are carried in float32 whatever the tensor's original dtype; `TensorSpec::dtype` records
// that dtype so that loading into a module restores it (integer buffers such as BatchNorm's
// num_batches_tracked are rounded back; float64 models are carried at float32 precision).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core {

enum class DType : std::uint8_t {
  kFloat32 = 1,
  kFloat64 = 2,
  kFloat16 = 3,
  kBFloat16 = 4,
  kInt64 = 5,
  kInt32 = 6,
  kInt16 = 7,
  kInt8 = 8,
  kUInt8 = 9,
  kBool = 10,
};

/// "float32", "int64", ...; "invalid(N)" for a value outside the enum.
std::string DTypeName(DType dtype);
/// True for the values listed in DType.
bool IsValidDType(std::uint32_t raw);
/// True for the floating-point dtypes (float32/64, float16, bfloat16): the tensors an optimizer
/// steps and an attack or DP noise touches; integer buffers (counters) are left alone.
bool IsFloatingPoint(DType dtype);
/// Bytes per element of `dtype` on the wire (little-endian).
std::size_t DTypeSize(DType dtype);

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;  // the tensor's original dtype
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  // first element in the flat buffer
  std::size_t numel() const;
  bool operator==(const TensorSpec& o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape && offset == o.offset;
  }
};

/// Thread-compatible value type. Copying copies the whole buffer (model-sized): move it where you
/// can. Tensor names are unique.
class ModelState {
 public:
  ModelState() = default;

  /// Appends a tensor; `values` holds numel(shape) floats (copied). Fails on a duplicate or empty
  /// name, or a negative dimension.
  Status Add(const std::string& name, const std::vector<std::int64_t>& shape, const float* values,
             DType original_dtype = DType::kFloat32);
  /// Appends a zero-filled tensor and returns a pointer to its values (valid until the next Add).
  Result<float*> AddZeros(const std::string& name, const std::vector<std::int64_t>& shape,
                          DType original_dtype = DType::kFloat32);

  /// A state with the same layout (names, shapes, dtypes) and all values zero.
  static ModelState ZerosLike(const ModelState& other);
  /// A zero-filled state holding `specs` in order (their offsets are recomputed). Fails as Add
  /// does (empty or duplicate name, negative dimension) and on an element count that overflows.
  /// Linear in the number of tensors, where one Add per tensor is quadratic (each Add checks the
  /// name against every earlier one): decoders of untrusted headers use this.
  static Result<ModelState> ZerosFromSpecs(std::vector<TensorSpec> specs);

  const std::vector<TensorSpec>& specs() const { return specs_; }
  std::size_t num_tensors() const { return specs_.size(); }
  /// Total number of elements across all tensors (the length of the flat view).
  std::size_t numel() const { return values_.size(); }
  bool empty() const { return specs_.empty(); }

  /// The flat view, tensors back to back in order. Pointer valid until the next Add.
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }
  std::vector<float>& flat() { return values_; }
  const std::vector<float>& flat() const { return values_; }

  /// Index of the named tensor, or -1.
  int Find(const std::string& name) const;
  /// Values of one tensor; nullptr if absent.
  const float* TensorData(const std::string& name) const;
  float* TensorData(const std::string& name);

  /// OK when `other` has the same tensor names, order, shapes and dtypes; otherwise an
  /// INVALID_ARGUMENT that names the first disagreement (`what` prefixes the message).
  Status CheckSameLayout(const ModelState& other, const std::string& what = "model state") const;
  /// OK when every value is finite; otherwise names the first tensor holding NaN or Inf.
  Status CheckFinite() const;

  /// Layout and values equal (bitwise on values).
  bool operator==(const ModelState& o) const { return specs_ == o.specs_ && values_ == o.values_; }
  bool operator!=(const ModelState& o) const { return !(*this == o); }

 private:
  std::vector<TensorSpec> specs_;
  std::vector<float> values_;
};

/// L2 norm of a - b over the flat views (layouts must match).
double L2Distance(const ModelState& a, const ModelState& b);

}  // namespace fedml::core
