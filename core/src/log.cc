#include "fedml/core/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace fedml::core {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

Result<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return Status::InvalidArgument("log_level '" + std::string(name) +
                                 "' is not one of debug, info, warning, error");
}

void Log(LogLevel level, const char* format, ...) {
  if (!LogEnabled(level)) return;
  char stack[512];
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(stack, sizeof(stack), format, args);
  va_end(args);
  std::string text;
  if (n >= static_cast<int>(sizeof(stack))) {
    text.resize(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(text.data(), text.size(), format, copy);
    text.resize(static_cast<std::size_t>(n));
  } else {
    text.assign(stack, n < 0 ? 0 : static_cast<std::size_t>(n));
  }
  va_end(copy);
  const char* prefix = level == LogLevel::kWarning ? "warning: "
                       : level == LogLevel::kError ? "error: "
                                                   : "";
  std::fprintf(stderr, "%s%s\n", prefix, text.c_str());  // one call: lines never interleave
}

}  // namespace fedml::core
