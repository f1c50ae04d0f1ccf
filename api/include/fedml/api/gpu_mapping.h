// GPU mapping for multi-process runs, in FedML's format: a YAML file whose key (gpu_mapping_key,
// "mapping_default" by default) maps each host to a list with one entry per GPU, the number of
// processes that GPU takes:
//
//   mapping_default:
//     node1: [1, 2]      # rank 0 (the server) on GPU 0, ranks 1 and 2 on GPU 1
//     node2: [2, 2]      # ranks 3, 4 on GPU 0 of node2, ranks 5, 6 on GPU 1
//
// Ranks are handed out in file order, host by host and GPU by GPU, as mpirun places them with a
// hostfile listing the hosts in the same order. A count of 0 leaves that GPU out.
#pragma once

#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::api {

struct GpuSlot {
  std::string host;
  int gpu = 0;
};

/// The slot of every rank, rank 0 first. Errors name the file, the key and what is allowed: a
/// missing file or key, a host whose value is not a list of counts >= 0, no slot at all.
Result<std::vector<GpuSlot>> LoadGpuMapping(const std::string& path, const std::string& key);

/// The device for `rank` of `world_size` ranks running on host `hostname` ("cuda:N").
/// FAILED_PRECONDITION when the mapping has a different number of slots than there are ranks,
/// or gives this rank to another host (host names match when equal or equal up to the first '.',
/// so node1 matches node1.cluster.org).
Result<std::string> DeviceForRank(const std::vector<GpuSlot>& slots, int rank, int world_size,
                                  const std::string& hostname);

}  // namespace fedml::api
