// Where the time of one model inference went.
#pragma once
#include <chrono>

namespace hbm {

using Clock = std::chrono::steady_clock;

struct ModelTimings {
  double started_at = 0;   // seconds on CLOCK_MONOTONIC (Python's time.monotonic) when work began
  double queued_us = 0;    // submitted -> a core picked it up
  double prepare_us = 0;   // inputs bound / copied
  double infer_us = 0;     // engine compute
  double finish_us = 0;    // outputs made ready
  int core = -1;           // virtual host core or -1 when the hardware chose
};

inline double micros_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// steady_clock is CLOCK_MONOTONIC on Linux, the clock behind time.monotonic/perf_counter.
inline double monotonic_seconds(Clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace hbm
