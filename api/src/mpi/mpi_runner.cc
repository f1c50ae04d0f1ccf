#include "fedml/api/mpi_runner.h"

#include <torch/torch.h>

#include "fedml/api/gpu_mapping.h"
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

// This rank's config: the device from gpu_mapping_file when one is given.
Result<Config> RankConfig(const Config& config, int rank, int world_size) {
  if (config.gpu_mapping_file.empty()) return config;
  FEDML_ASSIGN_OR_RETURN(std::vector<GpuSlot> slots,
                         LoadGpuMapping(config.gpu_mapping_file, config.gpu_mapping_key));
  char host[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(host, &len);
  Config mine = config;
  FEDML_ASSIGN_OR_RETURN(mine.device,
                         DeviceForRank(slots, rank, world_size, std::string(host, len)));
  return mine;
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
  // A failure here (a bad gpu mapping, data missing) is reported to the server, or by the server
  // to every worker, so nobody waits out a deadline.
  Result<Config> rank_config = RankConfig(config, rank, size);
  Result<ClientTrainerFactory> factory = rank_config.ok()
                                             ? TrainerFactoryFor(*rank_config, hooks)
                                             : Result<ClientTrainerFactory>(rank_config.status());
  if (rank == 0) {
    if (!factory.ok()) {
      SendStop(*communicator, core::MessageType::kFinish, factory.status(), -1);
      return factory.status();
    }
    auto summary = RunServer(*rank_config, *communicator, *factory, hooks);
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
  FEDML_RETURN_IF_ERROR(RunWorker(*rank_config, *communicator, std::move(trainer).value()));
  return std::optional<RunSummary>();
}

}  // namespace fedml::api
