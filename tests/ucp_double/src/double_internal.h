// What the double's libdnn.so uses from its libhbucp.so (exported C++, namespace ucpd).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "double_abi.h"

namespace ucpd {

// ---- memory: every cached allocation has a CPU copy (virAddr) and a separate device copy
// that only hbUCPMemFlush moves data between.
std::mutex& memory_mutex();  // held while flushing, freeing, validating or computing
struct DeviceView {
  std::byte* data = nullptr;  // device copy of [virAddr, virAddr + size)
  int64_t id = 0;             // allocation id, as in the log
};
// Under memory_mutex(): the device copy of `mem`, when it is a live allocation (matching
// phyAddr) whose range holds `need` bytes and mem.memSize >= need. Else an error text.
std::string device_view(const hbUCPSysMem& mem, uint64_t need, DeviceView* out);
// Under memory_mutex(), after a task wrote `mem` (config evict_dirty=1): every 64-byte line
// whose CPU copy differs from its copy at the last flush is written over the device copy.
void evict_dirty(const hbUCPSysMem& mem);

// ---- tasks. Work runs on an emulated core, with memory_mutex() held; returns a status.
using Work = std::function<int32_t(int64_t task_id)>;
// A new task with one subtask; `label` goes to the log. Never fails.
hbUCPTaskHandle_t task_create(Work work, std::shared_ptr<void> data, int64_t latency_us,
                              const std::string& label);
// Adds a subtask to a task that was not submitted yet.
int32_t task_attach(hbUCPTaskHandle_t task, Work work, std::shared_ptr<void> data,
                    int64_t latency_us, const std::string& label);
// The data of subtask `index`; *done tells whether the task finished. Null if no such.
std::shared_ptr<void> task_data(hbUCPTaskHandle_t task, int32_t index, bool* done);

// ---- configuration, counters and the event log (see README.md).
int64_t config(const std::string& key);
void count(const std::string& counter, int64_t delta = 1);
void log(const std::string& line);
// Logs "error <call>: <why> -> <code>", counts it, returns code.
int32_t fail(const std::string& call, const std::string& why, int32_t code);

}  // namespace ucpd
