#include "fedml/api/mpi_runner.h"

#include <torch/torch.h>

#include "fedml/core/comm/mpi.h"
#include "fedml/core/wire.h"

namespace fedml::api {

namespace {

// Best effort: tells `dst` (or every worker when dst < 0) why this rank stops, so that nobody
// waits out a deadline for a rank that failed before the rounds began.
void SendStop(core::Communicator& comm, core::MessageType type, const Status& why, int dst) {
  core::Message msg;
  msg.type = type;
  msg.sender = comm.rank();
  if (!why.ok()) msg.attrs["error"] = why.ToString();
  auto frame = core::Encode(msg);
  if (!frame.ok()) return;
  for (int r = dst < 0 ? 1 : dst; r < (dst < 0 ? comm.world_size() : dst + 1); ++r) {
    (void)comm.Send(r, *frame);
  }
}

}  // namespace

Result<std::optional<RunSummary>> RunMpiSimulation(const Config& config, MPI_Comm comm,
                                                   const SimulationHooks& hooks) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  if (size < 2) {
    return Status::InvalidArgument(
        "backend MPI needs at least 2 ranks (a server and a worker); run mpirun -np " +
        std::to_string(config.worker_num + 1) + " ...");
  }
  if (config.worker_num != size - 1) {
    return Status::InvalidArgument(
        "worker_num is " + std::to_string(config.worker_num) + " but mpirun started " +
        std::to_string(size) + " ranks (one server + " + std::to_string(size - 1) +
        " workers); run mpirun -np " + std::to_string(config.worker_num + 1) +
        ", or set --worker_num " + std::to_string(size - 1));
  }
  torch::set_num_threads(config.torch_threads > 0 ? config.torch_threads : 1);
  // Collective: every rank creates its communicator before anything can fail on one of them.
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::Communicator> communicator,
                         core::mpi::CreateCommunicator(comm));
  const int rank = communicator->rank();
  // Every rank builds the data and partition itself (deterministic for the seed), so no data set
  // crosses the network.
  auto factory = TrainerFactoryFor(config, hooks);
  if (rank == 0) {
    if (!factory.ok()) {
      SendStop(*communicator, core::MessageType::kFinish, factory.status(), -1);
      return factory.status();
    }
    auto summary = RunServer(config, *communicator, *factory, hooks);
    if (!summary.ok()) return summary.status();
    return std::optional<RunSummary>(std::move(summary).value());
  }
  Result<std::unique_ptr<ClientTrainer>> trainer =
      factory.ok() ? (*factory)(rank - 1)
                   : Result<std::unique_ptr<ClientTrainer>>(factory.status());
  if (!trainer.ok()) {
    const Status st = trainer.status().WithContext("worker rank " + std::to_string(rank));
    SendStop(*communicator, core::MessageType::kError, st, 0);
    return st;
  }
  FEDML_RETURN_IF_ERROR(RunWorker(config, *communicator, std::move(trainer).value()));
  return std::optional<RunSummary>();
}

}  // namespace fedml::api
