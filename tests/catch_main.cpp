// Catch2 runner that prints a native backtrace on a crash (Catch2 alone names only the test
// case), so a segfault on a machine without a debugger still says where it happened.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

namespace {

void print_backtrace(int sig) {
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char* argv[]) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, print_backtrace);
  return Catch::Session().run(argc, argv);
}
