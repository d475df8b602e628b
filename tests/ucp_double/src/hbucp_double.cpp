// Test double of libhbucp.so: cached sysmem with a separate device copy, tasks scheduled on
// emulated BPU cores, plus the hbTestDouble_* test-only API. State is never destroyed (it
// may be used from other libraries' static destructors).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <sstream>
#include <thread>
#include <vector>

#include "double_internal.h"

namespace ucpd {
namespace {

constexpr int kMaxCores = 4;

const std::map<std::string, int64_t>& defaults() {
  static const std::map<std::string, int64_t> d{
      {"cores", 4},       {"latency_us", 0}, {"hold", 0},      {"fail_init", 0},
      {"fail_infer", 0},  {"fail_submit", 0}, {"fail_wait", 0}, {"fail_flush", 0},
      {"fail_malloc", 0}, {"fail_release", 0}, {"stall", 0},    {"release_returns_early", 0},
      {"evict_dirty", 0}, {"grow_props", 0}, {"log", 1}};
  return d;
}

struct Alloc {
  int64_t id;
  uint64_t size, phy;
  bool cached;
  std::byte* cpu;
  std::vector<std::byte> dev;     // empty when not cached (coherent: device == cpu)
  std::vector<std::byte> shadow;  // cached: the CPU copy as of the last flush (dirty = differs)
};

struct Subtask {
  Work work;
  std::shared_ptr<void> data;
  int64_t latency_us;
};

enum class TState { Created, Queued, Running, Done, Cancelled };
const char* name(TState s) {
  static const char* n[] = {"created", "queued", "running", "done", "cancelled"};
  return n[static_cast<int>(s)];
}

struct Task {
  int64_t id;
  std::vector<Subtask> subs;
  TState state = TState::Created;
  hbUCPSchedParam sched{};
  uint64_t seq = 0;
  int32_t status = 0;
  int core = -1;
  hbUCPTaskDoneCb cb = nullptr;
  void* cb_user = nullptr;
  bool released = false;
  bool stalled = false;   // one of the first `stall` tasks to start: hangs until stall=0  // release_returns_early: released while running, erased when done
};

struct State {
  std::mutex cfg_mu, log_mu;  // leaf locks
  std::map<std::string, int64_t> cfg = defaults();
  std::map<std::string, int64_t> counters;
  std::string log;

  std::mutex mem_mu;  // allocations and their contents
  std::map<uintptr_t, Alloc> allocs;
  int64_t next_mem_id = 1;
  uint64_t next_phy = 0x80000000;

