// Simulation across MPI processes: `mpirun -np K fedml simulate --backend MPI`. Rank 0 is the
// server, ranks 1..K-1 are workers; each worker trains many clients one after another, so K is
// not tied to client_num_per_round. The same RoundController and ClientManager as the in-process
// runner, so the same config and seed give the same model whatever K is.
#pragma once

#include <mpi.h>

#include <optional>

#include "fedml/api/simulation.h"

namespace fedml::api {

/// Runs on every rank of `comm` (which the caller owns; MPI must be initialised with at least
/// MPI_THREAD_SERIALIZED, see fedml::core::mpi::Environment). Returns the summary on rank 0 and
/// nullopt on the workers. worker_num must equal K - 1 (INVALID_ARGUMENT says what to run).
/// Each rank builds its trainer from `hooks.trainer_factory` (or the built-in one) with its
/// worker index (rank - 1); rank 0 calls it with worker_num for the initial model.
Result<std::optional<RunSummary>> RunMpiSimulation(const Config& config, MPI_Comm comm,
                                                   const SimulationHooks& hooks = {});

}  // namespace fedml::api
