#include <catch2/catch.hpp>

#include <thread>

#include "fedml/core/comm/inproc.h"

using namespace fedml;
using namespace fedml::core;
using namespace std::chrono_literals;

TEST_CASE("in-process frames arrive in order with their source", "[comm]") {
  auto group = inproc::CreateGroup(3);
  REQUIRE(group.size() == 3);
  REQUIRE(group[1]->rank() == 1);
  REQUIRE(group[1]->world_size() == 3);
  for (std::uint8_t i = 0; i < 5; ++i) REQUIRE(group[1]->Send(0, {i, i}).ok());
  REQUIRE(group[2]->Send(0, {}).ok());  // zero-byte frame
  for (std::uint8_t i = 0; i < 5; ++i) {
    auto e = group[0]->Recv(1, DeadlineAfter(1s));
    REQUIRE(e.ok());
    CHECK(e->source == 1);
    CHECK(e->payload == std::vector<std::uint8_t>{i, i});
  }
  auto e = group[0]->Recv(kAnySource, DeadlineAfter(1s));
  REQUIRE(e.ok());
  CHECK(e->source == 2);
  CHECK(e->payload.empty());
}

TEST_CASE("in-process receive honours its deadline", "[comm]") {
  auto group = inproc::CreateGroup(2);
  const auto t0 = Clock::now();
  auto e = group[0]->Recv(kAnySource, DeadlineAfter(50ms));
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == StatusCode::kDeadlineExceeded);
  CHECK(Clock::now() - t0 >= 50ms);
  // A frame from another source does not satisfy a receive from rank 1.
  auto group3 = inproc::CreateGroup(3);
  REQUIRE(group3[2]->Send(0, {7}).ok());
  auto r = group3[0]->Recv(1, DeadlineAfter(20ms));
  CHECK(r.status().code() == StatusCode::kDeadlineExceeded);
  auto any = group3[0]->Recv(kAnySource, DeadlineAfter(1s));
  REQUIRE(any.ok());
  CHECK(any->source == 2);
}

TEST_CASE("abort wakes a blocked receiver", "[comm]") {
  auto group = inproc::CreateGroup(2);
  Status seen;
  std::thread t([&] { seen = group[0]->Recv(kAnySource, DeadlineAfter(30s)).status(); });
  group[1]->Abort(Status::Internal("worker failed"));
  t.join();
  CHECK(seen.code() == StatusCode::kAborted);
  CHECK(seen.message().find("worker failed") != std::string::npos);
  CHECK(group[1]->Send(0, {1}).code() == StatusCode::kAborted);
}

TEST_CASE("sending to a gone or invalid rank fails clearly", "[comm]") {
  auto group = inproc::CreateGroup(3);
  CHECK(group[0]->Send(5, {1}).code() == StatusCode::kInvalidArgument);
  inproc::MarkGone(*group[0], 2);
  CHECK(group[0]->Send(2, {1}).code() == StatusCode::kUnavailable);
  CHECK(group[0]->Recv(2, DeadlineAfter(1s)).status().code() == StatusCode::kUnavailable);
  group[1].reset();  // a destroyed communicator is gone too
  CHECK(group[0]->Send(1, {1}).code() == StatusCode::kUnavailable);
}
