// Releasing and re-taking the GIL in a way that survives interpreter exit.
//
// Once Python finalizes, a thread that takes the GIL back is ended where it stands
// (pthread_exit, before Python 3.14). Ended inside a destructor such as nanobind's
// gil_scoped_release, the unwinding reaches a noexcept frame and the whole process aborts.
// From mark_finalizing() on, every thread but the finalizing one that would take the GIL
// through these guards waits for ever instead; the process then exits around them. Calls
// already running without the GIL get a few seconds to finish first, so that no thread is
// inside an engine library while the process unloads it.
#pragma once
#include <Python.h>

namespace hbm::py {

// Called once by the atexit hook, on the finalizing thread, with the GIL released: returns
// when no other thread works without the GIL or is taking it back (at most ~5 s).
void mark_finalizing() noexcept;

// Releases the GIL for its lifetime (on a thread that holds it).
class GilRelease {
 public:
  GilRelease() noexcept;
  ~GilRelease();
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// Holds the GIL for its lifetime (on any thread, Python's or ours).
class GilAcquire {
 public:
  GilAcquire() noexcept;
  ~GilAcquire();
  GilAcquire(const GilAcquire&) = delete;
  GilAcquire& operator=(const GilAcquire&) = delete;

 private:
  PyGILState_STATE state_;
};

}  // namespace hbm::py
