// The bridge between LibTorch modules and the torch-free ModelState.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::core {

/// Copies a module's parameters and buffers, in named_parameters() then named_buffers() order,
/// into a ModelState (values converted to float32, original dtypes recorded). Tensors on a GPU
/// are copied to the host. Thread-compatible: do not train `module` concurrently.
Result<ModelState> StateFromModule(const torch::nn::Module& module);

/// Loads `state` into `module` in place (on the module's device, in the tensors' dtypes).
/// INVALID_ARGUMENT, naming the tensor, when names, order or shapes disagree; the module is left
/// unchanged then (everything is checked before anything is written).
Status LoadStateIntoModule(const ModelState& state, torch::nn::Module& module);

DType DTypeFromTorch(c10::ScalarType type);
c10::ScalarType TorchFromDType(DType dtype);

/// Saves `state` as a dict {name: tensor} with torch::pickle_save, which PyTorch reads with
/// `torch.load(path)` (a state_dict). Written atomically (temporary file, then rename).
Status SaveStateForPyTorch(const ModelState& state, const std::string& path);

/// Parses "cpu", "cuda", "cuda:N"; a clear error when CUDA is asked for and this LibTorch build
/// or this machine has none.
Result<torch::Device> ParseDevice(const std::string& device);

/// A stream of its own on `device` for one worker, from LibTorch's per-device pool (CUDA hands out
/// its 32 pool streams per device round-robin), so that workers training different clients on one
/// GPU at once overlap instead of queueing on the default stream. Device-agnostic (no CUDA
/// headers): compiles against a CPU-only LibTorch. std::nullopt on the CPU, which has no streams,
/// and where the backend offers no pool (the caller then runs on the current stream).
std::optional<c10::Stream> WorkerStream(torch::Device device);

/// Makes `stream` (a WorkerStream) this thread's current stream on its device for the scope's
/// lifetime and restores the previous one after; does nothing for std::nullopt.
class StreamScope {
 public:
  explicit StreamScope(const std::optional<c10::Stream>& stream) {
    if (stream) guard_.reset_stream(*stream);
  }

 private:
  c10::OptionalStreamGuard guard_;
};

/// Runs `fn`, turning LibTorch's c10::Error (and std::exception) into INTERNAL with its message.
template <class F>
Status CatchTorch(const std::string& what, F&& fn) {
  try {
    fn();
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Status::Internal(what + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Internal(what + ": " + e.what());
  }
}

}  // namespace fedml::core
