// Test double of libdnn.so: loads our text model descriptions, reports their metadata the
// way the real library does (descs not NUL-terminated, -1 strides, padded outputs) and runs
// their ops as tasks of the double's libhbucp.so.
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "double_internal.h"
#include "model_text.h"

namespace ucpd {
namespace {

// A description as the library hands it out: not NUL-terminated (junk follows).
struct Desc {
  std::string buf;
  uint32_t size = 0;
  explicit Desc(const std::string& s = {}) : buf(s + "\x7f<junk: not part of the desc>"), size(static_cast<uint32_t>(s.size())) {}
  int32_t get(const char** desc, uint32_t* sz, int32_t* type) const {
    if (!desc || !sz || !type) return kDnnInvalidArgument;
    *desc = size ? buf.data() : nullptr;
    *sz = size;
    *type = size ? 1 : 0;
    return kOk;
  }
};

struct ModelRt {
  std::shared_ptr<const ModelDef> def;
  std::vector<hbDNNTensorProperties> in_props, out_props;
  Desc desc;
  std::vector<Desc> in_desc, out_desc;
};

struct Packed {
  std::vector<Desc> file_desc;
  std::vector<std::shared_ptr<ModelRt>> models;
  std::vector<const char*> names;
};

struct Registry {
  std::mutex mu;
  std::set<Packed*> packs;
  std::map<void*, std::shared_ptr<ModelRt>> handles;
};
Registry& reg() {
  static auto* r = new Registry;
  return *r;
}

bool known(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x < 0) return false;
  return true;
}

// -1 strides filled from the innermost dim outwards, rows rounded up to 64 bytes.
std::vector<int64_t> vendor_fill(std::vector<int64_t> strides, const std::vector<int64_t>& dims) {
  for (size_t i = strides.size() - 1; i-- > 0;)
    if (strides[i] < 0) strides[i] = (dims[i + 1] * strides[i + 1] + 63) / 64 * 64;
  return strides;
}

hbDNNTensorProperties props_of(const TensorDef& t) {
  hbDNNTensorProperties p;
  std::memset(&p, 0, sizeof p);
  p.validShape.numDimensions = static_cast<int32_t>(t.dims.size());
  for (size_t i = 0; i < t.dims.size(); ++i) {
    p.validShape.dimensionSize[i] = static_cast<int32_t>(t.dims[i]);
    p.stride[i] = t.strides[i];
  }
  p.tensorType = t.dtype;
  p.quantiType = t.quant_type;
  p.quantizeAxis = t.axis;
  p.scale.scaleLen = static_cast<int32_t>(t.scale.size());
  p.scale.scaleData = t.scale.empty() ? nullptr : const_cast<float*>(t.scale.data());
  p.scale.zeroPointLen = static_cast<int32_t>(t.zero_point.size());
  p.scale.zeroPointData = t.zero_point.empty() ? nullptr : const_cast<int32_t*>(t.zero_point.data());
  // A real library reports the padded size even for -1 strides (the filled outer stride
  // times the outer dim); a model text's explicit aligned= (0 included) overrides it.
  p.alignedByteSize = t.aligned;
  if (t.aligned < 0) {
    p.alignedByteSize = 0;
    if (known(t.dims) && !t.strides.empty() && t.strides.back() > 0) {
      const std::vector<int64_t> filled = vendor_fill(t.strides, t.dims);
      if (known(filled)) p.alignedByteSize = filled[0] * t.dims[0];
    }
  }
  return p;
}

// Where one output of a task lives: its concrete shape, strides and size.
struct OutLayout {
  std::vector<int64_t> dims, strides;
  uint64_t bytes = 0;
};
OutLayout out_layout(const TensorDef& t) {
  OutLayout o;
  o.dims = t.valid.empty() ? t.dims : t.valid;
  o.strides = vendor_fill(t.strides, o.dims);
  o.bytes = static_cast<uint64_t>(std::max<int64_t>(t.aligned, o.strides[0] * o.dims[0]));
  return o;
}

std::shared_ptr<ModelRt> make_runtime(ModelDef def) {
  auto rt = std::make_shared<ModelRt>();
  auto d = std::make_shared<const ModelDef>(std::move(def));
  rt->def = d;
  rt->desc = Desc(d->desc);
  for (const auto& t : d->inputs) {
    rt->in_props.push_back(props_of(t));
    rt->in_desc.emplace_back(t.desc);
  }
  for (const auto& t : d->outputs) {
    rt->out_props.push_back(props_of(t));
    rt->out_desc.emplace_back(t.desc);
  }
  return rt;
}

// grow_props=N: a newer library whose struct grew writes N more bytes past ours.
void grow(hbDNNTensorProperties* props) {
  if (int64_t n = config("grow_props"); n > 0)
    std::memset(reinterpret_cast<char*>(props) + sizeof *props, 0x5A, static_cast<size_t>(n));
}

std::shared_ptr<ModelRt> find_model(hbDNNHandle_t h) {
  Registry& r = reg();
  std::lock_guard lk(r.mu);
  auto it = r.handles.find(h);
  return it == r.handles.end() ? nullptr : it->second;
}

bool find_packed(hbPackedDNNHandle_t h) {
  Registry& r = reg();
  std::lock_guard lk(r.mu);
  return r.packs.count(static_cast<Packed*>(h)) != 0;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// One model inference, ready to run on a core.
struct Job {
  std::shared_ptr<const ModelDef> def;
  std::vector<hbUCPSysMem> in_mem, out_mem;
  std::vector<std::vector<int64_t>> in_dims, in_strides;
  std::vector<uint64_t> in_need;
  std::vector<OutLayout> out;

  int32_t run(int64_t task_id) const {  // under memory_mutex()
    std::vector<Strided> ins;
    for (size_t i = 0; i < in_mem.size(); ++i) {
      DeviceView v;
      if (auto err = device_view(in_mem[i], in_need[i], &v); !err.empty())
        return fail("task " + def->name, "input " + def->inputs[i].name + ": " + err, kDnnRunFailed);
      ins.push_back({v.data, def->inputs[i].dtype, in_dims[i], in_strides[i]});
    }
    for (size_t i = 0; i < out_mem.size(); ++i) {
      DeviceView v;
      if (auto err = device_view(out_mem[i], out[i].bytes, &v); !err.empty())
        return fail("task " + def->name, "output " + def->outputs[i].name + ": " + err, kDnnRunFailed);
      // Padding and anything not written by the op is garbage, different every run.
      uint64_t x = static_cast<uint64_t>(task_id) * 0x9E3779B97F4A7C15ull + i + 1;
      for (uint64_t b = 0; b < out[i].bytes; ++b) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v.data[b] = static_cast<std::byte>(x >> 32);
      }
      run_op(def->outputs[i].op, ins, {v.data, def->outputs[i].dtype, out[i].dims, out[i].strides});
      evict_dirty(out_mem[i]);
    }
    return kOk;
  }
};

// Checks one input tensor against the model; fills the job's view of it.
std::string check_input(const TensorDef& d, const hbDNNTensor& t, Job& job, std::string& ids) {
  const hbDNNTensorProperties& p = t.properties;
  const size_t nd = d.dims.size();
  if (p.tensorType != d.dtype) return "tensorType " + std::to_string(p.tensorType);
  if (p.validShape.numDimensions != static_cast<int32_t>(nd))
    return "numDimensions " + std::to_string(p.validShape.numDimensions);
  std::vector<int64_t> dims(nd), strides(nd);
  for (size_t i = 0; i < nd; ++i) {
    dims[i] = p.validShape.dimensionSize[i];
    strides[i] = p.stride[i];
    if (d.dims[i] >= 0 ? dims[i] != d.dims[i] : dims[i] <= 0) return "shape [" + join(dims) + "]";
  }
  const int64_t item = static_cast<int64_t>(elem_size(d.dtype));
  for (size_t i = nd; i-- > 0;) {
    const int64_t inner = i + 1 < nd ? dims[i + 1] * strides[i + 1] : item;
    if (d.strides[i] >= 0 && strides[i] != d.strides[i] && d.dims[i] >= 0 && known(d.dims))
      return "stride [" + join(strides) + "] differs from the model's [" + join(d.strides) + "]";
    if (strides[i] < inner) return "stride [" + join(strides) + "] overlaps (unfilled -1?)";
    if (d.strides[i] < 0 && strides[i] % 32) return "filled stride " + std::to_string(strides[i]) + " not 32-byte aligned";
  }
  job.in_dims.push_back(dims);
  job.in_strides.push_back(strides);
  job.in_need.push_back(static_cast<uint64_t>(strides[0] * dims[0]));
  job.in_mem.push_back(t.sysMem);
  DeviceView v;
  if (auto err = device_view(t.sysMem, job.in_need.back(), &v); !err.empty()) return err;
  ids += (ids.empty() ? "" : ",") + std::to_string(v.id);
  return "";
}

std::string check_output(const TensorDef& d, const hbDNNTensor& t, Job& job, std::string& ids) {
  const hbDNNTensorProperties& p = t.properties;
  if (p.tensorType != d.dtype) return "tensorType " + std::to_string(p.tensorType);
  if (p.validShape.numDimensions != static_cast<int32_t>(d.dims.size()))
    return "numDimensions " + std::to_string(p.validShape.numDimensions);
  job.out.push_back(out_layout(d));
  job.out_mem.push_back(t.sysMem);
  DeviceView v;
  if (auto err = device_view(t.sysMem, job.out.back().bytes, &v); !err.empty()) return err;
  ids += (ids.empty() ? "" : ",") + std::to_string(v.id);
  return "";
}

int32_t load_files(hbPackedDNNHandle_t* packed, const std::vector<std::string>& texts,
                   const std::vector<std::string>& paths) {
  const char* call = "hbDNNInitialize";
  if (!packed) return fail(call, "null handle pointer", kDnnInvalidArgument);
  *packed = nullptr;
  if (int64_t code = config("fail_init")) return fail(call, "injected", static_cast<int32_t>(code));
  auto p = std::make_unique<Packed>();
  std::set<std::string> names;
  for (size_t f = 0; f < texts.size(); ++f) {
    FileDef def;
    if (auto err = parse_model_text(texts[f], paths[f], kDims, &def); !err.empty())
      return fail(call, err, kDnnInvalidModel);
    p->file_desc.emplace_back(def.desc);
    for (auto& m : def.models) {
      if (!names.insert(m.name).second)
        return fail(call, "model name '" + m.name + "' loaded twice", kDnnInvalidModel);
      p->models.push_back(make_runtime(std::move(m)));
    }
  }
  for (const auto& m : p->models) p->names.push_back(m->def->name.c_str());
  Registry& r = reg();
  std::lock_guard lk(r.mu);
  for (const auto& m : p->models) r.handles.emplace(m.get(), m);
  r.packs.insert(p.get());
  log("init files=" + std::to_string(texts.size()) + " models=" + std::to_string(p->models.size()));
  count("live_packed");
  *packed = p.release();
  return kOk;
}

}  // namespace
}  // namespace ucpd

