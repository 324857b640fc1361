// Ctrl-C for synchronous work. A JS process.on('SIGINT') listener runs only when the
// event loop turns, which long synchronous work (encoding a latent cache, sampling)
// never lets happen, and while it is registered every further Ctrl-C waits too. The
// CLI instead installs this handler, which only records the signal, and polls the flag
// between steps. The handler resets itself (SA_RESETHAND): a second Ctrl-C terminates
// the process the default way at once, for a user who does not want to wait.
//   interruptInstall(): installs the handler and clears the flag (idempotent).
//   interruptPending() -> boolean: whether SIGINT arrived since the install.
#include <csignal>

#include "napi_util.h"

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) { g_interrupted = 1; }

}  // namespace

TS_NAPI(interruptInstall) {
  g_interrupted = 0;
#ifdef _WIN32
  std::signal(SIGINT, on_sigint);  // one-shot there too: the default is restored on delivery
#else
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  if (sigaction(SIGINT, &sa, nullptr) != 0) ts::fail("interruptInstall", "expected sigaction(SIGINT) to succeed");
#endif
  return info.Env().Undefined();
}

TS_NAPI(interruptPending) { return Napi::Boolean::New(info.Env(), g_interrupted != 0); }
