// The simulation runner: N virtual clients served by `worker_num` worker threads over the
// in-process communicator, each worker training many clients one after another in a round.
// Memory is O(worker_num x model) plus the data set, whatever client_num_in_total is.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_trainer.h"
#include "fedml/api/config.h"
#include "fedml/api/metrics.h"
#include "fedml/api/options.h"
#include "fedml/api/roles.h"
#include "fedml/api/round_controller.h"

namespace fedml::api {

/// Runs config.comm_round rounds of config.federated_optimizer in this process. Every thread it
/// starts is joined before it returns, on success and on failure.
Result<RunSummary> RunSimulation(const Config& config, const SimulationHooks& hooks = {});

}  // namespace fedml::api
