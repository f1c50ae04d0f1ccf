#include "comm/mpi/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>

namespace fedml::core::mpi::shm {

namespace {

// The loop both ends of a ring run: up to n bytes, at most kPublishBytes per step, publishing
// this end's position after each step. `room(mine, theirs)` is how many bytes may move now;
// `copy(ring_offset, done, k)` moves k bytes.
template <class Room, class Copy>
std::size_t MoveBytes(std::uint64_t& mine, std::atomic<std::uint64_t>& publish,
                      const std::atomic<std::uint64_t>& theirs, std::size_t capacity, std::size_t n,
                      Room room, Copy copy) {
  std::size_t done = 0;
  while (done < n) {
    const std::size_t ready = room(mine, theirs.load(std::memory_order_acquire));
    if (ready == 0) break;
    const std::size_t offset = static_cast<std::size_t>(mine % capacity);
    const std::size_t k = std::min({n - done, ready, capacity - offset, kPublishBytes});
    copy(offset, done, k);
    mine += k;
    done += k;
    publish.store(mine, std::memory_order_release);
  }
  return done;
}

}  // namespace

std::size_t RingWriter::Write(const std::uint8_t* src, std::size_t n) {
  return MoveBytes(
      written_, control_->written, control_->read, capacity_, n,
      [this](std::uint64_t written, std::uint64_t read) {
        return capacity_ - static_cast<std::size_t>(written - read);
      },
      [&](std::size_t offset, std::size_t done, std::size_t k) {
        std::memcpy(data_ + offset, src + done, k);
      });
}

std::size_t RingReader::Read(std::uint8_t* dst, std::size_t n) {
  return MoveBytes(
      read_, control_->read, control_->written, capacity_, n,
      [](std::uint64_t read, std::uint64_t written) {
        return static_cast<std::size_t>(written - read);
      },
      [&](std::size_t offset, std::size_t done, std::size_t k) {
        std::memcpy(dst + done, data_ + offset, k);
      });
}

NodeLinks::~NodeLinks() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
}

namespace {

constexpr std::size_t kSegmentBudget = std::size_t{256} << 20;
constexpr std::size_t kMinCrowdedRing = std::size_t{64} << 10;

// What local rank 0 tells the others: the segment's name, or why there is none.
struct Announcement {
  char name[64];
  char error[192];
};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Creates, sizes (committing the memory now, so a full /dev/shm is an error here and not a
// SIGBUS later) and maps the segment; the caller unlinks it.
void* CreateSegment(const std::string& name, std::size_t bytes, std::string* error) {
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    *error = Errno("shm_open " + name);
    return nullptr;
  }
  void* base = nullptr;
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    *error = Errno("ftruncate of the shared-memory segment");
  } else if (const int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes)); rc != 0) {
    *error = "reserving " + std::to_string(bytes >> 10) +
             " KiB of shared memory (is /dev/shm full or small?): " + std::strerror(rc);
  } else {
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      *error = Errno("mmap of the shared-memory segment");
      base = nullptr;
    }
  }
  close(fd);
  if (base == nullptr) shm_unlink(name.c_str());
  return base;
}

void* OpenSegment(const std::string& name, std::size_t bytes, std::string* error) {
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) {
    *error = Errno("shm_open " + name);
    return nullptr;
  }
  void* base = nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    *error = Errno("fstat of the shared-memory segment");
  } else if (static_cast<std::size_t>(st.st_size) != bytes) {
    *error = "the shared-memory segment has " + std::to_string(st.st_size) + " bytes, expected " +
             std::to_string(bytes);
  } else {
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      *error = Errno("mmap of the shared-memory segment");
      base = nullptr;
    }
  }
  close(fd);
  return base;
}

std::string SegmentName() {
  std::random_device entropy;
  char name[64];
  std::snprintf(name, sizeof name, "/fedml-mpi-%ld-%08x%08x", static_cast<long>(getpid()),
                entropy(), entropy());
  return name;
}

}  // namespace