  std::mutex mu;  // tasks, queue, cores
  std::condition_variable cv;
  std::map<void*, std::unique_ptr<Task>> tasks;
  std::vector<Task*> queue;
  Task* assigned[kMaxCores] = {};
  bool threads = false;
  int64_t next_task_id = 1;
  int64_t stalled_count = 0;  // tasks stalled since `stall` was last 0
  uint64_t next_seq = 0;
};

void apply_config_text(State& s, const char* text) {
  std::stringstream in(text ? text : "");
  std::string item;
  while (std::getline(in, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    s.cfg[item.substr(0, eq)] = std::strtoll(item.c_str() + eq + 1, nullptr, 0);
  }
}

State& st() {
  static State* s = [] {
    auto* p = new State;
    apply_config_text(*p, std::getenv("HBM_UCP_DOUBLE_CONFIG"));
    return p;
  }();
  return *s;
}

std::string hex(uint64_t v) {
  std::ostringstream o;
  o << "0x" << std::hex << v;
  return o.str();
}

// Fills with a deterministic pseudo-random pattern (what stale or unset memory looks like).
void scribble(std::byte* p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<std::byte>(x >> 24);
  }
}

Alloc* find_alloc(State& s, const void* vir, uint64_t* offset) {  // under mem_mu
  auto addr = reinterpret_cast<uintptr_t>(vir);
  auto it = s.allocs.upper_bound(addr);
  if (it == s.allocs.begin()) return nullptr;
  --it;
  if (addr >= it->first + it->second.size) return nullptr;
  *offset = addr - it->first;
  return &it->second;
}

// ---- cores ----

bool allowed(const Task& t, int core) {
  const uint64_t b = t.sched.backend;
  return b == 0 || (b & kBpuAny) || (b & (uint64_t{1} << core));
}

void dispatch(State& s) {  // under mu
  if (config("hold")) return;
  const int n = static_cast<int>(std::clamp<int64_t>(config("cores"), 1, kMaxCores));
  std::stable_sort(s.queue.begin(), s.queue.end(), [](const Task* a, const Task* b) {
    if (a->sched.priority != b->sched.priority) return a->sched.priority > b->sched.priority;
    if (a->sched.customId != b->sched.customId) return a->sched.customId < b->sched.customId;
    return a->seq < b->seq;
  });
  for (auto it = s.queue.begin(); it != s.queue.end();) {
    int core = -1;
    for (int c = 0; c < n && core < 0; ++c)
      if (!s.assigned[c] && allowed(**it, c)) core = c;
    if (core < 0) {
      ++it;
      continue;
    }
    Task* t = *it;
    it = s.queue.erase(it);
    t->state = TState::Running;
    t->core = core;
    if (s.stalled_count < config("stall")) {
      t->stalled = true;
      ++s.stalled_count;
    }
    s.assigned[core] = t;
    log("start task=" + std::to_string(t->id) + " core=" + std::to_string(core));
  }
  s.cv.notify_all();
}

void core_loop(int core) {
  State& s = st();
  std::unique_lock lk(s.mu);
  for (;;) {
    s.cv.wait(lk, [&] { return s.assigned[core] != nullptr; });
    Task* t = s.assigned[core];
    int64_t latency = config("latency_us");
    for (const auto& sub : t->subs) latency += sub.latency_us;
    s.cv.wait(lk, [&] { return !t->stalled || config("stall") == 0; });
    lk.unlock();
    if (latency > 0) std::this_thread::sleep_for(std::chrono::microseconds(latency));
    int32_t status = 0;
    {
      std::lock_guard mem(s.mem_mu);
      for (const auto& sub : t->subs)
        if (status == 0) status = sub.work(t->id);
    }
    lk.lock();
    t->status = status;
    t->state = TState::Done;
    s.assigned[core] = nullptr;
    count("tasks_run");
    log("done task=" + std::to_string(t->id) + " core=" + std::to_string(core) +
        " status=" + std::to_string(status));
    auto cb = t->cb;
    void* user = t->cb_user;
    void* handle = t;
    dispatch(s);
    s.cv.notify_all();
    if (cb) {
      lk.unlock();
      cb(handle, status, user);
      lk.lock();
    }
    if (t->released) s.tasks.erase(handle);  // released early by the caller: gone now
  }
}

void start_cores(State& s) {  // under mu
  if (s.threads) return;
  s.threads = true;
  for (int c = 0; c < kMaxCores; ++c) std::thread(core_loop, c).detach();
}

Task* find_task(State& s, void* h) {  // under mu
  auto it = s.tasks.find(h);
  return it == s.tasks.end() || it->second->released ? nullptr : it->second.get();
}

const char* flag_name(int32_t flag) {
  return flag == kClean ? "CLEAN" : flag == kInvalidate ? "INVALIDATE" : "BOTH";
}

}  // namespace

// ---- internal API for the double's libdnn ----

std::mutex& memory_mutex() { return st().mem_mu; }

void evict_dirty(const hbUCPSysMem& mem) {
  if (!config("evict_dirty")) return;
  State& s = st();
  uint64_t off = 0;
  Alloc* a = find_alloc(s, mem.virAddr, &off);
  if (!a || !a->cached) return;
  const uint64_t end = std::min<uint64_t>(a->size, off + mem.memSize);
  for (uint64_t line = off / 64 * 64; line < end; line += 64) {
    const uint64_t n = std::min<uint64_t>(64, a->size - line);
    if (std::memcmp(a->cpu + line, a->shadow.data() + line, n) == 0) continue;
    std::memcpy(a->dev.data() + line, a->cpu + line, n);  // the stale CPU line wins
    std::memcpy(a->shadow.data() + line, a->cpu + line, n);
    count("evicted_lines");
  }
}

std::string device_view(const hbUCPSysMem& mem, uint64_t need, DeviceView* out) {
  State& s = st();
  uint64_t off = 0;
  Alloc* a = find_alloc(s, mem.virAddr, &off);
  if (!a) return "virAddr " + hex(reinterpret_cast<uintptr_t>(mem.virAddr)) + " is not sysmem";
  if (mem.phyAddr != a->phy + off)
    return "phyAddr " + hex(mem.phyAddr) + " does not match virAddr (expected " +
           hex(a->phy + off) + ")";
  if (mem.memSize < need || off + need > a->size)
    return "sysmem of " + std::to_string(mem.memSize) + " bytes, " + std::to_string(need) +
           " needed";
  out->data = (a->cached ? a->dev.data() : a->cpu) + off;
  out->id = a->id;
  return {};
}

hbUCPTaskHandle_t task_create(Work work, std::shared_ptr<void> data, int64_t latency_us,
                              const std::string& label) {
  State& s = st();
  auto t = std::make_unique<Task>();
  std::lock_guard lk(s.mu);
  t->id = s.next_task_id++;
  t->subs.push_back({std::move(work), std::move(data), latency_us});
  void* h = t.get();
  log("infer task=" + std::to_string(t->id) + " " + label);
  s.tasks.emplace(h, std::move(t));
  count("tasks_created");
  count("live_tasks");
  return h;
}

int32_t task_attach(hbUCPTaskHandle_t task, Work work, std::shared_ptr<void> data,
                    int64_t latency_us, const std::string& label) {
  State& s = st();
  std::lock_guard lk(s.mu);
  Task* t = find_task(s, task);
  if (!t) return fail("hbDNNInferV2", "unknown task handle", kUcpInvalidTask);
  if (t->state != TState::Created)
    return fail("hbDNNInferV2", "task already submitted", kUcpInvalidTask);
  t->subs.push_back({std::move(work), std::move(data), latency_us});
  log("attach task=" + std::to_string(t->id) + " " + label);
  return kOk;
}

std::shared_ptr<void> task_data(hbUCPTaskHandle_t task, int32_t index, bool* done) {
  State& s = st();
  std::lock_guard lk(s.mu);
  Task* t = find_task(s, task);
  if (!t || index < 0 || index >= static_cast<int32_t>(t->subs.size())) return nullptr;
  *done = t->state == TState::Done;
  return t->subs[index].data;
}

int64_t config(const std::string& key) {
  State& s = st();
  std::lock_guard lk(s.cfg_mu);
  auto it = s.cfg.find(key);
  return it == s.cfg.end() ? 0 : it->second;
}

void count(const std::string& counter, int64_t delta) {
  State& s = st();
  std::lock_guard lk(s.log_mu);
  s.counters[counter] += delta;
}

void log(const std::string& line) {
  if (!config("log")) return;  // long runs (the soak) would grow the log without end
  State& s = st();
  std::lock_guard lk(s.log_mu);
  s.log += line;
  s.log += '\n';
}

int32_t fail(const std::string& call, const std::string& why, int32_t code) {
  count("errors");
  log("error " + call + ": " + why + " -> " + std::to_string(code));
  return code;
}

}  // namespace ucpd

