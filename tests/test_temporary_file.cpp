#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/atomic_file.h"
#include "base/temporary_file.h"
#include "scratch_dir.h"

using namespace sparseplan;
namespace fs = std::filesystem;

namespace {

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> temporary_files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

// A process id that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

// Forks a child that starts rewriting `target` and receives `sig` halfway through the write;
// returns the child's wait status.
int signal_during_write(const fs::path& target, int sig) {
  const pid_t child = ::fork();
  if (child == 0) {
    write_atomically(target.string(), [&](const std::string& tmp) {
      std::ofstream(tmp) << "half of the new cont";
      ::kill(::getpid(), sig);
      ::_exit(3);  // not reached: the signal ends the process
    });
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

}  // namespace

TEST_CASE("temporary file: SIGTERM during a write removes the temporary file and keeps the old file") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "plan.json";
  write_text_atomically(target.string(), "old good contents\n");
  const int status = signal_during_write(target, SIGTERM);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(contents(target) == "old good contents\n");
  CHECK(temporary_files_in(scratch.path()).empty());
}

TEST_CASE("temporary file: SIGINT during a write removes the temporary file and keeps the old file") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "figure.png";
  write_text_atomically(target.string(), "old figure");
  const int status = signal_during_write(target, SIGINT);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
  CHECK(contents(target) == "old figure");
  CHECK(temporary_files_in(scratch.path()).empty());
}

TEST_CASE("temporary file: an exception during a write removes the temporary file") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "out.json";
  write_text_atomically(target.string(), "old");
  CHECK_THROWS_WITH(write_atomically(target.string(),
                                     [](const std::string& tmp) {
                                       std::ofstream(tmp) << "partial";
                                       throw std::runtime_error("disk full");
                                     }),
                    "disk full");
  CHECK(contents(target) == "old");
  CHECK(temporary_files_in(scratch.path()).empty());
}

TEST_CASE("temporary file: a stale temporary file of a dead process is removed on the next write") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "plan.json";
  const fs::path stale = scratch.path() / ("plan.json.tmp-" + std::to_string(dead_pid()));
  std::ofstream(stale) << "left by a killed writer";
  write_text_atomically(target.string(), "new\n");
  CHECK_FALSE(fs::exists(stale));
  CHECK(contents(target) == "new\n");
}

TEST_CASE("temporary file: the temporary file of a live process is left alone") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "plan.json";
  const fs::path live = scratch.path() / ("plan.json.tmp-" + std::to_string(::getppid()));
  std::ofstream(live) << "another writer at work";
  write_text_atomically(target.string(), "new\n");
  CHECK(fs::exists(live));
}

TEST_CASE("temporary file: stale files of other targets and other names are not touched") {
  const ScratchDir scratch("tmpfile");
  const std::string pid = std::to_string(dead_pid());
  const fs::path other = scratch.path() / ("other.json.tmp-" + pid);
  const fs::path not_a_pid = scratch.path() / "plan.json.tmp-backup";
  std::ofstream(other) << "x";
  std::ofstream(not_a_pid) << "x";
  write_text_atomically((scratch.path() / "plan.json").string(), "new\n");
  CHECK(fs::exists(other));
  CHECK(fs::exists(not_a_pid));
}

TEST_CASE("temporary file: commit renames into place and a failed commit names the target") {
  const ScratchDir scratch("tmpfile");
  const fs::path target = scratch.path() / "out.bin";
  {
    TemporaryFile tmp(target.string());
    CHECK(tmp.path() == target.string() + ".tmp-" + std::to_string(::getpid()));
    std::ofstream(tmp.path()) << "data";
    tmp.commit();
  }
  CHECK(contents(target) == "data");
  TemporaryFile never_created((scratch.path() / "none.bin").string());
  CHECK_THROWS_WITH(never_created.commit(), Catch::Contains("none.bin") && Catch::Contains("cannot write"));
}
