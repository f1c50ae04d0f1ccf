// One logger for library code: a message at or above the process-wide level goes to stderr as a
// single line ("warning: ..." / "error: ..."; info and debug lines carry no prefix). The level
// is the config's `log_level` (debug, info, warning, error); the CLI sets it once at start-up.
//
// Contract: thread-safe (the level is atomic, and each message is one fprintf call, which stdio
// locks, so lines from several threads never interleave). Messages must hold no secrets: keys,
// tokens and shares are never logged at any level.
#pragma once

#include <string_view>

#include "fedml/core/status.h"

namespace fedml::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Sets the level below which messages are dropped (default kInfo).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// "debug", "info", "warning" or "error"; INVALID_ARGUMENT naming the allowed values otherwise.
Result<LogLevel> ParseLogLevel(std::string_view name);
/// True when a message at `level` would be written (to skip building costly messages).
bool LogEnabled(LogLevel level);
/// Writes one line (a newline is added) when `level` is enabled. printf-style.
void Log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace fedml::core

#define FEDML_LOG_DEBUG(...) ::fedml::core::Log(::fedml::core::LogLevel::kDebug, __VA_ARGS__)
#define FEDML_LOG_INFO(...) ::fedml::core::Log(::fedml::core::LogLevel::kInfo, __VA_ARGS__)
#define FEDML_LOG_WARNING(...) ::fedml::core::Log(::fedml::core::LogLevel::kWarning, __VA_ARGS__)
#define FEDML_LOG_ERROR(...) ::fedml::core::Log(::fedml::core::LogLevel::kError, __VA_ARGS__)
