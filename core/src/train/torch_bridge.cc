#include "fedml/core/train/torch_bridge.h"

#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/serialize.h>

#include <cstdio>
#include <fstream>

namespace fedml::core {

DType DTypeFromTorch(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return DType::kFloat32;
    case c10::kDouble:
      return DType::kFloat64;
    case c10::kHalf:
      return DType::kFloat16;
    case c10::kBFloat16:
      return DType::kBFloat16;
    case c10::kLong:
      return DType::kInt64;
    case c10::kInt:
      return DType::kInt32;
    case c10::kShort:
      return DType::kInt16;
    case c10::kChar:
      return DType::kInt8;
    case c10::kByte:
      return DType::kUInt8;
    case c10::kBool:
      return DType::kBool;
    default:
      return DType::kFloat32;
  }
}

c10::ScalarType TorchFromDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return c10::kFloat;
    case DType::kFloat64:
      return c10::kDouble;
    case DType::kFloat16:
      return c10::kHalf;
    case DType::kBFloat16:
      return c10::kBFloat16;
    case DType::kInt64:
      return c10::kLong;
    case DType::kInt32:
      return c10::kInt;
    case DType::kInt16:
      return c10::kShort;
    case DType::kInt8:
      return c10::kChar;
    case DType::kUInt8:
      return c10::kByte;
    case DType::kBool:
      return c10::kBool;
  }
  return c10::kFloat;
}

namespace {

// Parameters first, then buffers: the order torch's state_dict() uses for a flat module, and
// stable across processes because registration order is part of the module's code.
std::vector<std::pair<std::string, torch::Tensor>> NamedTensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace

Result<ModelState> StateFromModule(const torch::nn::Module& module) {
  ModelState state;
  Status st = CatchTorch("reading module state", [&] {
    for (const auto& [name, tensor] : NamedTensors(module)) {
      torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
      const auto sizes = t.sizes();
      auto added = state.Add(name, std::vector<std::int64_t>(sizes.begin(), sizes.end()),
                             t.data_ptr<float>(), DTypeFromTorch(tensor.scalar_type()));
      if (!added.ok()) throw std::runtime_error(added.message());
    }
  });
  if (!st.ok()) return st;
  return state;
}

Status LoadStateIntoModule(const ModelState& state, torch::nn::Module& module) {
  auto named = NamedTensors(module);
  if (named.size() != state.num_tensors()) {
    return Status::InvalidArgument("model state has " + std::to_string(state.num_tensors()) +
                                   " tensors but the module has " + std::to_string(named.size()));
  }
  for (std::size_t i = 0; i < named.size(); ++i) {
    const TensorSpec& spec = state.specs()[i];
    const auto& [name, tensor] = named[i];
    if (spec.name != name) {
      return Status::InvalidArgument("model state tensor " + std::to_string(i) + " is '" +
                                     spec.name + "' but the module's is '" + name + "'");
    }
    const auto sizes = tensor.sizes();
    if (std::vector<std::int64_t>(sizes.begin(), sizes.end()) != spec.shape) {
      return Status::InvalidArgument("model state tensor '" + name +
                                     "' does not match the module's shape " +
                                     c10::str(tensor.sizes()));
    }
  }
  return CatchTorch("loading model state", [&] {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < named.size(); ++i) {
      const TensorSpec& spec = state.specs()[i];
      torch::Tensor& dst = named[i].second;
      torch::Tensor src = torch::from_blob(const_cast<float*>(state.data() + spec.offset),
                                           dst.sizes(), torch::kFloat);
      if (c10::isIntegralType(dst.scalar_type(), /*includeBool=*/true)) src = src.round();
      dst.copy_(src);
    }
  });
}

Status SaveStateForPyTorch(const ModelState& state, const std::string& path) {
  std::vector<char> bytes;
  Status st = CatchTorch("serialising model", [&] {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const TensorSpec& spec : state.specs()) {
      torch::Tensor t = torch::from_blob(const_cast<float*>(state.data() + spec.offset), spec.shape,
                                         torch::kFloat)
                            .clone();
      if (spec.dtype != DType::kFloat32) {
        if (c10::isIntegralType(TorchFromDType(spec.dtype), true)) t = t.round();
        t = t.to(TorchFromDType(spec.dtype));
      }
      dict.insert(spec.name, t);
    }
    bytes = torch::pickle_save(c10::IValue(dict));
  });
  if (!st.ok()) return st;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::NotFound("cannot open '" + tmp + "' for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return Status::DataLoss("writing '" + tmp + "' failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::DataLoss("cannot rename '" + tmp + "' to '" + path + "'");
  }
  return Status::Ok();
}

Result<torch::Device> ParseDevice(const std::string& device) {
  if (device.empty() || device == "cpu") return torch::Device(torch::kCPU);
  if (device.rfind("cuda", 0) == 0) {
    int index = 0;
    if (device.size() > 4) {
      if (device[4] != ':' || device.size() == 5 ||
          device.find_first_not_of("0123456789", 5) != std::string::npos) {
        return Status::InvalidArgument("device '" + device + "' is not valid; use cpu or cuda:N");
      }
      index = std::stoi(device.substr(5));
    }
    if (!torch::cuda::is_available()) {
      return Status::FailedPrecondition(
          "device '" + device +
          "' asked for, but this LibTorch build or this machine has no CUDA (Debian's "
          "libtorch-dev is CPU-only; build against a CUDA LibTorch, see docs/gpu.md) — use "
          "device: cpu");
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count) {
      return Status::InvalidArgument("device '" + device + "' asked for, but only " +
                                     std::to_string(count) + " CUDA device(s) exist");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return Status::InvalidArgument("device '" + device + "' is not valid; use cpu or cuda:N");
}

std::optional<c10::Stream> WorkerStream(torch::Device device) {
  if (device.is_cpu()) return std::nullopt;
  try {
    const c10::impl::VirtualGuardImpl impl(device.type());
    return impl.getStreamFromGlobalPool(device);
  } catch (const c10::Error&) {
    return std::nullopt;  // no pool for this backend: the current stream serves
  }
}

}  // namespace fedml::core
