// In-process communicator backend: ranks are threads of one process, each with a mailbox.
#pragma once

#include <memory>

#include "fedml/core/comm/communicator.h"

namespace fedml::core::inproc {

class Hub;

/// Creates `world_size` connected communicators, one per rank (index = rank). The hub they share
/// lives as long as any of them. Payloads are moved, never copied. Sending to a rank whose
/// communicator was destroyed or that called MarkGone fails with UNAVAILABLE.
std::vector<std::unique_ptr<Communicator>> CreateGroup(int world_size);

/// Marks `rank` of the group that `any_member` belongs to as gone (fault injection in tests: a
/// "killed" worker). Receivers waiting on it specifically get UNAVAILABLE.
void MarkGone(Communicator& any_member, int rank);

}  // namespace fedml::core::inproc