using namespace ucpd;

extern "C" {

#ifdef UCP_DOUBLE_VERSIONED
// Only hbDNNGetVersion@CONFIG is ours; the default (what plain dlsym finds) is another one.
const char* hbDNNGetVersion_config() { return "3.13.6_(4.7.5 HBRT) test double"; }
const char* hbDNNGetVersion_wrong() { return "WRONG unversioned default"; }
__asm__(".symver hbDNNGetVersion_config, hbDNNGetVersion@CONFIG");
__asm__(".symver hbDNNGetVersion_wrong, hbDNNGetVersion@@WRONG");
#else
const char* hbDNNGetVersion() { return "3.13.6_(4.7.5 HBRT) test double"; }
#endif

const char* hbDNNGetErrorDesc(int32_t code) {
  switch (code) {
    case kOk: return "success";
    case kDnnInvalidArgument: return "invalid argument";
    case kDnnInvalidModel: return "invalid model";
    case kDnnCannotOpenFile: return "cannot open model file";
    case kDnnInvalidPackedHandle: return "invalid packed dnn handle";
    case kDnnInvalidHandle: return "invalid dnn handle";
    case kDnnInvalidTensor: return "invalid tensor";
    case kDnnTaskNotDone: return "task not done";
    case kDnnRunFailed: return "run task failed";
    case kDnnInjected: return "injected failure";
    default: return "unknown dnn error";
  }
}

int32_t hbDNNInitializeFromFiles(hbPackedDNNHandle_t* packed, const char** files, int32_t count) {
  if (!files || count < 1) return fail("hbDNNInitializeFromFiles", "no files", kDnnInvalidArgument);
  std::vector<std::string> texts, paths;
  for (int32_t i = 0; i < count; ++i) {
    std::ifstream in(files[i] ? files[i] : "", std::ios::binary);
    if (!in) return fail("hbDNNInitializeFromFiles", std::string("cannot open ") + (files[i] ? files[i] : "(null)"), kDnnCannotOpenFile);
    std::stringstream ss;
    ss << in.rdbuf();
    texts.push_back(ss.str());
    paths.emplace_back(files[i]);
  }
  return load_files(packed, texts, paths);
}

int32_t hbDNNInitializeFromDDR(hbPackedDNNHandle_t* packed, const void** data, int32_t* lengths,
                               int32_t count) {
  if (!data || !lengths || count < 1) return fail("hbDNNInitializeFromDDR", "no data", kDnnInvalidArgument);
  std::vector<std::string> texts, paths;
  for (int32_t i = 0; i < count; ++i) {
    texts.emplace_back(static_cast<const char*>(data[i]), static_cast<size_t>(lengths[i]));
    paths.push_back("<memory " + std::to_string(i) + ">");
  }
  return load_files(packed, texts, paths);
}

int32_t hbDNNRelease(hbPackedDNNHandle_t packed) {
  Registry& r = reg();
  std::unique_ptr<Packed> p;
  {
    std::lock_guard lk(r.mu);
    if (!r.packs.erase(static_cast<Packed*>(packed)))
      return fail("hbDNNRelease", "unknown packed handle", kDnnInvalidPackedHandle);
    p.reset(static_cast<Packed*>(packed));
    for (const auto& m : p->models) r.handles.erase(m.get());
  }
  log("release_packed models=" + std::to_string(p->models.size()));
  count("live_packed", -1);
  return kOk;
}

int32_t hbDNNGetModelNameList(const char*** names, int32_t* count, hbPackedDNNHandle_t packed) {
  if (!names || !count) return fail("hbDNNGetModelNameList", "null", kDnnInvalidArgument);
  if (!find_packed(packed)) return fail("hbDNNGetModelNameList", "unknown packed handle", kDnnInvalidPackedHandle);
  auto* p = static_cast<Packed*>(packed);
  *names = p->names.data();
  *count = static_cast<int32_t>(p->names.size());
  return kOk;
}

int32_t hbDNNGetModelHandle(hbDNNHandle_t* handle, hbPackedDNNHandle_t packed, const char* name) {
  if (!handle || !name) return fail("hbDNNGetModelHandle", "null", kDnnInvalidArgument);
  if (!find_packed(packed)) return fail("hbDNNGetModelHandle", "unknown packed handle", kDnnInvalidPackedHandle);
  for (const auto& m : static_cast<Packed*>(packed)->models)
    if (m->def->name == name) {
      *handle = m.get();
      return kOk;
    }
  return fail("hbDNNGetModelHandle", std::string("no model '") + name + "'", kDnnInvalidArgument);
}

int32_t hbDNNGetHBMDesc(const char** desc, uint32_t* size, int32_t* type,
                        hbPackedDNNHandle_t packed, int32_t index) {
  if (!find_packed(packed)) return fail("hbDNNGetHBMDesc", "unknown packed handle", kDnnInvalidPackedHandle);
  auto* p = static_cast<Packed*>(packed);
  if (index < 0 || index >= static_cast<int32_t>(p->file_desc.size()))
    return fail("hbDNNGetHBMDesc", "file index out of range", kDnnInvalidArgument);
  return p->file_desc[index].get(desc, size, type);
}

#define WITH_MODEL(call)                                                   \
  auto m = find_model(handle);                                             \
  if (!m) return fail(call, "unknown model handle", kDnnInvalidHandle)

int32_t hbDNNGetModelDesc(const char** desc, uint32_t* size, int32_t* type, hbDNNHandle_t handle) {
  WITH_MODEL("hbDNNGetModelDesc");
  return m->desc.get(desc, size, type);
}

int32_t hbDNNGetCompileBpuCoreNum(int32_t* cores, hbDNNHandle_t handle) {
  WITH_MODEL("hbDNNGetCompileBpuCoreNum");
  if (!cores) return kDnnInvalidArgument;
  *cores = m->def->compile_cores;
  return kOk;
}

static int32_t get_count(int32_t* n, hbDNNHandle_t handle, bool input) {
  WITH_MODEL(input ? "hbDNNGetInputCount" : "hbDNNGetOutputCount");
  if (!n) return kDnnInvalidArgument;
  *n = static_cast<int32_t>(input ? m->def->inputs.size() : m->def->outputs.size());
  return kOk;
}
int32_t hbDNNGetInputCount(int32_t* n, hbDNNHandle_t handle) { return get_count(n, handle, true); }
int32_t hbDNNGetOutputCount(int32_t* n, hbDNNHandle_t handle) { return get_count(n, handle, false); }

#define WITH_TENSOR(call, input)                                                        \
  WITH_MODEL(call);                                                                     \
  const auto& defs = (input) ? m->def->inputs : m->def->outputs;                        \
  if (index < 0 || index >= static_cast<int32_t>(defs.size()))                          \
    return fail(call, "index " + std::to_string(index) + " out of range", kDnnInvalidArgument)

int32_t hbDNNGetInputName(const char** name, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetInputName", true);
  *name = defs[index].name.c_str();
  return kOk;
}
int32_t hbDNNGetOutputName(const char** name, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetOutputName", false);
  *name = defs[index].name.c_str();
  return kOk;
}
int32_t hbDNNGetInputDesc(const char** desc, uint32_t* size, int32_t* type, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetInputDesc", true);
  return m->in_desc[index].get(desc, size, type);
}
int32_t hbDNNGetOutputDesc(const char** desc, uint32_t* size, int32_t* type, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetOutputDesc", false);
  return m->out_desc[index].get(desc, size, type);
}
int32_t hbDNNGetInputTensorProperties(hbDNNTensorProperties* props, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetInputTensorProperties", true);
  if (!props) return kDnnInvalidArgument;
  *props = m->in_props[index];
  grow(props);
  return kOk;
}
int32_t hbDNNGetOutputTensorProperties(hbDNNTensorProperties* props, hbDNNHandle_t handle, int32_t index) {
  WITH_TENSOR("hbDNNGetOutputTensorProperties", false);
  if (!props) return kDnnInvalidArgument;
  *props = m->out_props[index];
  grow(props);
  return kOk;
}

int32_t hbDNNInferV2(hbUCPTaskHandle_t* task, hbDNNTensor* outputs, const hbDNNTensor* inputs,
                     hbDNNHandle_t handle) {
  const char* call = "hbDNNInferV2";
  count("infers");
  if (int64_t code = config("fail_infer")) return fail(call, "injected", static_cast<int32_t>(code));
  WITH_MODEL(call);
  if (!outputs || !inputs) return fail(call, "null tensors", kDnnInvalidArgument);
  const ModelDef& def = *m->def;
  auto job = std::make_shared<Job>();
  job->def = m->def;
  std::string in_ids, out_ids;
  {
    std::lock_guard mem(memory_mutex());
    for (size_t i = 0; i < def.inputs.size(); ++i)
      if (auto err = check_input(def.inputs[i], inputs[i], *job, in_ids); !err.empty())
        return fail(call, def.name + " input '" + def.inputs[i].name + "': " + err, kDnnInvalidTensor);
    for (size_t i = 0; i < def.outputs.size(); ++i)
      if (auto err = check_output(def.outputs[i], outputs[i], *job, out_ids); !err.empty())
        return fail(call, def.name + " output '" + def.outputs[i].name + "': " + err, kDnnInvalidTensor);
  }
  Work work = [job](int64_t id) { return job->run(id); };
  const std::string label = "model=" + def.name + " inputs=" + in_ids + " outputs=" + out_ids;
  if (!task) {  // synchronous
    log("infer_sync " + label);
    std::lock_guard mem(memory_mutex());
    return work(0);
  }
  if (*task) return task_attach(*task, std::move(work), job, def.latency_us, label);
  *task = task_create(std::move(work), job, def.latency_us, label);
  return kOk;
}

int32_t hbDNNGetTaskOutputTensorProperties(hbDNNTensorProperties* props, hbUCPTaskHandle_t task,
                                           int32_t subtask, int32_t index) {
  const char* call = "hbDNNGetTaskOutputTensorProperties";
  bool done = false;
  auto job = std::static_pointer_cast<const Job>(task_data(task, subtask, &done));
  if (!job || !props) return fail(call, "unknown task or subtask", kDnnInvalidArgument);
  if (!done) return fail(call, "task not done", kDnnTaskNotDone);
  if (index < 0 || index >= static_cast<int32_t>(job->out.size()))
    return fail(call, "output index out of range", kDnnInvalidArgument);
  *props = props_of(job->def->outputs[index]);
  const OutLayout& o = job->out[index];
  for (size_t i = 0; i < o.dims.size(); ++i) {
    props->validShape.dimensionSize[i] = static_cast<int32_t>(o.dims[i]);
    props->stride[i] = o.strides[i];
  }
  props->alignedByteSize = static_cast<int64_t>(o.bytes);
  grow(props);
  return kOk;
}

}  // extern "C"
