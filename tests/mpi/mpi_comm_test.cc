// The MPI communicator, run SPMD under mpirun (see tests/CMakeLists.txt): every rank runs every
// test case, and each case checks its own rank's side.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <dirent.h>

#include <fstream>
#include <numeric>
#include <string>

#include "fedml/core/comm/mpi.h"

using namespace fedml;
using namespace fedml::core;
using namespace std::chrono_literals;

namespace {

std::vector<std::uint8_t> Pattern(std::size_t n, int seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 131 + seed * 7) & 0xff);
  return v;
}

// Every worker sends each size to rank 0, which echoes it back; both sides check the bytes.
void EchoAllSizes(Communicator& comm, const std::vector<std::size_t>& sizes) {
  const int rank = comm.rank();
  if (rank == 0) {
    const int expected = (comm.world_size() - 1) * static_cast<int>(sizes.size());
    for (int i = 0; i < expected; ++i) {
      auto e = comm.Recv(kAnySource, DeadlineAfter(60s));
      REQUIRE(e.ok());
      REQUIRE(comm.Send(e->source, std::move(e->payload)).ok());
    }
  } else {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const auto sent = Pattern(sizes[k], rank + static_cast<int>(k));
      REQUIRE(comm.Send(0, sent).ok());
      auto back = comm.Recv(0, DeadlineAfter(60s));
      REQUIRE(back.ok());
      CHECK(back->source == 0);
      REQUIRE(back->payload.size() == sent.size());
      CHECK(back->payload == sent);
    }
  }
}

mpi::Options ThroughMpiOnly() {
  mpi::Options options;
  options.shared_memory_ring_bytes = 0;
  return options;
}

// The shared-memory segments this process has mapped, as /proc/self/maps names them.
std::vector<std::string> MappedSegments() {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> found;
  for (std::string line; std::getline(maps, line);) {
    const auto at = line.find("/dev/shm/fedml-mpi-");
    if (at != std::string::npos) found.push_back(line.substr(at));
  }
  return found;
}

}  // namespace

TEST_CASE("frames of every size class make a round trip", "[mpi]") {
  // All ranks of a ctest run share one node, so the default goes through shared memory; the
  // other path is MPI's, which ranks on different nodes use.
  for (const mpi::Options& options : {mpi::Options{}, ThroughMpiOnly()}) {
    auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
    REQUIRE(comm.ok());
    REQUIRE((*comm)->world_size() >= 2);
    EchoAllSizes(**comm, {0, 1, 1000, std::size_t{1} << 20, std::size_t{10} << 20});
  }
}

TEST_CASE("ranks on one node share a segment that is already gone from /dev/shm", "[mpi]") {
  {
    auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD);
    REQUIRE(comm.ok());
    const auto segments = MappedSegments();
    REQUIRE(segments.size() == 1);
    // Unlinked once every rank mapped it: a killed rank cannot leave it behind.
    CHECK(segments[0].find("(deleted)") != std::string::npos);
    DIR* dir = opendir("/dev/shm");
    REQUIRE(dir != nullptr);
    int left = 0;
    while (const dirent* entry = readdir(dir)) {
      left += segments[0].find(entry->d_name) == std::string("/dev/shm/").size();
    }
    closedir(dir);
    CHECK(left == 0);
    EchoAllSizes(**comm, {0, 4096});
  }
  CHECK(MappedSegments().empty());  // the communicator unmapped it
  auto mpi_only = mpi::CreateCommunicator(MPI_COMM_WORLD, ThroughMpiOnly());
  REQUIRE(mpi_only.ok());
  CHECK(MappedSegments().empty());
  EchoAllSizes(**mpi_only, {0, 4096});
}

TEST_CASE("a tiny shared-memory ring wraps frames and splits their headers", "[mpi]") {
  // 100 bytes, not a power of two: every frame wraps, most headers straddle the end of the ring,
  // and frames larger than the ring go through in pieces.
  mpi::Options options;
  options.shared_memory_ring_bytes = 100;
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
  REQUIRE(comm.ok());
  EchoAllSizes(**comm, {0, 1, 7, 8, 9, 91, 92, 99, 100, 101, 250000, (std::size_t{1} << 20) + 1});
}

