#include "fedml/core/message.h"

namespace fedml::core {

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kInvalid:
      return "INVALID";
    case MessageType::kSyncModel:
      return "SYNC_MODEL";
    case MessageType::kTrainTask:
      return "TRAIN_TASK";
    case MessageType::kClientUpdate:
      return "CLIENT_UPDATE";
    case MessageType::kFinish:
      return "FINISH";
    case MessageType::kHeartbeat:
      return "HEARTBEAT";
    case MessageType::kError:
      return "ERROR";
    case MessageType::kRegister:
      return "REGISTER";
    case MessageType::kRegisterAck:
      return "REGISTER_ACK";
    case MessageType::kEvalTask:
      return "EVAL_TASK";
    case MessageType::kEvalResult:
      return "EVAL_RESULT";
    case MessageType::kProtocol:
      return "PROTOCOL";
  }
  // A value read from outside (a cast integer) that the enum does not list.
  return "UNKNOWN";
}

}  // namespace fedml::core
