// Test helper: a fresh directory, removed with everything in it at scope exit.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace fedml::testing {

class TempDir {
 public:
  /// A new directory `prefix`_<pid>_<n> under the system temp dir (or under `parent`).
  explicit TempDir(const std::string& prefix,
                   const std::filesystem::path& parent = std::filesystem::temp_directory_path()) {
    static int counter = 0;
    path_ = parent / (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string File(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace fedml::testing
