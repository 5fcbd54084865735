#include "base/atomic_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/temporary_file.h"

namespace sparseplan {

void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write) {
  TemporaryFile tmp(path);
  write(tmp.path());
  tmp.commit();
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(path + ": write failed");
  });
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (missing or unreadable)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sparseplan
