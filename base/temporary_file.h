// The temporary file every writer writes before renaming it over its target, and the one
// place that removes such files when the write does not finish: on an exception (destructor),
// on SIGINT or SIGTERM (a process-wide handler), and, for files left by a process that died
// (SIGKILL, power loss), on the next write to the same target.
#pragma once

#include <string>

namespace sparseplan {

// `target + ".tmp-<pid>"`. Constructing one removes every `target.tmp-<pid>` whose process no
// longer exists, and registers the temporary path with the signal handler, which is installed
// on first use: on SIGINT or SIGTERM it removes every registered temporary file, says so on
// stderr, and then lets the signal take its usual course (the process ends, killed by it).
// The file itself is created by the caller at path().
class TemporaryFile {
 public:
  explicit TemporaryFile(std::string target);
  ~TemporaryFile();  // removes the temporary file unless committed
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }

  // Renames the temporary file to the target; on failure removes it and throws naming the
  // target. Either way the file is no longer registered.
  void commit();
  // Removes the temporary file now (the destructor does the same).
  void discard();

 private:
  std::string target_;
  std::string path_;
  int slot_ = -1;  // registration with the signal handler; -1 once committed or discarded
};

// `target.tmp-<pid>` files in target's folder whose process has exited; removes them and
// returns how many. A file whose process is alive (another writer at work) is left alone.
int remove_stale_temporary_files(const std::string& target);

}  // namespace sparseplan
