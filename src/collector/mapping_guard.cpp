#include "collector/mapping_guard.h"

#include <pthread.h>
#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <mutex>

namespace ttmem::collector {

namespace {

// initial-exec: read inside a signal handler, so it must never need __tls_get_addr (which may
// allocate the first time a thread touches a dlopen'ed library's TLS, e.g. in the Python module).
__attribute__((tls_model("initial-exec"))) thread_local MappingGuard* t_innermost = nullptr;

struct sigaction g_previous;

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto* addr = static_cast<const unsigned char*>(info->si_addr);
  for (MappingGuard* g = t_innermost; g != nullptr; g = g->outer) {
    if (addr >= g->begin && addr < g->end) {
      // Jumping out skips the kernel's restoring of the signal mask on return from the
      // handler, and the mask while it runs may hold more than SIGBUS: ThreadSanitizer, for
      // one, runs every handler with all signals blocked. Left that way, the thread's next
      // fault in a mapping would kill the process (a blocked SIGBUS cannot be handled) and it
      // would never see SIGTERM again. So the mask of the interrupted read is restored here,
      // on the fault path alone, instead of saving it in every guard's sigsetjmp.
      pthread_sigmask(SIG_SETMASK, &static_cast<const ucontext_t*>(context)->uc_sigmask, nullptr);
      siglongjmp(g->resume, 1);
    }
  }
  // Not a read of a guarded mapping: whatever would have happened without us happens.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) return g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // Default action: restore it and return; the faulting load runs again and the kernel
  // delivers SIGBUS with its default action (the process dies of it, with a core if enabled).
  signal(SIGBUS, SIG_DFL);
}

void install_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sigemptyset(&sa.sa_mask);
  // SA_NODEFER: SIGBUS stays unblocked while the handler runs, so a handler chained from it can
  // still take one. SA_ONSTACK: a thread with an alternate stack keeps using it.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

void enter_mapping_guard(MappingGuard* guard) {
  static std::once_flag installed;
  std::call_once(installed, install_handler);
  guard->outer = t_innermost;
  t_innermost = guard;
  // The handler runs on this thread: the guard must be published before the first load it
  // covers, which the compiler could otherwise move above this store.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

void leave_mapping_guard(MappingGuard* guard) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_innermost = guard->outer;
}

}  // namespace ttmem::collector
