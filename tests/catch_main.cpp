// Catch2 runner that prints a native backtrace on a crash, so a segfault on a machine without
// a debugger still says where it happened. Catch2's own signal handling is off: it runs on an
// alternate stack and re-raises, which leaves nothing to unwind.
#define CATCH_CONFIG_RUNNER
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace {

void print_symbol(const char* what, uintptr_t addr) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(addr), &info) != 0 && info.dli_fname != nullptr)
    fprintf(stderr, "  %s %#lx %s(%s)\n", what, static_cast<unsigned long>(addr), info.dli_fname,
            info.dli_sname != nullptr ? info.dli_sname : "?");
}

// Unwinding can fail when the fault left no frame to walk (a call through a bad pointer), so
// the faulting instruction and the code addresses found on the stack are printed as well.
void on_fatal_signal(int sig, siginfo_t* si, void* context) {
  fprintf(stderr, "fatal signal %d at address %p\n", sig, si->si_addr);
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  print_symbol("pc", uintptr_t(uc->uc_mcontext.gregs[REG_RIP]));
  const auto* sp = reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
  for (int i = 0; i < 512; ++i) print_symbol("stack", sp[i]);
#endif
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char* argv[]) {
  struct sigaction action {};
  action.sa_sigaction = on_fatal_signal;
  action.sa_flags = SA_SIGINFO;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigaction(sig, &action, nullptr);
  return Catch::Session().run(argc, argv);
}