using namespace ucpd;

// ---- the public C API ----

extern "C" {

const char* hbUCPGetVersion() { return "3.7.3 (test double)"; }
const char* hbUCPGetSocName() { return "S100 (test double)"; }

const char* hbUCPGetErrorDesc(int32_t code) {
  switch (code) {
    case kOk: return "success";
    case kUcpInvalidArgument: return "invalid argument";
    case kUcpOutOfMemory: return "out of memory";
    case kUcpInvalidTask: return "invalid task handle";
    case kUcpTaskNotSubmitted: return "task not submitted";
    case kUcpTimeout: return "wait task timeout";
    case kUcpInvalidMemory: return "invalid sysmem";
    case kUcpInjected: return "injected failure";
    default: return "unknown ucp error";
  }
}

static int32_t do_malloc(hbUCPSysMem* mem, uint64_t size, int32_t device, bool cached) {
  const char* call = cached ? "hbUCPMallocCached" : "hbUCPMalloc";
  if (int64_t code = config("fail_malloc")) return fail(call, "injected", static_cast<int32_t>(code));
  if (!mem || size == 0 || device != 0) return fail(call, "bad argument", kUcpInvalidArgument);
  State& s = st();
  auto* cpu = static_cast<std::byte*>(::operator new(size, std::align_val_t(64), std::nothrow));
  if (!cpu) return fail(call, "no memory", kUcpOutOfMemory);
  std::lock_guard lk(s.mem_mu);
  Alloc a{s.next_mem_id++, size, s.next_phy, cached, cpu, {}, {}};
  s.next_phy += (size + 4095) / 4096 * 4096;
  scribble(cpu, size, a.id);
  if (cached) {
    a.dev.resize(size);
    scribble(a.dev.data(), size, ~a.id);
    a.shadow.assign(cpu, cpu + size);
  }
  *mem = hbUCPSysMem{a.phy, cpu, size};
  log(std::string("malloc mem=") + std::to_string(a.id) + " bytes=" + std::to_string(size) +
      " cached=" + (cached ? "1" : "0") + " vir=" + hex(reinterpret_cast<uintptr_t>(cpu)));
  count("mallocs");
  count("live_sysmem");
  count("live_sysmem_bytes", static_cast<int64_t>(size));
  s.allocs.emplace(reinterpret_cast<uintptr_t>(cpu), std::move(a));
  return kOk;
}

int32_t hbUCPMalloc(hbUCPSysMem* mem, uint64_t size, int32_t device) {
  return do_malloc(mem, size, device, false);
}
int32_t hbUCPMallocCached(hbUCPSysMem* mem, uint64_t size, int32_t device) {
  return do_malloc(mem, size, device, true);
}

int32_t hbUCPFree(hbUCPSysMem* mem) {
  State& s = st();
  if (!mem) return fail("hbUCPFree", "null", kUcpInvalidArgument);
  std::lock_guard lk(s.mem_mu);
  auto it = s.allocs.find(reinterpret_cast<uintptr_t>(mem->virAddr));
  if (it == s.allocs.end() || it->second.phy != mem->phyAddr)
    return fail("hbUCPFree", "not an allocation", kUcpInvalidMemory);
  log("free mem=" + std::to_string(it->second.id));
  count("frees");
  count("live_sysmem", -1);
  count("live_sysmem_bytes", -static_cast<int64_t>(it->second.size));
  ::operator delete(it->second.cpu, std::align_val_t(64));
  s.allocs.erase(it);
  return kOk;
}

int32_t hbUCPMemFlush(const hbUCPSysMem* mem, int32_t flag) {
  if (int64_t code = config("fail_flush")) return fail("hbUCPMemFlush", "injected", static_cast<int32_t>(code));
  if (!mem || flag < 1 || flag > 3) return fail("hbUCPMemFlush", "bad flag", kUcpInvalidArgument);
  State& s = st();
  std::lock_guard lk(s.mem_mu);
  uint64_t off = 0;
  Alloc* a = find_alloc(s, mem->virAddr, &off);
  if (!a || off + mem->memSize > a->size || mem->phyAddr != a->phy + off)
    return fail("hbUCPMemFlush", "not sysmem", kUcpInvalidMemory);
  if (a->cached) {
    if (flag & kClean) std::memcpy(a->dev.data() + off, a->cpu + off, mem->memSize);
    if (flag & kInvalidate) std::memcpy(a->cpu + off, a->dev.data() + off, mem->memSize);
    std::memcpy(a->shadow.data() + off, a->cpu + off, mem->memSize);  // clean either way
  }
  log("flush mem=" + std::to_string(a->id) + " flag=" + flag_name(flag) +
      " bytes=" + std::to_string(mem->memSize));
  count(flag == kClean ? "flush_clean" : flag == kInvalidate ? "flush_invalidate" : "flush_both");
  return kOk;
}

int32_t hbUCPSubmitTask(hbUCPTaskHandle_t task, hbUCPSchedParam* p) {
  State& s = st();
  std::lock_guard lk(s.mu);
  Task* t = find_task(s, task);
  if (!t) return fail("hbUCPSubmitTask", "unknown task", kUcpInvalidTask);
  if (int64_t code = config("fail_submit")) return fail("hbUCPSubmitTask", "injected", static_cast<int32_t>(code));
  if (!p) return fail("hbUCPSubmitTask", "null sched param", kUcpInvalidArgument);
  const int64_t cores = std::clamp<int64_t>(config("cores"), 1, kMaxCores);
  const uint64_t core_bits = p->backend & 0xF;
  if (p->priority < 0 || p->priority > 255 || (p->backend & ~uint64_t{0x8F}) ||
      (core_bits >> cores) || p->deviceId != 0)
    return fail("hbUCPSubmitTask", "bad sched param", kUcpInvalidArgument);
  if (t->state != TState::Created) return fail("hbUCPSubmitTask", "submitted twice", kUcpInvalidTask);
  t->sched = *p;
  t->seq = s.next_seq++;
  t->state = TState::Queued;
  s.queue.push_back(t);
  log("submit task=" + std::to_string(t->id) + " priority=" + std::to_string(p->priority) +
      " custom_id=" + std::to_string(p->customId) + " backend=" + hex(p->backend) +
      " device=" + std::to_string(p->deviceId));
  count("tasks_submitted");
  start_cores(s);
  dispatch(s);
  return kOk;
}

int32_t hbUCPSetTaskDoneCb(hbUCPTaskHandle_t task, hbUCPTaskDoneCb cb, void* user) {
  State& s = st();
  std::lock_guard lk(s.mu);
  Task* t = find_task(s, task);
  if (!t) return fail("hbUCPSetTaskDoneCb", "unknown task", kUcpInvalidTask);
  t->cb = cb;
  t->cb_user = user;
  return kOk;
}

int32_t hbUCPWaitTaskDone(hbUCPTaskHandle_t task, int32_t timeout_ms) {
  State& s = st();
  std::unique_lock lk(s.mu);
  Task* t = find_task(s, task);
  if (!t) return fail("hbUCPWaitTaskDone", "unknown task", kUcpInvalidTask);
  count("waits");
  if (int64_t code = config("fail_wait")) return fail("hbUCPWaitTaskDone", "injected", static_cast<int32_t>(code));
  if (t->state == TState::Created) return fail("hbUCPWaitTaskDone", "not submitted", kUcpTaskNotSubmitted);
  auto finished = [&] { return t->state == TState::Done || t->state == TState::Cancelled; };
  if (timeout_ms > 0) {
    if (!s.cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), finished))
      return fail("hbUCPWaitTaskDone", "task " + std::to_string(t->id) + " timed out", kUcpTimeout);
  } else {
    s.cv.wait(lk, finished);
  }
  log("wait task=" + std::to_string(t->id) + " status=" + std::to_string(t->status));
  return t->status;
}

