// Writers never leave a half-written file where a good one was: write next to the target,
// then rename over it.
#pragma once

#include <functional>
#include <string>

namespace sparseplan {

// Calls write(temporary_path), then renames the temporary file to `path`. On any exception
// the temporary file is removed and the exception propagates; `path` is untouched. The
// temporary file is a TemporaryFile (base/temporary_file.h): SIGINT and SIGTERM remove it too.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& temporary_path)>& write);
void write_text_atomically(const std::string& path, const std::string& text);
std::string read_text_file(const std::string& path);  // throws naming the path

}  // namespace sparseplan
