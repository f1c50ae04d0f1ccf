// The MPI communicator, run SPMD under mpirun (see tests/CMakeLists.txt): every rank runs every
// test case, and each case checks its own rank's side.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <numeric>

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

}  // namespace

TEST_CASE("frames of every size class make a round trip", "[mpi]") {
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD);
  REQUIRE(comm.ok());
  REQUIRE((*comm)->world_size() >= 2);
  EchoAllSizes(**comm, {0, 1, 1000, std::size_t{1} << 20, std::size_t{10} << 20});
}

TEST_CASE("frames larger than a chunk are split and rebuilt", "[mpi]") {
  // The logic that carries 2 GiB+ payloads, exercised with 1000-byte chunks.
  mpi::Options options;
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

TEST_CASE("a bad chunk size is refused", "[mpi]") {
  mpi::Options options;
  options.chunk_bytes = 0;
  auto comm = mpi::CreateCommunicator(MPI_COMM_WORLD, options);
  CHECK(comm.status().code() == StatusCode::kInvalidArgument);
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