// Releasing a queued task cancels it; releasing a running one waits for it to finish.
int32_t hbUCPReleaseTask(hbUCPTaskHandle_t task) {
  State& s = st();
  std::unique_lock lk(s.mu);
  Task* t = find_task(s, task);
  if (!t) return fail("hbUCPReleaseTask", "unknown task", kUcpInvalidTask);
  if (t->state == TState::Queued) {
    s.queue.erase(std::find(s.queue.begin(), s.queue.end(), t));
    t->state = TState::Cancelled;
    count("tasks_cancelled");
  }
  if (t->state == TState::Running && config("release_returns_early")) {
    // As real hardware may: the handle is gone for the caller, the task runs on.
    t->released = true;
    log("release task=" + std::to_string(t->id) + " state=running");
    count("live_tasks", -1);
    return kOk;
  }
  s.cv.wait(lk, [&] { return t->state != TState::Running; });
  log("release task=" + std::to_string(t->id) + " state=" + name(t->state));
  s.tasks.erase(task);
  count("live_tasks", -1);
  s.cv.notify_all();
  if (int64_t code = config("fail_release")) return fail("hbUCPReleaseTask", "injected (task was released)", static_cast<int32_t>(code));
  return kOk;
}

// ---- test-only API (see README.md) ----

int32_t hbTestDouble_dims() { return kDims; }

