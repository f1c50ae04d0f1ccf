#include "fedml/api/simulation.h"

#include <torch/torch.h>

#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/device_aggregation.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/system_model.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/core/comm/inproc.h"

namespace fedml::api {

Result<RunSummary> RunSimulation(const Config& config, const SimulationHooks& hooks) {
  const std::string backend = NormalizedBackend(config.backend);
  if (backend != "inproc") {
    return Status::InvalidArgument("RunSimulation runs backend inproc (or sp), not '" +
                                   config.backend +
                                   "'; for MPI use RunMpiSimulation "
                                   "(fedml/api/mpi_runner.h) under mpirun");
  }
  torch::set_num_threads(TorchThreadsPerWorker(config));
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(config, hooks));

  // Build every worker's trainer before starting threads, so a factory error needs no cleanup.
  const int workers = config.worker_num;
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (int w = 0; w < workers; ++w) {
    FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, factory(w));
    trainers.push_back(std::move(t));
  }

  auto comms = core::inproc::CreateGroup(workers + 1);
  std::vector<Status> worker_status(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      worker_status[w] = RunWorker(config, *comms[w + 1], std::move(trainers[w]));
      // A worker that stops early (error, timeout) wakes the server rather than leaving it to
      // wait for the round deadline.
      if (!worker_status[w].ok()) comms[w + 1]->Abort(worker_status[w]);
    });
  }
  auto summary = RunServer(config, *comms[0], factory, hooks);
  if (!summary.ok()) comms[0]->Abort(summary.status());
  for (auto& t : threads) t.join();

  if (!summary.ok()) {
    // Prefer a worker's own error when it caused the abort.
    for (const Status& s : worker_status) {
      if (!s.ok() && s.code() != StatusCode::kAborted) return s;
    }
    return summary.status();
  }
  for (const Status& s : worker_status) {
    if (!s.ok()) return s;
  }
  return summary;
}

}  // namespace fedml::api