std::unique_ptr<NodeLinks> SetUpNodeLinks(MPI_Comm comm, std::size_t ring_bytes,
                                          std::string* why_not) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Comm node;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) != MPI_SUCCESS) {
    *why_not = "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed";
    return nullptr;
  }
  int local_size = 0, local_rank = 0;
  MPI_Comm_size(node, &local_size);
  MPI_Comm_rank(node, &local_rank);
  unsigned long long wanted = ring_bytes, agreed = 0;
  MPI_Allreduce(&wanted, &agreed, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, node);
  if (local_size < 2 || agreed == 0) {
    MPI_Comm_free(&node);
    if (local_size >= 2) *why_not = "shared_memory_ring_bytes is 0 on a rank of this node";
    return nullptr;
  }
  std::vector<int> ranks(static_cast<std::size_t>(local_size));
  MPI_Allgather(&rank, 1, MPI_INT, ranks.data(), 1, MPI_INT, node);

  const std::size_t pairs = static_cast<std::size_t>(local_size) * (local_size - 1);
  const std::size_t ring =
      std::min<std::size_t>(agreed, std::max(kMinCrowdedRing, kSegmentBudget / pairs));
  const std::size_t stride = (sizeof(RingControl) + ring + 63) / 64 * 64;
  const std::size_t bytes = stride * pairs;

  Announcement announcement{};
  void* base = nullptr;
  std::string error;
  if (local_rank == 0) {
    const std::string name = SegmentName();
    base = CreateSegment(name, bytes, &error);
    if (base != nullptr) {
      for (std::size_t p = 0; p < pairs; ++p) {
        new (static_cast<std::uint8_t*>(base) + p * stride) RingControl();
      }
      std::snprintf(announcement.name, sizeof announcement.name, "%s", name.c_str());
    } else {
      std::snprintf(announcement.error, sizeof announcement.error, "%s", error.c_str());
    }
  }
  MPI_Bcast(&announcement, sizeof announcement, MPI_BYTE, 0, node);
  if (local_rank != 0) {
    if (announcement.name[0] != '\0') {
      base = OpenSegment(announcement.name, bytes, &error);
    } else {
      error = announcement.error;
    }
  }
  int mapped = base != nullptr, all_mapped = 0;
  MPI_Allreduce(&mapped, &all_mapped, 1, MPI_INT, MPI_MIN, node);
  // Every rank has mapped it or given up: the name can go, and with it anything a later crash
  // could leave in /dev/shm. Each rank unlinks (all but the first find it gone), so that when
  // this returns on any rank the name is already gone.
  if (announcement.name[0] != '\0') shm_unlink(announcement.name);
  MPI_Comm_free(&node);
  if (!all_mapped) {
    if (base != nullptr) munmap(base, bytes);
    *why_not =
        error.empty() ? "another rank of this node could not map the shared-memory segment" : error;
    return nullptr;
  }

  std::unique_ptr<NodeLinks> links(new NodeLinks());
  links->base_ = base;
  links->mapped_bytes_ = bytes;
  links->ring_bytes_ = ring;
  links->linked_.assign(static_cast<std::size_t>(size), false);
  links->writers_.resize(static_cast<std::size_t>(size));
  links->readers_.resize(static_cast<std::size_t>(size));
  const auto slot = [&](int from, int to) {
    const std::size_t index =
        static_cast<std::size_t>(from) * (local_size - 1) + (to < from ? to : to - 1);
    auto* at = static_cast<std::uint8_t*>(base) + index * stride;
    return std::make_pair(reinterpret_cast<RingControl*>(at), at + sizeof(RingControl));
  };
  for (int j = 0; j < local_size; ++j) {
    if (j == local_rank) continue;
    const int peer = ranks[static_cast<std::size_t>(j)];
    const auto [out_control, out_data] = slot(local_rank, j);
    const auto [in_control, in_data] = slot(j, local_rank);
    links->linked_[static_cast<std::size_t>(peer)] = true;
    links->writers_[static_cast<std::size_t>(peer)] = RingWriter(out_control, out_data, ring);
    links->readers_[static_cast<std::size_t>(peer)] = RingReader(in_control, in_data, ring);
    links->peers_.push_back(peer);
  }
  std::sort(links->peers_.begin(), links->peers_.end());
  return links;
}

}  // namespace fedml::core::mpi::shm
