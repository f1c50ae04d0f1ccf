// Message: the domain type every communicator carries (after the wire codec has encoded it).
// It is kept apart from its wire encoding (core/proto/fedml.proto) as Horovod does, so algorithm
// and protocol code never touch Protobuf types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedml/core/model_state.h"

namespace fedml::core {

/// Every message kind of every protocol. Numbers are part of the wire format: never reuse one.
enum class MessageType : std::uint32_t {
  kInvalid = 0,
  kSyncModel = 1,     // server -> worker: global model for `round` / `model_version`
  kTrainTask = 2,     // server -> worker: train `client_ids` against the last synced model
  kClientUpdate = 3,  // worker -> server: one client's result
  kFinish = 4,        // server -> worker: stop, the run is over
  kHeartbeat = 5,     // either way: liveness
  kError = 6,         // either way: `attrs["error"]` says what failed
  kRegister = 7,      // client -> server: join (deployment)
  kRegisterAck = 8,   // server -> client
  kEvalTask = 9,      // server -> worker: evaluate the synced model on `client_ids`' test data
  kEvalResult = 10,   // worker -> server
  kProtocol = 11,     // protocol layers (secure aggregation, verification): see attrs["stage"]
};

/// Highest MessageType value a decoder accepts.
inline constexpr std::uint32_t kMaxMessageType = 11;

/// "SYNC_MODEL", ...
const char* MessageTypeName(MessageType type);

/// Value type; moving it is cheap, copying copies every model it carries.
struct Message {
  MessageType type = MessageType::kInvalid;
  std::int32_t sender = -1;
  std::int32_t receiver = -1;
  std::int64_t round = -1;
  std::int64_t model_version = -1;           // version of the global model this refers to
  std::vector<std::int64_t> client_ids;      // clients this task or result concerns
  std::int64_t num_samples = 0;              // samples behind an update (its FedAvg weight)
  std::map<std::string, double> metrics;     // train_loss, accuracy, ...
  std::map<std::string, std::string> attrs;  // small string fields (errors, config, stage)
  ModelState model;                          // main payload: global model or client state
  std::map<std::string, ModelState> extras;  // side payloads (control variates, masks)
  std::string blob;                          // opaque bytes (commitments, protocol data)
};

}  // namespace fedml::core
