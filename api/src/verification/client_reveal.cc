#include "verification/client_reveal.h"

#include <exception>

#include "fedml/api/verification.h"

namespace fedml::api::verification {

VerifiedTask ParseTaskAttrs(const std::map<std::string, std::string>& attrs) {
  VerifiedTask task;
  const auto interval = attrs.find(kVerifyIntervalAttr);
  if (interval == attrs.end()) return task;
  try {
    task.checkpoint_interval = std::stoll(interval->second);
    const auto seed = attrs.find(kVerifySeedAttr);
    task.data_seed = std::stoull(seed == attrs.end() ? std::string() : seed->second);
    if (task.checkpoint_interval < 1) task.checkpoint_interval = -1;
  } catch (const std::exception&) {
    task.checkpoint_interval = -1;
  }
  return task;
}

void AnswerReveal(ClientTrainer& trainer, const core::Message& msg, core::Message& reply) {
  Status st;
  std::int64_t segment = -1;
  try {
    const auto it = msg.attrs.find(kVerifySegmentAttr);
    segment = std::stoll(it == msg.attrs.end() ? std::string() : it->second);
  } catch (const std::exception&) {
    st = Status::InvalidArgument("a reveal request without a valid segment");
  }
  if (st.ok() && msg.client_ids.size() != 1) {
    st = Status::InvalidArgument("a reveal request names one client");
  }
  if (st.ok()) {
    auto start = trainer.CommittedCheckpoint(msg.round, msg.client_ids[0], segment);
    auto next =
        start.ok() ? trainer.CommittedCheckpoint(msg.round, msg.client_ids[0], segment + 1) : start;
    if (next.ok()) {
      reply.model = std::move(start).value();
      reply.extras[kVerifyNextExtra] = std::move(next).value();
    } else {
      st = next.status();
    }
  }
  if (!st.ok()) reply.attrs["error"] = st.ToString();
}

}  // namespace fedml::api::verification