TEST_CASE("Send to a rank on the node returns before that rank calls Recv", "[mpi]") {
  // Rank 1 queues far more than the 4 KiB ring holds, then tells rank 2, which tells rank 0:
  // rank 0 calls Recv for rank 1's frames only after hearing that all of rank 1's Sends
  // returned. (One communicator: creating a second while one polls would call MPI from two
  // threads, which MPI_THREAD_SERIALIZED does not allow.)
  mpi::Options small;
  small.shared_memory_ring_bytes = 4096;
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, small);
  REQUIRE(comm.ok());
  Communicator& c = **comm;
  REQUIRE(c.world_size() >= 3);  // ctest runs this suite with 3 and 4 ranks
  constexpr int kFrames = 64;
  constexpr std::size_t kBytes = 10000;
  if (c.rank() == 0) {
    auto relayed = c.Recv(2, DeadlineAfter(30s));
    REQUIRE(relayed.ok());  // a Send that waited for rank 0's Recv would never get here
    for (int k = 0; k < kFrames; ++k) {
      auto e = c.Recv(1, DeadlineAfter(30s));
      REQUIRE(e.ok());
      CHECK(e->payload == Pattern(kBytes, 1000 + k));  // in order, intact
    }
    REQUIRE(c.Send(1, {1}).ok());
  } else if (c.rank() == 1) {
    for (int k = 0; k < kFrames; ++k) REQUIRE(c.Send(0, Pattern(kBytes, 1000 + k)).ok());
    REQUIRE(c.Send(2, {0}).ok());
    REQUIRE(c.Recv(0, DeadlineAfter(30s)).ok());
  } else if (c.rank() == 2) {
    REQUIRE(c.Recv(1, DeadlineAfter(30s)).ok());
    REQUIRE(c.Send(0, {0}).ok());
  }
}

TEST_CASE("frames larger than a chunk are split and rebuilt", "[mpi]") {
  // The logic that carries 2 GiB+ payloads through MPI, exercised with 1000-byte chunks.
  mpi::Options options = ThroughMpiOnly();
  options.chunk_bytes = 1000;
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
  REQUIRE(comm.ok());
  EchoAllSizes(**comm, {999, 1000, 1001, 250000, (std::size_t{1} << 20) + 1});
}

TEST_CASE("receives honour deadlines and self-sends work", "[mpi]") {
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD);
  REQUIRE(comm.ok());
  Communicator& c = **comm;
  auto e = c.Recv(kAnySource, DeadlineAfter(100ms));
  CHECK(e.status().code() == StatusCode::kDeadlineExceeded);
  REQUIRE(c.Send(c.rank(), {1, 2, 3}).ok());
  auto self = c.Recv(c.rank(), DeadlineAfter(1s));
  REQUIRE(self.ok());
  CHECK(self->payload == std::vector<std::uint8_t>{1, 2, 3});
  CHECK(c.Send(c.world_size(), {1}).code() == StatusCode::kInvalidArgument);
  MPI_Barrier(MPI_COMM_WORLD);  // nobody destroys its communicator while another still polls
}

TEST_CASE("a communicator the caller owns (a split of the world) works", "[mpi]") {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm mine;
  REQUIRE(MPI_Comm_split(MPI_COMM_WORLD, world_rank % 2, world_rank, &mine) == MPI_SUCCESS);
  {
    auto comm = mpi::CreateCommunicator(mine);
    REQUIRE(comm.ok());
    int mine_size = 0;
    MPI_Comm_size(mine, &mine_size);
    CHECK((*comm)->world_size() == mine_size);
    if (mine_size >= 2) EchoAllSizes(**comm, {0, 12345});
    MPI_Barrier(mine);
  }
  // The library freed only its duplicate: the caller's communicator is still usable.
  int sum = 0, one = 1;
  REQUIRE(MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, mine) == MPI_SUCCESS);
  CHECK(sum >= 1);
  MPI_Comm_free(&mine);
}

TEST_CASE("a bad chunk size or ring size is refused", "[mpi]") {
  mpi::Options options;
  options.chunk_bytes = 0;
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
  CHECK(comm.status().code() == StatusCode::kInvalidArgument);
  mpi::Options huge_ring;
  huge_ring.shared_memory_ring_bytes = (std::size_t{1} << 30) + 1;
  auto refused = mpi::CreateCommunicator(MPI_COMM_WORLD, huge_ring);
  CHECK(refused.status().code() == StatusCode::kInvalidArgument);
  CHECK(refused.status().message().find("shared_memory_ring_bytes") != std::string::npos);
}

int main(int argc, char** argv) {
  auto env = mpi::Environment::Create(&argc, &argv);
  if (!env.ok()) {
    std::fprintf(stderr, "%s\n", env.status().ToString().c_str());
    return 1;
  }
  const int result = Catch::Session().run(argc, argv);
  // A rank that failed must not leave the others waiting in MPI_Finalize's barrier forever.
  int failed = result != 0, any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any_failed ? 1 : 0;
}
