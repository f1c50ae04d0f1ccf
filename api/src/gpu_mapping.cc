#include "fedml/api/gpu_mapping.h"

#include <yaml-cpp/yaml.h>

namespace fedml::api {

namespace {

std::string ShortHost(const std::string& host) { return host.substr(0, host.find('.')); }

}  // namespace

Result<std::vector<GpuSlot>> LoadGpuMapping(const std::string& path, const std::string& key) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::NotFound("gpu_mapping_file " + path + " cannot be read");
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("gpu_mapping_file " + path + " is not valid YAML: " + e.what());
  }
  const std::string where = "gpu_mapping_file " + path + ", key " + key;
  if (!root.IsMap() || !root[key]) {
    return Status::InvalidArgument(where +
                                   ": no such key; the file must map gpu_mapping_key to "
                                   "{host: [processes on GPU 0, on GPU 1, ...]}");
  }
  const YAML::Node hosts = root[key];
  if (!hosts.IsMap()) {
    return Status::InvalidArgument(where + ": expected a map of host: [counts per GPU]");
  }
  std::vector<GpuSlot> slots;
  for (const auto& entry : hosts) {
    const auto host = entry.first.as<std::string>();
    std::string at = where;  // "gpu_mapping_file F, key K: host H"
    at += ": host ";
    at += host;
    if (!entry.second.IsSequence()) {
      return Status::InvalidArgument(at + " must list one process count per GPU, e.g. [1, 2]");
    }
    for (std::size_t gpu = 0; gpu < entry.second.size(); ++gpu) {
      int count = -1;
      try {
        count = entry.second[gpu].as<int>();
      } catch (const YAML::Exception&) {
        count = -1;
      }
      if (count < 0) {
        at += ", GPU ";
        at += std::to_string(gpu);
        return Status::InvalidArgument(at + ": the process count must be an integer >= 0");
      }
      for (int i = 0; i < count; ++i) slots.push_back(GpuSlot{host, static_cast<int>(gpu)});
    }
  }
  if (slots.empty()) return Status::InvalidArgument(where + ": gives no GPU to any process");
  return slots;
}

Result<std::string> DeviceForRank(const std::vector<GpuSlot>& slots, int rank, int world_size,
                                  const std::string& hostname) {
  if (static_cast<int>(slots.size()) != world_size) {
    return Status::FailedPrecondition(
        "the gpu mapping places " + std::to_string(slots.size()) + " processes but " +
        std::to_string(world_size) +
        " ranks are running; make the counts add up to the -np of mpirun");
  }
  if (rank < 0 || rank >= world_size) {
    return Status::InvalidArgument("rank " + std::to_string(rank) + " is outside [0, " +
                                   std::to_string(world_size) + ")");
  }
  const GpuSlot& slot = slots[static_cast<std::size_t>(rank)];
  if (slot.host != hostname && ShortHost(slot.host) != ShortHost(hostname)) {
    return Status::FailedPrecondition(
        "the gpu mapping gives rank " + std::to_string(rank) + " to host " + slot.host +
        " but it runs on " + hostname +
        "; list the hosts in the mapping in the order (and with the slots) of your hostfile");
  }
  return "cuda:" + std::to_string(slot.gpu);
}

}  // namespace fedml::api
