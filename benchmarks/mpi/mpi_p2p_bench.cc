// Point-to-point model transfer between two MPI ranks through fedml's MPI communicator, against
// memcpy bandwidth measured in the same run (bytes copied per second, on rank 0).
//
//   mpirun -np 2 build/bin/mpi_p2p_bench [--reps N] [--shm_ring_kb N]
//                                                          goal: ratio >= 0.5 for 1, 10, 100 MB
//
// The two ranks share a node, so fedml's communicator moves frames through its own shared-memory
// rings (mpi::Options::shared_memory_ring_bytes); --shm_ring_kb 0 measures its MPI path instead,
// which on one node is OpenMPI's shared-memory transport.
//
// Two measures per size. The goal is checked on the ping-pong (rank 0 -> 1 -> 0; one-way
// throughput = 2 x bytes / round trip), where each side receives into a recycled buffer as a
// worker does between rounds. The stream (rank 0 sends a burst of models, rank 1 drops each one
// and acknowledges the last) receives every model into fresh memory, so it shows what page
// faults cost (one per 4 KiB) when received models are not handed back.
// A bare MPI_Send/MPI_Recv ping-pong of the same bytes is measured too (before fedml's
// communicator exists, so its progress thread is not competing), to show what OpenMPI itself
// reaches on this machine.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fedml/core/comm/mpi.h"

using namespace fedml;
using namespace fedml::core;

namespace {

double MemcpyBandwidth(std::size_t bytes, int reps) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    a[r % bytes] = b[(r + 1) % bytes];  // keep the copies observable
  }
  return static_cast<double>(bytes) / best;
}

// One-way throughput of a bare blocking MPI ping-pong on MPI_COMM_WORLD (ranks 0 and 1).
double RawMpiThroughput(std::size_t bytes, int reps, int rank) {
  std::vector<char> buf(bytes, 3);
  double best = 1e30;
  const int count = static_cast<int>(bytes);
  for (int r = 0; r < reps + 1; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    if (rank == 0) {
      MPI_Send(buf.data(), count, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), count, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf.data(), count, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), count, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
    }
    if (r > 0) best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(bytes) / best;
}

}  // namespace

int main(int argc, char** argv) {
  auto env = mpi::Environment::Create(&argc, &argv);
  if (!env.ok()) {
    std::fprintf(stderr, "error: %s\n", env.status().message().c_str());
    return 1;
  }
  int reps = 5;
  mpi::Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--reps") {
      reps = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--shm_ring_kb") {
      char* end = nullptr;
      const unsigned long long kb = std::strtoull(argv[i + 1], &end, 10);
      if (*argv[i + 1] == '\0' || *end != '\0' || kb > (1ULL << 20)) {
        std::fprintf(stderr, "error: --shm_ring_kb takes 0 (MPI only) to 1048576, got '%s'\n",
                     argv[i + 1]);
        return 1;
      }
      options.shared_memory_ring_bytes = static_cast<std::size_t>(kb) << 10;
    } else {
      std::fprintf(stderr, "error: unknown flag %s (known: --reps N, --shm_ring_kb N)\n", argv[i]);
      return 1;
    }
  }
  int world_rank = 0;
  int world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const std::size_t sizes_mb[] = {1, 10, 100};
  double raw[3] = {0, 0, 0};
  if (world_size == 2) {
    for (int i = 0; i < 3; ++i) raw[i] = RawMpiThroughput(sizes_mb[i] << 20, reps, world_rank);
  }
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
  if (!comm.ok()) {
    std::fprintf(stderr, "error: %s\n", comm.status().ToString().c_str());
    return 2;
  }
  if ((*comm)->world_size() != 2) {
    std::fprintf(stderr, "error: run with mpirun -np 2 (this job has %d ranks)\n",
                 (*comm)->world_size());
    return 2;
  }
  Communicator& c = **comm;
  const auto deadline = [] { return DeadlineAfter(std::chrono::seconds(60)); };
  int worst_pass = 1;
  for (int i = 0; i < 3; ++i) {
    const std::size_t mb = sizes_mb[i];
    const std::size_t bytes = mb << 20;
    double best = 1e30;
    std::vector<std::uint8_t> payload(bytes, 7);
    for (int r = 0; r < reps + 1; ++r) {  // the first round trip warms up buffers and paths
      if (c.rank() == 0) {
        const auto t0 = Clock::now();
        if (!c.Send(1, std::move(payload)).ok()) return 3;
        auto back = c.Recv(1, deadline());
        if (!back.ok()) return 3;
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r > 0) best = std::min(best, secs);
        payload = std::move(back->payload);
      } else {
        auto in = c.Recv(0, deadline());
        if (!in.ok() || !c.Send(0, std::move(in->payload)).ok()) return 3;
      }
    }
    // The stream: a burst of about 256 MB (at least 4 models), prepared before the clock starts.
    const int burst = static_cast<int>(std::max<std::size_t>(4, (std::size_t{256} << 20) / bytes));
    double best_stream = 1e30;
    for (int r = 0; r < reps + 1; ++r) {
      if (c.rank() == 0) {
        std::vector<std::vector<std::uint8_t>> models(static_cast<std::size_t>(burst),
                                                      std::vector<std::uint8_t>(bytes, 5));
        if (!c.Recv(1, deadline()).ok()) return 3;  // rank 1 is ready
        const auto t0 = Clock::now();
        for (auto& m : models) {
          if (!c.Send(1, std::move(m)).ok()) return 3;
        }
        if (!c.Recv(1, deadline()).ok()) return 3;
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r > 0) best_stream = std::min(best_stream, secs);
      } else {
        if (!c.Send(0, {0}).ok()) return 3;
        for (int k = 0; k < burst; ++k) {
          if (!c.Recv(0, deadline()).ok()) return 3;
        }
        if (!c.Send(0, {1}).ok()) return 3;
      }
    }
    if (c.rank() == 0) {
      const double stream = static_cast<double>(bytes) * burst / best_stream;
      const double pingpong = 2.0 * static_cast<double>(bytes) / best;
      const double copy = MemcpyBandwidth(bytes, reps + 2);
      const double ratio = pingpong / copy;
      worst_pass &= ratio >= 0.5;
      std::printf(
          "%4zu MB: transfer %.2f GB/s, memcpy %.2f GB/s, ratio %.3f (goal >= 0.5: %s); bare MPI "
          "ping-pong %.2f GB/s (fedml / bare MPI %.2f); stream into fresh buffers %.2f GB/s\n",
          mb, pingpong / 1e9, copy / 1e9, ratio, ratio >= 0.5 ? "PASS" : "MISS", raw[i] / 1e9,
          pingpong / raw[i], stream / 1e9);
    }
  }
  comm->reset();  // its progress thread owns MPI until then (MPI_THREAD_SERIALIZED)
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}
