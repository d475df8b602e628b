#include "ucp_engine.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "core/env.h"
#include "core/errors.h"
#include "ucp_model.h"

namespace hbm {
namespace ucp {
namespace {

struct RawTensor {
  std::string name, desc;
  RawProps props;
};

struct RawModel {
  std::string name, desc;
  ModelHandle handle = nullptr;
  std::vector<RawTensor> inputs, outputs;
};

std::string text(const char* p, uint32_t size) {
  return p && size ? std::string(p, size) : std::string();  // descs are not NUL-terminated
}

std::string quoted_list(const std::vector<std::string>& files) {
  std::string s;
  for (const auto& f : files) s += (s.empty() ? "'" : ", '") + f + "'";
  return s;
}

int32_t timeout_from_env() {
  return static_cast<int32_t>(env_whole_number("HBM_UCP_TIMEOUT_MS", 0, INT32_MAX,
                                               "a whole number of milliseconds (0 = wait forever)")
                                  .value_or(0));
}

size_t pool_sets_from_env() {
  return static_cast<size_t>(env_whole_number("HBM_UCP_POOL_SETS", 0, 1024,
                                              "a whole number of buffer sets, 0..1024 (default 4)")
                                 .value_or(4));
}

class Loader {
 public:
  Loader(std::shared_ptr<const UcpApi> api, const std::vector<std::string>& files)
      : api_(std::move(api)), files_(files), context_("loading " + quoted_list(files)) {}

  std::vector<std::shared_ptr<Model>> run();

 private:
  Packed init(const std::vector<std::string>& files) const;
  void diagnose_each_file() const;
  std::vector<std::string> names(const Packed& packed) const;
  RawModel read_model(const Packed& packed, const std::string& name) const;
  void read_tensors(RawModel& m, bool input) const;

