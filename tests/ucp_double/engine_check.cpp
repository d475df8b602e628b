// Checks the BPU engine against the test double:
//   engine_check <double lib dir> <broken lib dir> <models dir>
// Exit status 0 when every check passed.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <cmath>
#include <map>
#include <thread>

#include "check_util.h"
#include "engines/ucp/ucp_api.h"
#include "engines/ucp/ucp_engine.h"

using namespace hbm;

namespace {

std::string g_lib, g_broken, g_models;
Double g_double;

std::string model_path(const std::string& file) { return g_models + "/" + file; }

std::shared_ptr<Model> find(const std::vector<std::shared_ptr<Model>>& ms, const std::string& n) {
  for (const auto& m : ms)
    if (m->info().name == n) return m;
  return nullptr;
}

int64_t stat(const char* name) { return g_double.stat(name); }

// ---- 1. missing libraries / symbols (in child processes, before anything is loaded) ----

void check_unavailable(const std::string& dir, const std::vector<std::string>& parts) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("HBM_UCP_LIB_DIR", dir.c_str(), 1);
    int rc = 3;
    try {
      make_ucp_engine();
      std::fprintf(stderr, "  make_ucp_engine succeeded with %s\n", dir.c_str());
    } catch (const EngineUnavailable& e) {
      rc = 0;
      for (const auto& p : parts)
        if (!contains(e.what(), p)) {
          std::fprintf(stderr, "  message lacks '%s': %s\n", p.c_str(), e.what());
          rc = 1;
        }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  wrong exception: %s\n", e.what());
    }
    std::fflush(nullptr);
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// ---- 2. layout probe on synthetic properties ----

ucp::RawProps synth(const ucp::PropsLayout& l, std::vector<int32_t> dims, std::vector<int64_t> strides,
                    int32_t type, int32_t scale_len, const float* scale) {
  ucp::RawProps r;
  std::memset(r.bytes.data(), 0, l.size);  // a library writes its whole struct
  ucp::PropsView v(l, r.bytes.data());
  v.set_num_dims(static_cast<int32_t>(dims.size()));
  for (size_t i = 0; i < dims.size(); ++i) {
    v.set_dim(static_cast<int>(i), dims[i]);
    v.set_stride(static_cast<int>(i), strides[i]);
  }
  std::memcpy(r.bytes.data() + l.tensor_type, &type, 4);
  std::memcpy(r.bytes.data() + l.scale_len, &scale_len, 4);
  std::memcpy(r.bytes.data() + l.scale_data, &scale, 8);
  int32_t quant = scale_len ? 1 : 0;
  std::memcpy(r.bytes.data() + l.quanti_type, &quant, 4);
  return r;
}

void check_probe() {
  static const float scales[255] = {};
  for (const ucp::PropsLayout* l : {&ucp::kLayoutD10, &ucp::kLayoutD8}) {
    std::vector<ucp::RawProps> s{
        synth(*l, {1, 672, 672, 1}, {-1, -1, 1, 1}, 3, 0, nullptr),
        synth(*l, {1, 84, 84, 255}, {7225344, 86016, 1024, 4}, 8, 255, scales),
        synth(*l, {8}, {1}, 3, 1, scales),
        synth(*l, {1, -1}, {-1, 4}, 7, 0, nullptr),
        synth(*l, {}, {}, 7, 0, nullptr),                             // a scalar
        synth(*l, {1, 3, 4, 5}, {240, 4, 60, 12}, 7, 0, nullptr)};    // NCHW shape, NHWC memory
    for (const auto& one : s) CHECK_EQ(ucp::probe_layout({&one, 1}).dims, l->dims);
    CHECK_EQ(ucp::probe_layout(s).dims, l->dims);
  }
  ucp::RawProps garbage;
  CHECK(thrown<EngineUnavailable>([&] { ucp::probe_layout({&garbage, 1}); }).has_value());
}

// ---- 3. metadata ----

void check_metadata(Engine& engine, const std::vector<std::shared_ptr<Model>>& ms,
                    const std::string& multi, const std::string& second) {
  std::vector<std::string> names;
  for (const auto& m : ms) names.push_back(m->info().name);
  CHECK_EQ(names, (std::vector<std::string>{"m_add", "m_nv12", "m_rows", "m_dyn", "m_types",
                                            "m_second"}));
  // One packed load of two files: the library does not say which holds a model, so each
  // model lists the whole load (the runtime orders and describes files from it).
  const std::vector<std::pair<std::string, std::string>> loaded_with{
      {multi, "multi-model test file\nsecond line"}, {second, "second test file"}};
  for (const auto& m : ms) {
    CHECK_EQ(m->info().file, std::string());
    CHECK(m->info().loaded_with == loaded_with);
  }
  const ModelInfo& add = find(ms, "m_add")->info();
  CHECK_EQ(add.desc, std::string("adds two F32 tensors"));
  CHECK_EQ(add.inputs.size(), 2u);
  CHECK_EQ(add.inputs[0].name, std::string("a"));
  CHECK_EQ(add.inputs[0].desc, std::string("first operand"));
  CHECK(add.inputs[1].dtype == DataType::F32);
  CHECK_EQ(add.inputs[1].shape, (std::vector<int64_t>{2, 3}));
  CHECK_EQ(add.inputs[1].strides, (std::vector<int64_t>{12, 4}));
  const TensorInfo& z = add.outputs[1];
  CHECK_EQ(z.name, std::string("z"));
  CHECK(z.dtype == DataType::S16);
  CHECK_EQ(z.strides, (std::vector<int64_t>{64, 2}));
  CHECK(z.quant.type == QuantType::SCALE);
  CHECK_EQ(z.quant.scale, (std::vector<float>{0.5f}));
  CHECK_EQ(z.quant.zero_point, (std::vector<int32_t>{3}));
  CHECK_EQ(z.quant.axis, 0);
  CHECK(add.outputs[0].quant.type == QuantType::NONE && add.outputs[0].quant.scale.empty());
  const ModelInfo& nv12 = find(ms, "m_nv12")->info();
  CHECK_EQ(nv12.inputs[0].strides, (std::vector<int64_t>{-1, -1, 1, 1}));
  CHECK_EQ(nv12.inputs[1].strides, (std::vector<int64_t>{-1, -1, 2, 1}));
  CHECK_EQ(nv12.outputs[0].quant.scale, (std::vector<float>{0.25f, 0.5f, 0.75f}));
  CHECK_EQ(nv12.outputs[0].quant.axis, 3);
  CHECK_EQ(find(ms, "m_rows")->info().desc, std::string());  // no desc: null pointer, size 0
  const ModelInfo& dyn = find(ms, "m_dyn")->info();
  CHECK_EQ(dyn.inputs[0].shape, (std::vector<int64_t>{1, -1}));
  CHECK_EQ(dyn.inputs[0].strides, (std::vector<int64_t>{-1, 4}));
  CHECK_EQ(dyn.outputs[0].shape, (std::vector<int64_t>{1, -1}));
  using Descs = std::vector<std::pair<std::string, std::string>>;
  const Descs want{{multi, "multi-model test file\nsecond line"}, {second, "second test file"}};
  for (const auto& m : ms) CHECK(ucp_file_descs(*m) == want);
  CHECK_EQ(engine.name(), std::string_view("ucp"));
  CHECK(engine.hardware_scheduled());
  CHECK_EQ(engine.max_core_id(), 3);
}

// ---- 4. inference results ----

void check_add(Model& m) {
  std::vector<float> a{1, 2, 3, 4, 5, 6}, b{10, 20, 30, 40, 50, 60};
  std::vector<InputView> in{view(a, DataType::F32, {2, 3}), view(b, DataType::F32, {2, 3})};
  ModelTimings t;
  auto out = m.infer(in, t);
  CHECK_EQ(out.size(), 2u);
  CHECK_EQ(out[1].strides, (std::vector<int64_t>{64, 2}));
  for (int k = 0; k < 6; ++k) {
    CHECK_EQ(at<float>(out[0], k), a[k] + b[k]);
    CHECK_EQ(at<int16_t>(out[1], k), static_cast<int16_t>(a[k] + 100));
  }
  CHECK(t.core == -1 && t.infer_us > 0 && t.prepare_us >= 0 && t.finish_us >= 0);
}

std::vector<OutputTensor> run_nv12(Model& m, const void* y, const void* uv) {
  std::vector<InputView> in{{y, DataType::U8, {1, 4, 6, 1}, 24},
                            {uv, DataType::U8, {1, 2, 3, 2}, 12}};
  ModelTimings t;
  return m.infer(in, t);
}

bool nv12_ok(const OutputTensor& o, const std::vector<uint8_t>& y, const std::vector<uint8_t>& uv) {
  bool ok = o.strides == std::vector<int64_t>{1536, 384, 64, 4};
  for (int k = 0; k < 72; ++k) ok = ok && at<int32_t>(o, k) == y[k % 24] + uv[k % 12];
  return ok;
}

void check_nv12(Model& m) {
  std::vector<uint8_t> y(24), uv(12);
  for (int k = 0; k < 24; ++k) y[k] = static_cast<uint8_t>(3 * k + 1);
  for (int k = 0; k < 12; ++k) uv[k] = static_cast<uint8_t>(100 + k);
  CHECK(nv12_ok(run_nv12(m, y.data(), uv.data())[0], y, uv));

  // input_buffers(): vendor-filled strides, used in place.
  auto bufs = m.input_buffers();
  CHECK_EQ(bufs.size(), 2u);
  CHECK_EQ(bufs[0].strides, (std::vector<int64_t>{256, 64, 1, 1}));
  CHECK_EQ(bufs[1].strides, (std::vector<int64_t>{128, 64, 2, 1}));
  for (int k = 0; k < 24; ++k) put<uint8_t>(bufs[0], k, y[k]);
  for (int k = 0; k < 12; ++k) put<uint8_t>(bufs[1], k, uv[k]);
  std::map<std::string, std::string> mem_of;  // vir address -> mem id
  for (const auto& l : g_double.lines("malloc ")) mem_of[field(l, "vir")] = field(l, "mem");
  auto id_of = [&](const void* p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%lx", reinterpret_cast<unsigned long>(p));
    return mem_of[buf];
  };
  const std::string held_ids = id_of(bufs[0].data) + "," + id_of(bufs[1].data);
  auto out1 = run_nv12(m, bufs[0].data, bufs[1].data);
  CHECK(nv12_ok(out1[0], y, uv));
  CHECK_EQ(field(g_double.lines("infer task=").back(), "inputs"), held_ids);
  // out1 still alive: the held set is busy, a second call copies from it into another set.
  auto out2 = run_nv12(m, bufs[0].data, bufs[1].data);
  CHECK(nv12_ok(out2[0], y, uv));
  CHECK(field(g_double.lines("infer task=").back(), "inputs") != held_ids);
  CHECK(nv12_ok(out1[0], y, uv));  // untouched by the second call
  out1.clear();
  out2.clear();
  const int64_t sets_mem = stat("live_sysmem");
  bufs.clear();  // gives the held set back to the pool
  CHECK(nv12_ok(run_nv12(m, y.data(), uv.data())[0], y, uv));
  CHECK_EQ(stat("live_sysmem"), sets_mem);  // reused, nothing new
}

void check_rows_types(Model& rows, Model& types) {
  std::vector<int8_t> x{-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};
  ModelTimings t;
  std::vector<InputView> in{view(x, DataType::S8, {3, 5})};
  auto out = rows.infer(in, t);
  for (int r = 0; r < 3; ++r) CHECK_EQ(at<int32_t>(out[0], r), 5 * (x[5 * r] + 2));
  for (int k = 0; k < 15; ++k) CHECK_EQ(static_cast<int>(at<uint8_t>(out[1], k)), 1 + 2 * k);

  std::vector<uint16_t> h{half_bits(1.5f), half_bits(2), half_bits(-3), half_bits(0.25f)};
  std::vector<double> d{1000, 1005, 2000, -5};
  std::vector<uint8_t> b{1, 0, 1, 1};
  std::vector<InputView> tin{view(h, DataType::F16, {4}), view(d, DataType::F64, {4}),
                             view(b, DataType::BOOL8, {4})};
  auto tout = types.infer(tin, t);
  const double s[] = {1002.5, 1007, 1998, -3.75};
  for (int k = 0; k < 4; ++k) CHECK_EQ(at<double>(tout[0], k), s[k]);
  for (int k = 0; k < 8; ++k) CHECK_EQ(at<uint64_t>(tout[1], k), uint64_t(10 + 3 * k));
  const int8_t q[] = {0, 5, 127, -128};
  for (int k = 0; k < 4; ++k) CHECK_EQ(int(at<int8_t>(tout[2], k)), int(q[k]));
}

void check_dynamic(Model& m) {
  CHECK(m.input_buffers().empty());  // dynamic shapes: no fixed buffers
  for (int n : {5, 40}) {
    std::vector<float> x(n);
    for (int k = 0; k < n; ++k) x[k] = static_cast<float>(k + 1);
    ModelTimings t;
    std::vector<InputView> in{view(x, DataType::F32, {1, n})};
    auto out = m.infer(in, t);
    CHECK_EQ(out[0].shape, (std::vector<int64_t>{1, 7}));  // from the task
    CHECK_EQ(out[0].strides, (std::vector<int64_t>{64, 4}));
    for (int k = 0; k < 7; ++k) CHECK_EQ(at<float>(out[0], k), x[k % n] + 0.5f);
    for (int k = 0; k < 4; ++k) CHECK_EQ(at<uint16_t>(out[1], k), half_bits(x[k % n]));
  }
}

void check_second(Model& m, uint8_t base = 0) {
  std::vector<uint8_t> x(8);
  for (int k = 0; k < 8; ++k) x[k] = static_cast<uint8_t>(base + k);
  ModelTimings t;
  std::vector<InputView> in{view(x, DataType::U8, {8})};
  auto out = m.infer(in, t);
  for (int k = 0; k < 8; ++k) CHECK_EQ(int(at<uint8_t>(out[0], k)), base + k + 1);
}

// ---- 5. scheduling ----

void check_sched(Model& m) {
  std::vector<uint8_t> x(8, 1);
  std::vector<InputView> in{view(x, DataType::U8, {8})};
  ModelTimings t;
  SchedParams sp;
  sp.priority = 7;
  sp.custom_id = 42;
  sp.bpu_cores = {0, 1};
  m.submit(in, sp, t)->wait(t);
  const std::string submit = g_double.lines("submit ").back();
  CHECK_EQ(field(submit, "priority"), std::string("7"));
  CHECK_EQ(field(submit, "custom_id"), std::string("42"));
  CHECK_EQ(field(submit, "backend"), std::string("0x3"));
  m.infer(in, t);
  CHECK_EQ(field(g_double.lines("submit ").back(), "backend"), std::string("0x80"));
  CHECK_EQ(field(g_double.lines("submit ").back(), "priority"), std::string("0"));

  // Order on one core: priority first, then customId, then arrival.
  g_double.configure("cores", 1);
  g_double.configure("hold", 1);
  const std::vector<std::pair<int, int64_t>> order{{1, 0}, {5, 9}, {5, 2}, {200, 0}, {1, -1}, {5, 2}};
  std::vector<std::unique_ptr<PendingInference>> pending;
  std::vector<std::string> ids;
  for (auto [p, c] : order) {
    sp = SchedParams{};
    sp.priority = p;
    sp.custom_id = c;
    pending.push_back(m.submit(in, sp, t));
    ids.push_back(field(g_double.lines("submit ").back(), "task"));
  }
  const size_t starts_before = g_double.lines("start ").size();
  g_double.configure("hold", 0);
  for (auto& p : pending) p->wait(t);
  auto starts = g_double.lines("start ");
  std::vector<std::string> ran;
  for (size_t i = starts_before; i < starts.size(); ++i) ran.push_back(field(starts[i], "task"));
  CHECK_EQ(ran, (std::vector<std::string>{ids[3], ids[2], ids[5], ids[1], ids[4], ids[0]}));

  // Core binding with four cores.
  g_double.configure("cores", 4);
  sp = SchedParams{};
  sp.bpu_cores = {2};
  m.submit(in, sp, t)->wait(t);
  CHECK_EQ(field(g_double.lines("start ").back(), "core"), std::string("2"));
  CHECK_EQ(field(g_double.lines("submit ").back(), "backend"), std::string("0x4"));

  // Invalid params: rejected before anything is taken.
  const int64_t tasks = stat("live_tasks");
  for (auto bad : {std::vector<int32_t>{4}, std::vector<int32_t>{-1, 0}}) {
    sp.bpu_cores = bad;
    CHECK(thrown<InvalidArgument>([&] { m.submit(in, sp, t); }).has_value());
  }
  sp = SchedParams{};
  sp.priority = 256;
  CHECK(thrown<InvalidArgument>([&] { m.submit(in, sp, t); }).has_value());
  CHECK_EQ(stat("live_tasks"), tasks);
}

// ---- 6. flush order of one inference, from the log ----

void check_flush_log(Model& m) {
  const size_t before = g_double.lines("").size();
  check_second(m, 20);
  auto all = g_double.lines("");
  std::vector<std::string> l(all.begin() + static_cast<long>(before), all.end());
  auto index = [&](const std::string& prefix, const std::string& key, const std::string& val,
                   bool last = false) {
    int found = -1;
    for (size_t i = 0; i < l.size(); ++i)
      if (l[i].rfind(prefix, 0) == 0 && (key.empty() || field(l[i], key) == val)) {
        found = int(i);
        if (!last) break;
      }
    return found;
  };
  const int infer = index("infer ", "", "");
  CHECK(infer >= 0);
  if (infer < 0) return;
  const std::string task = field(l[infer], "task"), in = field(l[infer], "inputs"),
                    out = field(l[infer], "outputs");
  const int clean = index("flush ", "mem", in), submit = index("submit ", "task", task),
            done = index("done ", "task", task), inval = index("flush ", "mem", out, true),
            release = index("release ", "task", task), pre = index("flush ", "mem", out);
  CHECK(clean >= 0 && field(l[clean], "flag") == "CLEAN" && clean < infer);
  CHECK(infer < submit && submit < done);
  CHECK(inval > done && field(l[inval], "flag") == "INVALIDATE" && inval < release);
  // The set was used before: its outputs are INVALIDATEd before the task too (README).
  CHECK(pre >= 0 && pre < infer && field(l[pre], "flag") == "INVALIDATE");
}

// ---- 7. concurrency ----

void check_concurrent(Model& m) {
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int th = 0; th < 6; ++th)
    threads.emplace_back([&, th] {
      for (int i = 0; i < 25; ++i) {
        std::vector<float> a(6), b(6);
        for (int k = 0; k < 6; ++k) a[k] = float(th * 1000 + i * 10 + k), b[k] = float(k);
        std::vector<InputView> in{view(a, DataType::F32, {2, 3}), view(b, DataType::F32, {2, 3})};
        ModelTimings t;
        SchedParams sp;
        sp.priority = (th * 37 + i) % 256;
        auto out = m.submit(in, sp, t)->wait(t);
        for (int k = 0; k < 6; ++k)
          if (at<float>(out[0], k) != a[k] + b[k]) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  CHECK_EQ(bad.load(), 0);
  const int64_t mallocs = stat("mallocs");
  check_add(m);
  CHECK_EQ(stat("mallocs"), mallocs);  // pool reused
}

// ---- 8. injected failures: EngineError with code, nothing leaked ----

void expect_engine_error(Model& m, const char* knob, int64_t code, const std::string& call,
                         const std::string& desc) {
  const int64_t tasks = stat("live_tasks"), mem = stat("live_sysmem");
  g_double.configure(knob, code);
  auto e = thrown<EngineError>([&] { check_second(m); });
  g_double.configure(knob, 0);
  CHECK(e.has_value());
  if (e) {
    CHECK_EQ(e->code, code);
    CHECK_EQ(e->description, desc);
    CHECK(contains(e->what(), "model 'm_second'") && contains(e->what(), call));
  }
  CHECK_EQ(stat("live_tasks"), tasks);
  CHECK_EQ(stat("live_sysmem"), mem);
  check_second(m, 3);  // still works
}

// What the engine leaked on purpose (the library failed a wait or a release).
int64_t g_leaked_tasks = 0, g_leaked_mems = 0, g_leaked_packed = 0;

bool poll(const std::function<bool()>& ok) {  // for the engine's reaper thread
  for (int i = 0; i < 10000; ++i) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return ok();
}

void check_failures(Engine& engine, Model& m) {
  expect_engine_error(m, "fail_infer", -6000099, "hbDNNInferV2", "injected failure");
  expect_engine_error(m, "fail_submit", -2000099, "hbUCPSubmitTask", "injected failure");
  expect_engine_error(m, "fail_flush", -2000099, "hbUCPMemFlush(CLEAN)", "injected failure");
  {
    // A failed wait: the reaper waits again; that fails too, so the task, its set (1 in +
    // 1 out) and the model are leaked, never freed nor reused. The model runs on a new set.
    const int64_t tasks = stat("live_tasks"), mem = stat("live_sysmem"), errs = stat("errors");
    g_double.configure("fail_wait", -2000005);
    auto e = thrown<EngineError>([&] { check_second(m); });
    CHECK(e && e->code == -2000005 && contains(e->what(), "hbUCPWaitTaskDone"));
    CHECK(poll([&] { return stat("errors") >= errs + 2; }));
    g_double.configure("fail_wait", 0);
    CHECK_EQ(stat("live_tasks"), tasks + 1);
    CHECK_EQ(stat("live_sysmem"), mem);
    check_second(m, 3);
    g_leaked_tasks += 1;
    g_leaked_mems += 2;
    g_leaked_packed = 1;  // the group of `m`
  }
  {
    // A failed release (the double releases the task anyway): the set is leaked.
    const int64_t tasks = stat("live_tasks"), mem = stat("live_sysmem");
    g_double.configure("fail_release", -2000099);
    auto e = thrown<EngineError>([&] { check_second(m); });
    g_double.configure("fail_release", 0);
    CHECK(e && e->code == -2000099 && contains(e->what(), "hbUCPReleaseTask"));
    CHECK_EQ(stat("live_tasks"), tasks);
    CHECK_EQ(stat("live_sysmem"), mem);
    check_second(m, 3);
    g_leaked_mems += 2;
  }

  const int64_t packed = stat("live_packed"), mem = stat("live_sysmem");
  g_double.configure("fail_init", -6000099);
  auto e = thrown<EngineError>([&] { engine.load({model_path("second.hbm")}); });
  g_double.configure("fail_init", 0);
  CHECK(e && e->code == -6000099 && contains(e->what(), "hbDNNInitializeFromFiles"));
  {
    auto fresh = engine.load({model_path("second.hbm")});
    g_double.configure("fail_malloc", -2000002);
    std::vector<uint8_t> x(8);
    std::vector<InputView> in{view(x, DataType::U8, {8})};
    ModelTimings t;
    auto me = thrown<EngineError>([&] { fresh[0]->infer(in, t); });
    g_double.configure("fail_malloc", 0);
    CHECK(me && me->code == -2000002 && contains(me->what(), "hbUCPMallocCached"));
    CHECK_EQ(stat("live_sysmem"), mem);

    // A dropped submission is waited for and released.
    auto p = fresh[0]->submit(in, SchedParams{}, t);
    p.reset();
    CHECK_EQ(stat("live_tasks"), g_leaked_tasks);
  }
  CHECK_EQ(stat("live_packed"), packed);
  CHECK_EQ(stat("live_sysmem"), mem);

  // Timeout from HBM_UCP_TIMEOUT_MS (read at load): a held task times out, is cancelled.
  setenv("HBM_UCP_TIMEOUT_MS", "30", 1);
  auto timed = engine.load({model_path("second.hbm")});
  unsetenv("HBM_UCP_TIMEOUT_MS");
  g_double.configure("hold", 1);
  std::vector<uint8_t> x(8);
  std::vector<InputView> in{view(x, DataType::U8, {8})};
  ModelTimings t;
  auto te = thrown<EngineError>([&] { timed[0]->infer(in, t); });
  g_double.configure("hold", 0);
  CHECK(te && te->code == -2000005 && contains(te->what(), "timeout 30 ms"));
  // The timed-out task was set aside: the reaper releases it once it ran.
  CHECK(poll([&] { return stat("live_tasks") == g_leaked_tasks; }));
  check_second(*timed[0], 9);

  setenv("HBM_UCP_TIMEOUT_MS", "soon", 1);
  CHECK(thrown<InvalidArgument>([&] { engine.load({model_path("second.hbm")}); }).has_value());
  unsetenv("HBM_UCP_TIMEOUT_MS");
}

void check_load_errors(Engine& engine) {
  const int64_t packed = stat("live_packed");
  CHECK(thrown<InvalidArgument>([&] { engine.load({model_path("nope.hbm")}); }).has_value());
  auto e = thrown<EngineError>([&] { engine.load({model_path("invalid.hbm")}); });
  CHECK(e && e->code == -6000002 && e->description == "invalid model");
  auto dup = thrown<InvalidArgument>(
      [&] { engine.load({model_path("multi.hbm"), model_path("dup_name.hbm")}); });
  CHECK(dup && contains(dup->what(), "m_add") && contains(dup->what(), "dup_name.hbm"));
  CHECK(thrown<InvalidArgument>([&] { engine.load({}); }).has_value());
  CHECK_EQ(stat("live_packed"), packed);

  auto bad = engine.load({model_path("bad_stride.hbm")});
  CHECK_EQ(bad[0]->info().inputs[0].strides, (std::vector<int64_t>{-1, -1}));
  std::vector<uint8_t> x(6);
  std::vector<InputView> in{view(x, DataType::U8, {2, 3})};
  ModelTimings t;
  auto ie = thrown<InvalidArgument>([&] { bad[0]->infer(in, t); });
  CHECK(ie && contains(ie->what(), "last dimension of stride cannot be dynamic"));
  CHECK(thrown<InvalidArgument>([&] { bad[0]->input_buffers(); }).has_value());
}

// ---- 9. the double punishes a missing CLEAN / INVALIDATE (raw library calls) ----

void check_double_punishes() {
  void* dnn = dlopen((g_lib + "/libdnn.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  void* ucp = dlopen((g_lib + "/libhbucp.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  CHECK(dnn && ucp);
  if (!dnn || !ucp) return;
  auto sym = [](void* h, const char* n) { return dlsym(h, n); };
  auto init = reinterpret_cast<ucp::FnDNNInitializeFromFiles*>(sym(dnn, "hbDNNInitializeFromFiles"));
  auto release = reinterpret_cast<ucp::FnDNNRelease*>(sym(dnn, "hbDNNRelease"));
  auto handle = reinterpret_cast<ucp::FnDNNGetModelHandle*>(sym(dnn, "hbDNNGetModelHandle"));
  auto in_props = reinterpret_cast<ucp::FnDNNGetTensorProperties*>(sym(dnn, "hbDNNGetInputTensorProperties"));
  auto out_props = reinterpret_cast<ucp::FnDNNGetTensorProperties*>(sym(dnn, "hbDNNGetOutputTensorProperties"));
  auto infer = reinterpret_cast<ucp::FnDNNInferV2*>(sym(dnn, "hbDNNInferV2"));
  auto malloc_c = reinterpret_cast<ucp::FnUCPMallocCached*>(sym(ucp, "hbUCPMallocCached"));
  auto flush = reinterpret_cast<ucp::FnUCPMemFlush*>(sym(ucp, "hbUCPMemFlush"));
  auto free_m = reinterpret_cast<ucp::FnUCPFree*>(sym(ucp, "hbUCPFree"));
  auto submit = reinterpret_cast<ucp::FnUCPSubmitTask*>(sym(ucp, "hbUCPSubmitTask"));
  auto wait = reinterpret_cast<ucp::FnUCPWaitTaskDone*>(sym(ucp, "hbUCPWaitTaskDone"));
  auto rel_task = reinterpret_cast<ucp::FnUCPReleaseTask*>(sym(ucp, "hbUCPReleaseTask"));

  const ucp::PropsLayout& l = g_double.dims() == 10 ? ucp::kLayoutD10 : ucp::kLayoutD8;
  const std::string file = model_path("second.hbm");
  const char* files[] = {file.c_str()};
  ucp::PackedHandle packed = nullptr;
  ucp::ModelHandle h = nullptr;
  CHECK(init(&packed, files, 1) == 0 && handle(&h, packed, "m_second") == 0);
  std::vector<std::byte> tin(l.tensor_size()), tout(l.tensor_size());
  ucp::SysMem in{}, out{};
  CHECK(malloc_c(&in, 64, 0) == 0 && malloc_c(&out, 64, 0) == 0);
  std::memcpy(tin.data(), &in, sizeof in);
  std::memcpy(tout.data(), &out, sizeof out);
  in_props(tin.data() + sizeof(ucp::SysMem), h, 0);
  out_props(tout.data() + sizeof(ucp::SysMem), h, 0);
  auto run = [&] {
    ucp::TaskHandle task = nullptr;
    ucp::SchedParam sp{0, 0, ucp::kBackendBpuAny, 0};
    CHECK(infer(&task, tout.data(), tin.data(), h) == 0);
    CHECK(submit(task, &sp) == 0 && wait(task, 0) == 0 && rel_task(task) == 0);
  };
  auto* x = static_cast<uint8_t*>(in.virAddr);
  auto* y = static_cast<uint8_t*>(out.virAddr);
  auto correct = [&] {
    for (int k = 0; k < 8; ++k)
      if (y[k] != uint8_t(x[k] + 1)) return false;
    return true;
  };
  for (int k = 0; k < 8; ++k) x[k] = uint8_t(k * 3);
  run();  // no CLEAN: the device reads stale input
  flush(&out, ucp::kFlushInvalidate);
  CHECK(!correct());
  flush(&in, ucp::kFlushClean);
  run();  // no INVALIDATE: the CPU still sees the old output
  CHECK(!correct());
  flush(&out, ucp::kFlushInvalidate);
  CHECK(correct());
  free_m(&in);
  free_m(&out);
  release(packed);
}

// ---- 10. the vendor's yolov5x example and the lanenet-style model ----

void check_yolo(Engine& engine) {
  const std::string file = model_path("yolov5x_672x672_nv12.hbm");
  auto ms = engine.load({file});
  CHECK_EQ(ms.size(), 1u);
  Model& m = *ms[0];
  const ModelInfo& i = m.info();
  CHECK_EQ(i.name, std::string("yolov5x_672x672_nv12"));
  CHECK_EQ(i.file, file);
  CHECK_EQ(i.inputs[0].name + "," + i.inputs[1].name, std::string("data_y,data_uv"));
  CHECK_EQ(i.inputs[0].shape, (std::vector<int64_t>{1, 672, 672, 1}));
  CHECK_EQ(i.inputs[1].shape, (std::vector<int64_t>{1, 336, 336, 2}));
  CHECK_EQ(i.inputs[0].strides, (std::vector<int64_t>{-1, -1, 1, 1}));
  CHECK_EQ(i.inputs[1].strides, (std::vector<int64_t>{-1, -1, 2, 1}));
  CHECK_EQ(i.outputs[0].name + "," + i.outputs[1].name + "," + i.outputs[2].name,
           std::string("output,1310,1312"));
  CHECK_EQ(i.outputs[0].strides, (std::vector<int64_t>{7225344, 86016, 1024, 4}));
  CHECK_EQ(i.outputs[1].strides, (std::vector<int64_t>{1806336, 43008, 1024, 4}));
  CHECK_EQ(i.outputs[2].strides, (std::vector<int64_t>{451584, 21504, 1024, 4}));
  CHECK_EQ(i.outputs[2].shape, (std::vector<int64_t>{1, 21, 21, 255}));
  for (const auto& o : i.outputs) CHECK(o.dtype == DataType::S32 && o.quant.type == QuantType::SCALE);
  CHECK_EQ(i.outputs[0].quant.scale.size(), 255u);
  CHECK_EQ(i.outputs[0].quant.scale[254], 255.0f / 4096);
  auto bufs = m.input_buffers();
  CHECK_EQ(bufs[0].strides, (std::vector<int64_t>{473088, 704, 1, 1}));
  CHECK_EQ(bufs[1].strides, (std::vector<int64_t>{236544, 704, 2, 1}));
  bufs.clear();

  std::vector<uint8_t> y(672 * 672), uv(336 * 336 * 2);
  for (size_t k = 0; k < y.size(); ++k) y[k] = uint8_t(k % 251);
  for (size_t k = 0; k < uv.size(); ++k) uv[k] = uint8_t(k * 7 % 253);
  std::vector<InputView> in{view(y, DataType::U8, {1, 672, 672, 1}),
                            view(uv, DataType::U8, {1, 336, 336, 2})};
  ModelTimings t;
  auto out = m.infer(in, t);
  int64_t bad = 0;
  for (int64_t k = 0; k < numel(out[0].shape); ++k)
    bad += at<int32_t>(out[0], k) != y[k % y.size()] + uv[k % uv.size()];
  for (int64_t k = 0; k < numel(out[1].shape); ++k) bad += at<int32_t>(out[1], k) != uv[k % uv.size()];
  for (int64_t k = 0; k < numel(out[2].shape); ++k) bad += at<int32_t>(out[2], k) != y[k % y.size()] - 128;
  CHECK_EQ(bad, 0);
  // Read as dense, the padded output is wrong (padding holds garbage).
  OutputTensor dense = out[0];
  dense.strides = {84 * 84 * 255 * 4, 84 * 255 * 4, 255 * 4, 4};
  int64_t dense_bad = 0;
  for (int64_t k = 0; k < 2000; ++k) dense_bad += at<int32_t>(dense, k) != y[k] + uv[k];
  CHECK(dense_bad > 0);
}

void check_lanenet(Engine& engine) {
  auto ms = engine.load({model_path("lanenet256x512.hbm")});
  Model& m = *ms[0];
  CHECK_EQ(m.info().inputs.size(), 1u);
  CHECK(m.info().inputs[0].dtype == DataType::F32);
  std::vector<float> x(3 * 256 * 512, 1.0f);
  std::vector<InputView> in{view(x, DataType::F32, {1, 3, 256, 512})};
  ModelTimings t;
  auto out = m.infer(in, t);
  int64_t bad = 0;
  for (int64_t k = 0; k < numel(out[0].shape); ++k) bad += at<float>(out[0], k) != 2.0f;
  for (int64_t k = 0; k < numel(out[1].shape); ++k) bad += at<float>(out[1], k) != 512.0f;
  CHECK_EQ(bad, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: engine_check <double lib dir> <broken lib dir> <models dir>\n");
    return 2;
  }
  g_lib = argv[1];
  g_broken = argv[2];
  g_models = argv[3];

  check_unavailable("/nonexistent-ucp-dir", {"libhbucp.so", "hobot-dnn", "HBM_UCP_LIB_DIR"});
  check_unavailable(g_broken, {"hbDNNInitializeFromFiles", "hobot-dnn", "HBM_UCP_LIB_DIR"});
  check_probe();

  setenv("HBM_UCP_LIB_DIR", g_lib.c_str(), 1);
  try {
    auto engine = make_ucp_engine();
    if (!g_double.open(g_lib)) {
      std::fprintf(stderr, "FAIL: the double's test API is not loaded\n");
      return 1;
    }
    std::printf("double layout D=%d; engine version: %s\n", g_double.dims(),
                engine->version().c_str());
    CHECK(contains(engine->version(), "libdnn 3.13.6") && contains(engine->version(), "libhbucp") &&
          contains(engine->version(), "(SoC "));
    const std::string multi = model_path("multi.hbm"), second = model_path("second.hbm");
    {
      auto ms = engine->load({multi, second});
      check_metadata(*engine, ms, multi, second);
      check_add(*find(ms, "m_add"));
      check_nv12(*find(ms, "m_nv12"));
      check_rows_types(*find(ms, "m_rows"), *find(ms, "m_types"));
      check_dynamic(*find(ms, "m_dyn"));
      check_second(*find(ms, "m_second"));
      check_flush_log(*find(ms, "m_second"));
      check_sched(*find(ms, "m_second"));
      check_concurrent(*find(ms, "m_add"));
      check_failures(*engine, *find(ms, "m_second"));
      check_load_errors(*engine);
    }
    check_double_punishes();
    check_yolo(*engine);
    check_lanenet(*engine);
    CHECK(poll([&] { return stat("live_packed") == g_leaked_packed; }));
    CHECK_EQ(stat("live_sysmem"), g_leaked_mems);
    CHECK_EQ(stat("live_tasks"), g_leaked_tasks);
    CHECK_EQ(stat("live_packed"), g_leaked_packed);
    CHECK_EQ(stat("errors") > 0, true);  // the injected ones
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: uncaught exception: %s\n", e.what());
    return 1;
  }
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
