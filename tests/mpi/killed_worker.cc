// A worker rank killed with SIGKILL in the middle of a round, under mpirun.
//
//   mpirun [--enable-recovery] -np K killed_worker KILL_RANK KILL_AT_TASK
//
// Rank KILL_RANK kills itself when its trainer starts its KILL_AT_TASK-th client. With
// `mpirun --enable-recovery` the other ranks live on: the server notices within
// worker_timeout_s, hands the client to a living worker, finishes every round, and then (on rank
// 0) runs the same config in process and exits 0 only if every round's metrics and the final
// model are equal. Without it, mpirun ends the job and names the rank (checked by
// killed_worker.sh).
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "fedml/api/mpi_runner.h"
#include "fedml/core/comm/mpi.h"

using namespace fedml;
using namespace fedml::api;

namespace {

// The built-in trainer, except that it dies (SIGKILL, no clean-up) on its kill_at-th client.
class DyingTrainer : public ClientTrainer {
 public:
  DyingTrainer(std::unique_ptr<ClientTrainer> inner, int kill_at)
      : inner_(std::move(inner)), kill_at_(kill_at) {}
  Status SetState(const core::ModelState& s) override { return inner_->SetState(s); }
  Result<core::ModelState> GetState() override { return inner_->GetState(); }
  Result<Evaluation> Evaluate(const EvalTask& t) override { return inner_->Evaluate(t); }
  Result<LocalUpdate> Train(const TrainTask& task) override {
    if (kill_at_ > 0 && ++trained_ == kill_at_) std::raise(SIGKILL);
    return inner_->Train(task);
  }

 private:
  std::unique_ptr<ClientTrainer> inner_;
  int kill_at_;
  int trained_ = 0;
};

}  // namespace

int RunTest(int argc, char** argv, std::unique_ptr<core::mpi::Environment>& env);

// With a rank dead, MPI_Finalize can wait for it forever (seen on a loaded machine); the
// Environment's watchdog then ends the process after finalize_timeout with the test's result.
int main(int argc, char** argv) {
  std::unique_ptr<core::mpi::Environment> env;
  const int code = RunTest(argc, argv, env);
  if (env) {
    env->finalize_timeout = std::chrono::seconds(10);
    env->set_exit_code_if_stuck(code);
    env.reset();
  }
  return code;
}

int RunTest(int argc, char** argv, std::unique_ptr<core::mpi::Environment>& env_out) {
  auto env = core::mpi::Environment::Create(&argc, &argv);
  if (!env.ok() || argc != 3) {
    std::fprintf(stderr, "usage: mpirun -np K killed_worker KILL_RANK KILL_AT_TASK (%s)\n",
                 env.status().ToString().c_str());
    return 2;
  }
  env_out = std::move(env).value();  // main finalises MPI, once the result is known
  const int kill_rank = std::atoi(argv[1]);
  const int kill_at = std::atoi(argv[2]);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto config = BuildConfig({}, {{"dataset", "synthetic"},
                                 {"model", "lr"},
                                 {"client_num_in_total", "30"},
                                 {"client_num_per_round", "10"},
                                 {"comm_round", "3"},
                                 {"random_seed", "11"},
                                 {"worker_num", std::to_string(size - 1)},
                                 {"worker_timeout_s", "2"},
                                 {"round_timeout_s", "120"},
                                 {"model_file_cache_folder", ""}});
  if (!config.ok()) return 2;
  auto builtin = TrainerFactoryFor(*config, {});
  if (!builtin.ok()) return 2;
  SimulationHooks hooks;
  hooks.trainer_factory = [&](int worker) -> Result<std::unique_ptr<ClientTrainer>> {
    FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> inner, (*builtin)(worker));
    return std::unique_ptr<ClientTrainer>(
        new DyingTrainer(std::move(inner), worker + 1 == kill_rank ? kill_at : 0));
  };
  auto run = RunMpiSimulation(*config, MPI_COMM_WORLD, hooks);
  if (!run.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, run.status().ToString().c_str());
    return 4;
  }
  if (rank != 0) return 0;
  Config inproc = *config;
  inproc.worker_num = 2;
  inproc.worker_timeout_s = 0;
  auto clean = RunSimulation(inproc);
  if (!clean.ok()) return 4;
  const auto& got = (*run)->rounds;
  bool same = got.size() == clean->rounds.size() && (*run)->final_model == clean->final_model;
  for (std::size_t i = 0; same && i < got.size(); ++i) {
    same = got[i].test_accuracy == clean->rounds[i].test_accuracy &&
           got[i].clients == clean->rounds[i].clients;
  }
  std::printf("%zu rounds with rank %d killed at its client %d: %s the in-process run\n",
              got.size(), kill_rank, kill_at,
              same ? "same metrics and final model as" : "DIFFERS from");
  return same ? 0 : 1;
}