  std::shared_ptr<const UcpApi> api_;
  const std::vector<std::string>& files_;
  std::string context_;
};

Packed Loader::init(const std::vector<std::string>& files) const {
  std::vector<const char*> paths;
  for (const auto& f : files) paths.push_back(f.c_str());
  PackedHandle h = nullptr;
  const int32_t rc =
      api_->hbDNNInitializeFromFiles(&h, paths.data(), static_cast<int32_t>(paths.size()));
  Packed packed(api_, h);  // owned even on failure, in case the library set it
  api_->check_dnn(rc, "loading " + quoted_list(files), "hbDNNInitializeFromFiles");
  if (!h) throw Error("loading " + quoted_list(files) + ": hbDNNInitializeFromFiles gave no handle");
  return packed;
}

// Loads each file alone and throws what is wrong with the set: a file that fails on its own
// (its own error, naming it) or a model name two files share. Returns when it finds nothing.
void Loader::diagnose_each_file() const {
  if (files_.size() < 2) return;
  std::map<std::string, size_t> origin;
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const auto& n : names(init({files_[i]}))) {
      auto [it, fresh] = origin.emplace(n, i);
      if (!fresh)
        throw InvalidArgument("model name '" + n + "' appears in both '" + files_[it->second] +
                              "' and '" + files_[i] + "'");
    }
  }
}

std::vector<std::string> Loader::names(const Packed& packed) const {
  const char** list = nullptr;
  int32_t count = 0;
  api_->check_dnn(api_->hbDNNGetModelNameList(&list, &count, packed.get()), context_,
                  "hbDNNGetModelNameList");
  std::vector<std::string> out;
  for (int32_t i = 0; i < count; ++i) out.emplace_back(list && list[i] ? list[i] : "");
  return out;
}

void Loader::read_tensors(RawModel& m, bool input) const {
  const UcpApi& a = *api_;
  const std::string ctx = "model '" + m.name + "'";
  const char* kind = input ? "input" : "output";
  int32_t count = 0;
  a.check_dnn((input ? a.hbDNNGetInputCount : a.hbDNNGetOutputCount)(&count, m.handle), ctx,
              input ? "hbDNNGetInputCount" : "hbDNNGetOutputCount");
  auto& tensors = input ? m.inputs : m.outputs;
  tensors.resize(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    RawTensor& t = tensors[static_cast<size_t>(i)];
    const std::string at = std::string("(") + kind + " " + std::to_string(i) + ")";
    const char* name = nullptr;
    a.check_dnn((input ? a.hbDNNGetInputName : a.hbDNNGetOutputName)(&name, m.handle, i), ctx,
                std::string(input ? "hbDNNGetInputName" : "hbDNNGetOutputName") + at);
    t.name = name ? name : "";
    const char* desc = nullptr;
    uint32_t size = 0;
    int32_t type = 0;
    a.check_dnn((input ? a.hbDNNGetInputDesc : a.hbDNNGetOutputDesc)(&desc, &size, &type,
                                                                     m.handle, i),
                ctx, std::string(input ? "hbDNNGetInputDesc" : "hbDNNGetOutputDesc") + at);
    t.desc = text(desc, size);
    a.check_dnn((input ? a.hbDNNGetInputTensorProperties : a.hbDNNGetOutputTensorProperties)(
                    t.props.bytes.data(), m.handle, i),
                ctx,
                std::string(input ? "hbDNNGetInputTensorProperties"
                                  : "hbDNNGetOutputTensorProperties") + at);
  }
}

RawModel Loader::read_model(const Packed& packed, const std::string& name) const {
  RawModel m;
  m.name = name;
  const std::string ctx = "model '" + name + "'";
  api_->check_dnn(api_->hbDNNGetModelHandle(&m.handle, packed.get(), name.c_str()), ctx,
                  "hbDNNGetModelHandle");
  const char* desc = nullptr;
  uint32_t size = 0;
  int32_t type = 0;
  api_->check_dnn(api_->hbDNNGetModelDesc(&desc, &size, &type, m.handle), ctx,
                  "hbDNNGetModelDesc");
  m.desc = text(desc, size);
  read_tensors(m, true);
  read_tensors(m, false);
  return m;
}

// ModelInfo tensor + plan from the library's properties in the probed layout.
void build_tensor(RawTensor& raw, const PropsLayout& l, bool input, const std::string& ctx,
                  TensorInfo& info, TensorPlan& plan) {
  PropsView v(l, raw.props.bytes.data());
  const int nd = v.num_dims();
  info.name = plan.name = raw.name;
  info.desc = raw.desc;
  info.dtype = plan.dtype = static_cast<DataType>(v.tensor_type());
  plan.item = element_size(plan.dtype);
  for (int d = 0; d < nd; ++d) {
    info.shape.push_back(v.dim(d));
    info.strides.push_back(v.stride(d));
  }
  info.quant.type = static_cast<QuantType>(v.quanti_type());
  info.quant.axis = v.quantize_axis();
  if (v.scale_len() > 0) info.quant.scale.assign(v.scale_data(), v.scale_data() + v.scale_len());
  if (v.zero_point_len() > 0)
    info.quant.zero_point.assign(v.zero_point_data(), v.zero_point_data() + v.zero_point_len());

  const std::string who = std::string(input ? "input '" : "output '") + raw.name + "' of " + ctx;
  const int64_t aligned = v.aligned_byte_size();
  // The library is not trusted: absurd values fail the load instead of a later copy.
  auto absurd = [&](const std::string& why) {
    return InvalidArgument(who + ": the library reports shape " + format_shape(info.shape) +
                           ", strides " + format_shape(info.strides) + ", alignedByteSize " +
                           std::to_string(aligned) + ", which " + why);
  };
  if (nd < 0 || nd > l.dims) throw absurd("is not a valid number of dimensions");
  for (int d = 0; d < nd; ++d) {
    if (info.shape[d] < -1 || info.shape[d] == 0) throw absurd("has dim " + std::to_string(info.shape[d]));
    if (info.strides[d] < -1 || info.strides[d] == 0)
      throw absurd("has stride " + std::to_string(info.strides[d]));
  }
  if (aligned < -1 || aligned > kMaxTensorBytes) throw absurd("is not a valid buffer size");
  plan.dims = info.shape;
  plan.strides = info.strides;
  plan.dynamic = info.has_dynamic_dims();
  const bool innermost_dynamic = nd > 0 && info.strides.back() < 0;
  if (input && innermost_dynamic)
    plan.unsupported = who + ": the last dimension of stride cannot be dynamic (unsupported)";
  if (!input && innermost_dynamic)  // size it as dense rows; the task reports the real ones
    plan.strides.back() = static_cast<int64_t>(plan.item);
  const bool filled = fill_strides(plan.dims, plan.strides);
  if (input && filled)
    for (int d = 0; d < nd; ++d) v.set_stride(d, plan.strides[d]);
  if (!plan.dynamic && filled) {
    uint64_t need = 0;
    const std::string why = check_layout(plan.dims, plan.strides, plan.item,
                                         aligned > 0 ? static_cast<uint64_t>(aligned) : 0,
                                         "alignedByteSize", &need);
    if (!why.empty()) throw absurd(why);
    plan.bytes = aligned > 0 && static_cast<uint64_t>(aligned) > need ? aligned : need;
  } else if (aligned > 0) {
    plan.bytes = static_cast<uint64_t>(aligned);
  } else if (!input) {
    plan.unsupported = who + ": dynamic shape and no alignedByteSize, its buffer cannot be sized";
  }
  if (!input) plan.ask_task = plan.dynamic || !filled || info.strides != plan.strides;
  plan.props.assign(raw.props.bytes.begin(), raw.props.bytes.begin() + l.size);
}

std::vector<std::shared_ptr<Model>> Loader::run() {
  if (files_.empty()) throw InvalidArgument("no model file given");
  for (const auto& f : files_) {
    if (FILE* fp = std::fopen(f.c_str(), "rb")) {
      std::fclose(fp);
    } else {
      throw InvalidArgument("cannot open model file '" + f + "': " + std::strerror(errno));
    }
  }
  const int32_t timeout_ms = timeout_from_env();
  const size_t pool_sets = pool_sets_from_env();

  // Every file in one packed load, as the vendor's package does (loading each alone first
  // would double the load time on a board). Only when that fails is each file loaded alone,
  // to name the file at fault or the files that share a model name.
  auto group = std::make_shared<LoadGroup>();
  group->api = api_;
  try {
    group->packed = init(files_);
  } catch (const Error&) {
    diagnose_each_file();
    throw;
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    const char* desc = nullptr;
    uint32_t size = 0;
    int32_t type = 0;
    api_->check_dnn(api_->hbDNNGetHBMDesc(&desc, &size, &type, group->packed.get(),
                                          static_cast<int32_t>(i)),
                    context_, "hbDNNGetHBMDesc(" + std::to_string(i) + ")");
    group->file_descs.emplace_back(files_[i], text(desc, size));
  }

  std::vector<RawModel> raws;
  std::vector<RawProps> samples;
  for (const auto& name : names(group->packed)) {
    for (const auto& r : raws)
      if (r.name == name) {
        diagnose_each_file();
        throw InvalidArgument(context_ + ": duplicate model name '" + name + "'");
      }
    raws.push_back(read_model(group->packed, name));
    for (const auto& t : raws.back().inputs) samples.push_back(t.props);
    for (const auto& t : raws.back().outputs) samples.push_back(t.props);
  }
  const PropsLayout& layout = probe_layout(samples);

  std::vector<std::shared_ptr<Model>> models;
  for (auto& r : raws) {
    ModelInfo info;
    info.name = r.name;
    info.desc = r.desc;
    // The library does not say which of several files holds a model.
    if (files_.size() == 1) {
      info.file = files_[0];
      info.file_desc = group->file_descs[0].second;
    } else {
      info.loaded_with = group->file_descs;
    }
    auto plan = std::make_shared<ModelPlan>();
    plan->name = r.name;
    plan->context = "model '" + r.name + "'";
    plan->layout = &layout;
    plan->handle = r.handle;
    plan->timeout_ms = timeout_ms;
    plan->pool_sets = pool_sets;
    for (bool input : {true, false}) {
      auto& raw = input ? r.inputs : r.outputs;
      auto& infos = input ? info.inputs : info.outputs;
      auto& plans = input ? plan->inputs : plan->outputs;
      infos.resize(raw.size());
      plans.resize(raw.size());
      for (size_t i = 0; i < raw.size(); ++i)
        build_tensor(raw[i], layout, input, plan->context, infos[i], plans[i]);
    }
    models.push_back(std::make_shared<UcpModel>(group, std::move(info), std::move(plan)));
  }
  return models;
}

class UcpEngine final : public Engine {
 public:
  UcpEngine() : api_(UcpApi::load()) {}
  std::string_view name() const override { return "ucp"; }
  std::string version() const override { return api_->version(); }
  std::string device_version() const override { return api_->dnn_version(); }
  std::vector<std::shared_ptr<Model>> load(const std::vector<std::string>& files) override {
    return Loader(api_, files).run();
  }
  bool hardware_scheduled() const override { return true; }
  int max_core_id() const override { return kMaxBpuCoreId; }
  bool takes_strided_inputs() const override { return true; }

 private:
  std::shared_ptr<const UcpApi> api_;
};

}  // namespace
}  // namespace ucp

std::unique_ptr<Engine> make_ucp_engine() { return std::make_unique<ucp::UcpEngine>(); }

std::vector<std::pair<std::string, std::string>> ucp_file_descs(const Model& model) {
  if (const auto* m = dynamic_cast<const ucp::UcpModel*>(&model)) return m->file_descs();
  return {};
}

}  // namespace hbm
