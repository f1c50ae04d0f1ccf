// A gRPC client spoken for with the raw generated stub, for tests that do what fedml's own
// client would not (register again as if restarted, push crafted frames).
#pragma once

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "fedml/core/comm/communicator.h"
#include "fedml/core/message.h"
#include "fedml/core/wire.h"
#include "fedml_service.grpc.pb.h"

namespace fedml::testing {

// A client spoken for with the raw generated stub (insecure: its id in metadata), so a test can
// do what fedml's client would not: fetch a task, then register again as if restarted.
class RawClient {
 public:
  RawClient(int port, int id)
      : id_(id),
        stub_(fedml::service::FederatedLearning::NewStub(grpc::CreateChannel(
            "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()))) {}

  grpc::Status Register() {
    grpc::ClientContext ctx;
    Prepare(ctx);
    fedml::service::RegisterRequest req;
    req.set_client_id(id_);
    req.set_wire_version(fedml::core::kWireVersion);
    fedml::service::RegisterReply reply;
    return stub_->Register(&ctx, req, &reply);
  }

  // The next frame the server has for this client, polling until `deadline` (nullopt then).
  std::optional<fedml::core::Message> Fetch(fedml::core::Deadline deadline) {
    while (fedml::core::Clock::now() < deadline) {
      grpc::ClientContext ctx;
      Prepare(ctx);
      fedml::service::FetchRequest req;
      req.set_wait_ms(1000);
      auto reader = stub_->FetchTask(&ctx, req);
      std::string frame;
      fedml::service::FrameChunk chunk;
      while (reader->Read(&chunk)) frame += chunk.data();
      if (!reader->Finish().ok() || frame.empty()) continue;
      auto msg = fedml::core::Decode(fedml::core::Bytes(frame.begin(), frame.end()));
      REQUIRE(msg.ok());
      return std::move(msg).value();
    }
    return std::nullopt;
  }

  grpc::Status Push(const fedml::core::Message& msg) {
    auto frame = fedml::core::Encode(msg);
    REQUIRE(frame.ok());
    grpc::ClientContext ctx;
    Prepare(ctx);
    fedml::service::PushReply reply;
    auto writer = stub_->PushUpdate(&ctx, &reply);
    fedml::service::FrameChunk chunk;
    chunk.set_offset(0);
    chunk.set_frame_bytes(frame->size());
    chunk.set_data(reinterpret_cast<const char*>(frame->data()), frame->size());
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }

 private:
  void Prepare(grpc::ClientContext& ctx) const {
    ctx.AddMetadata("x-fedml-client-id", std::to_string(id_));
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }

  int id_;
  std::unique_ptr<fedml::service::FederatedLearning::Stub> stub_;
};

}  // namespace fedml::testing
