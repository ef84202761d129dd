// Reads of a shared mapping that someone else can truncate, without dying of SIGBUS.
//
// A segment is a file that its writer (or anyone allowed to write it) can shrink at any moment.
// Touching a mapped page beyond the new end of the file raises SIGBUS, which kills by default:
// a check of the file size before reading cannot help, because the size can change between the
// check and the load. So every load from a segment mapping runs inside guarded(): a process-wide
// SIGBUS handler, installed once, jumps back to the innermost guard of the faulting thread when
// the faulting address lies in that guard's mapping, and guarded() returns false. A SIGBUS from
// anywhere else goes to the handler that was there before (or kills, as it would have).
//
// Rules for the guarded function, because a fault abandons its frames without running
// destructors: it may load from the mapping and write to memory that outlives it, but no object
// with a destructor may be alive in any frame between guarded() and a load from the mapping.
// After a fault the mapping's contents are gone; the caller must stop using it.
#pragma once

#include <setjmp.h>

#include <cstddef>

namespace ttmem::collector {

struct MappingGuard {
  sigjmp_buf resume;
  const unsigned char* begin;
  const unsigned char* end;
  MappingGuard* outer;  // guards nest: the innermost one of the thread is asked first
};

// Installs the SIGBUS handler (once per process) and makes `guard` the thread's innermost;
// leaving makes its outer guard the innermost again.
void enter_mapping_guard(MappingGuard* guard);
void leave_mapping_guard(MappingGuard* guard);

// Runs fn() with SIGBUS from [base, base + size) turned into a `false` return.
// The jump buffer does not save the signal mask (no system call per guard): the handler
// restores the mask of the interrupted read before it jumps, on the fault path alone.
template <class Fn>
bool guarded(const void* base, size_t size, Fn&& fn) {
  MappingGuard guard;
  guard.begin = static_cast<const unsigned char*>(base);
  guard.end = guard.begin + size;
  // Leaves the guard however this frame is left: normally, after a fault, or by an exception
  // from fn() (a visitor that cannot allocate).
  struct Scope {
    MappingGuard* guard;
    ~Scope() { leave_mapping_guard(guard); }
  } scope{&guard};
  enter_mapping_guard(&guard);
  if (sigsetjmp(guard.resume, 0) != 0) return false;
  fn();
  return true;
}

}  // namespace ttmem::collector
