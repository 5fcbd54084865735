// A unique temporary directory for one test, removed with everything in it when the test ends,
// also when it fails. Made and removed with POSIX calls rather than std::filesystem: pip's
// LibTorch exports its own ABI-incompatible copy of the std::filesystem operations, a test binary
// linked against it binds std::filesystem::remove_all there, and that call crashes.
#pragma once

#include <ftw.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    const char* tmp = std::getenv("TMPDIR");
    std::string name =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/sparseplan_test_" + tag + "_XXXXXX";
    if (::mkdtemp(name.data()) == nullptr)
      throw std::runtime_error("cannot create " + name + ": " + std::strerror(errno));
    path_ = name;
  }

  // FTW_PHYS: a symbolic link inside (to a fixture, say) is removed, never what it points to.
  ~ScratchDir() {
    const auto remove_entry = [](const char* entry, const struct stat*, int, struct FTW*) {
      return std::remove(entry);
    };
    if (::nftw(path_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
      std::fprintf(stderr, "warning: could not remove %s: %s\n", path_.c_str(),
                   std::strerror(errno));
  }

  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};