int32_t hbTestDouble_configure(const char* key, int64_t value) {
  State& s = st();
  if (!key || !defaults().count(key)) return -1;
  {
    std::lock_guard lk(s.cfg_mu);
    s.cfg[key] = value;
  }
  log(std::string("configure ") + key + "=" + std::to_string(value));
  std::lock_guard lk(s.mu);
  if (std::string(key) == "stall" && value == 0) s.stalled_count = 0;
  dispatch(s);  // e.g. hold=0 lets queued tasks start
  s.cv.notify_all();  // stall=0 lets stalled tasks finish
  return 0;
}

int64_t hbTestDouble_config(const char* key) {
  if (!key || !defaults().count(key)) return INT64_MIN;
  return config(key);
}

int64_t hbTestDouble_stat(const char* name) {
  State& s = st();
  std::lock_guard lk(s.log_mu);
  auto it = s.counters.find(name ? name : "");
  return it == s.counters.end() ? 0 : it->second;
}

static size_t copy_out(const std::string& text, char* buf, size_t cap) {
  if (buf && cap) {
    const size_t n = std::min(text.size(), cap - 1);
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return text.size();
}

size_t hbTestDouble_stats(char* buf, size_t cap) {
  State& s = st();
  std::string text;
  {
    std::lock_guard lk(s.log_mu);
    for (const auto& [k, v] : s.counters) text += k + "=" + std::to_string(v) + "\n";
  }
  return copy_out(text, buf, cap);
}

size_t hbTestDouble_log(char* buf, size_t cap) {
  State& s = st();
  std::string text;
  {
    std::lock_guard lk(s.log_mu);
    text = s.log;
  }
  return copy_out(text, buf, cap);
}

void hbTestDouble_reset() {
  State& s = st();
  {
    std::lock_guard lk(s.cfg_mu);
    s.cfg = defaults();
  }
  {
    std::lock_guard lk(s.mu);
    s.stalled_count = 0;
    dispatch(s);  // e.g. stall/hold back to 0
    s.cv.notify_all();
  }
  std::lock_guard lk(s.log_mu);
  s.log.clear();
  for (auto& [k, v] : s.counters)
    if (k.rfind("live_", 0) != 0) v = 0;
}

}  // extern "C"
