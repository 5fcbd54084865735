#include "base/temporary_file.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace sparseplan {
namespace {

// The signal handler may only touch async-signal-safe state: a fixed table of paths whose
// slots are claimed and released with atomics, never a container that allocates.
constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
enum SlotState : int { kFree = 0, kFilling = 1, kActive = 2 };
struct Slot {
  std::atomic<int> state{kFree};
  char path[kPathBytes];
};
Slot g_slots[kSlots];
struct sigaction g_previous_int;
struct sigaction g_previous_term;

void say(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_signal(int sig) {
  for (Slot& slot : g_slots) {
    if (slot.state.load() != kActive) continue;
    if (::unlink(slot.path) == 0) {
      say(sig == SIGINT ? "interrupted (SIGINT): removed the unfinished file "
                        : "interrupted (SIGTERM): removed the unfinished file ");
      say(slot.path);
      say("\n");
    }
  }
  // Hand the signal on to what was there before. Where it was ignored (a background job of a
  // non-interactive shell ignores SIGINT), it still ends the process: the file the process was
  // writing is gone, so carrying on would only fail later.
  const struct sigaction& previous = sig == SIGINT ? g_previous_int : g_previous_term;
  if (previous.sa_handler == SIG_IGN) {
    ::signal(sig, SIG_DFL);
  } else {
    ::sigaction(sig, &previous, nullptr);
  }
  ::raise(sig);  // blocked until this handler returns, then delivered
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, &g_previous_int);
    ::sigaction(SIGTERM, &action, &g_previous_term);
  });
}

int register_path(const std::string& path) {
  if (path.size() >= kPathBytes)
    throw std::invalid_argument(path + ": path too long (" + std::to_string(path.size()) +
                                " bytes)");
  install_handler();
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kFilling)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(kActive);
    return i;
  }
  throw std::runtime_error(path + ": more than " + std::to_string(kSlots) +
                           " files are being written at once");
}

void unregister_path(int slot) {
  if (slot >= 0) g_slots[slot].state.store(kFree);
}

std::string folder_of(const std::string& target) {
  const size_t slash = target.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return target.substr(0, slash);
}

std::string name_of(const std::string& target) {
  const size_t slash = target.rfind('/');
  return slash == std::string::npos ? target : target.substr(slash + 1);
}

// PID of "NAME.tmp-PID", or 0 when `entry` is not a temporary file of NAME.
long temporary_pid(const std::string& entry, const std::string& name) {
  const std::string prefix = name + ".tmp-";
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return 0;
  long pid = 0;
  for (size_t i = prefix.size(); i < entry.size(); ++i) {
    if (entry[i] < '0' || entry[i] > '9' || pid > 100000000L) return 0;
    pid = pid * 10 + (entry[i] - '0');
  }
  return pid;
}

bool process_gone(long pid) { return ::kill(pid_t(pid), 0) != 0 && errno == ESRCH; }

// Temporary files of processes gone when a folder is first written to, listed once per folder
// and process: writers of many files into one folder (figures, frames) would otherwise list it
// once per file. A process that dies later leaves its file for the next run to remove.
std::mutex g_stale_mutex;
std::map<std::string, std::vector<std::string>> g_stale_by_folder;

const std::vector<std::string>& stale_candidates(const std::string& folder) {
  auto it = g_stale_by_folder.find(folder);
  if (it != g_stale_by_folder.end()) return it->second;
  std::vector<std::string> found;
  if (DIR* dir = ::opendir(folder.c_str())) {
    while (const dirent* e = ::readdir(dir)) {
      const std::string entry = e->d_name;
      const size_t mark = entry.rfind(".tmp-");
      if (mark == std::string::npos || mark == 0) continue;
      const long pid = temporary_pid(entry, entry.substr(0, mark));
      if (pid > 0 && pid != long(::getpid()) && process_gone(pid)) found.push_back(entry);
    }
    ::closedir(dir);
  }
  return g_stale_by_folder.emplace(folder, std::move(found)).first->second;
}

}  // namespace

int remove_stale_temporary_files(const std::string& target) {
  const std::string folder = folder_of(target);
  const std::string name = name_of(target);
  std::lock_guard<std::mutex> lock(g_stale_mutex);
  const std::vector<std::string>& candidates = stale_candidates(folder);
  int removed = 0;
  for (const std::string& entry : candidates)
    if (temporary_pid(entry, name) > 0 && std::remove((folder + "/" + entry).c_str()) == 0)
      ++removed;
  return removed;
}

TemporaryFile::TemporaryFile(std::string target)
    : target_(std::move(target)), path_(target_ + ".tmp-" + std::to_string(::getpid())) {
  remove_stale_temporary_files(target_);
  slot_ = register_path(path_);
}

TemporaryFile::~TemporaryFile() { discard(); }

void TemporaryFile::commit() {
  if (slot_ < 0) throw std::logic_error(target_ + ": temporary file already closed");
  const bool renamed = std::rename(path_.c_str(), target_.c_str()) == 0;
  const std::string why = renamed ? "" : std::strerror(errno);
  if (!renamed) std::remove(path_.c_str());
  unregister_path(slot_);
  slot_ = -1;
  if (!renamed) throw std::runtime_error(target_ + ": cannot write (" + why + ")");
}

void TemporaryFile::discard() {
  if (slot_ < 0) return;
  std::remove(path_.c_str());
  unregister_path(slot_);
  slot_ = -1;
}

}  // namespace sparseplan
