// HB_HBMRuntime's C++ half: loading, metadata access, and the run() hot path.
#include "runtime_binding.h"

#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "arrays.h"
#include "core/errors.h"
#include "core/runtime.h"
#include "core/fixed_pool.h"
#include "errors.h"
#include "gil.h"
#include "numpy_api.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace hbm::py {
namespace {

// RunResult (a dict subclass defined in Python), set once at import.
nb::handle g_result_type;
// threading.main_thread().ident: the thread Python delivers signals (Ctrl-C) to.
unsigned long g_main_thread = 0;

// Timings of one run, turned into dicts only if someone looks.
struct RunTimings {
  std::vector<std::pair<std::string, ModelTimings>> models;
  // Typed so the generated stub passes mypy --strict (core is an int, the rest floats).
  nb::typed<nb::dict, nb::str, nb::typed<nb::dict, nb::str, float>> to_dict() const {
    nb::dict out;
    for (const auto& [name, t] : models) {
      nb::dict d;
      d["started_at"] = t.started_at;
      d["queued_us"] = t.queued_us;
      d["prepare_us"] = t.prepare_us;
      d["infer_us"] = t.infer_us;
      d["finish_us"] = t.finish_us;
      d["core"] = t.core;
      out[name.c_str()] = d;
    }
    return nb::borrow<nb::typed<nb::dict, nb::str, nb::typed<nb::dict, nb::str, float>>>(out);
  }
};

struct ParsedRun {
  std::vector<Runtime::Request> requests;
  std::vector<size_t> models;  // the model of each request, for the result's keys
  KeepAlive keep;
};

size_t pick_model(const Runtime& rt, nb::handle model_name, const char* form) {
  if (!model_name.is_none()) {
    if (!nb::isinstance<nb::str>(model_name))
      throw nb::type_error(("model_name must be a str, got " +
                            std::string(nb::type_name(model_name.type()).c_str())).c_str());
    return rt.index_of(nb::borrow<nb::str>(model_name).c_str());
  }
  if (rt.model_count() == 1) return 0;
  throw InvalidArgument(std::to_string(rt.model_count()) + " models are loaded (" +
                        rt.model_list() + "): pass model_name= to choose one for " + form);
}

// `obj` as a dict when it is a dict or another collections.abc.Mapping (copied into a dict),
// else an invalid object. Arrays, the common case, are recognised without asking the ABC.
nb::object as_dict(nb::handle obj) {
  if (PyDict_Check(obj.ptr())) return nb::borrow(obj);
  if (numpy_api::is_array(obj)) return {};
  static nb::handle mapping = [] {
    nb::object abc = nb::module_::import_("collections.abc").attr("Mapping");
    return abc.release();  // kept for good
  }();
  int is_mapping = PyObject_IsInstance(obj.ptr(), mapping.ptr());
  if (is_mapping < 0) throw nb::python_error();
  if (!is_mapping) return {};
  nb::dict copy;
  if (PyDict_Merge(copy.ptr(), obj.ptr(), 1) != 0) throw nb::python_error();  // keys(), [key]
  return std::move(copy);
}

void add_dict_request(const Runtime& rt, size_t m, nb::handle inputs, ParsedRun& out) {
  const ModelInfo& mi = rt.info(m);
  Runtime::Request req;
  req.model = m;
  req.inputs.resize(mi.inputs.size());
  std::vector<bool> given(mi.inputs.size(), false);
  for (auto [key, value] : nb::borrow<nb::dict>(inputs)) {
    if (!nb::isinstance<nb::str>(key))
      throw InvalidArgument("model '" + mi.name + "': input names must be str, got " + str_of(key));
    if (nb::isinstance<nb::dict>(value))
      throw InvalidArgument("the input dict mixes model names and input names: '" + str_of(key) +
                            "' maps to a dict; use {model_name: {input_name: array}} for every "
                            "model, or {input_name: array} for one model");
    size_t i = rt.input_index(m, nb::borrow<nb::str>(key).c_str());
    req.inputs[i] = import_input(value, mi.inputs[i], mi.name, rt.takes_strided_inputs(m), out.keep);
    given[i] = true;
  }
  std::string missing;
  for (size_t i = 0; i < given.size(); ++i)
    if (!given[i]) missing += (missing.empty() ? "'" : ", '") + mi.inputs[i].name + "'";
  if (!missing.empty())
    throw InvalidArgument("model '" + mi.name + "': missing input(s) " + missing);
  out.requests.push_back(std::move(req));
  out.models.push_back(m);
}

ParsedRun parse_run(const Runtime& rt, nb::handle x, nb::handle model_name) {
  ParsedRun out;
  nb::object as_mapping = as_dict(x);
  if (!as_mapping.is_valid()) {
    size_t m = pick_model(rt, model_name, "a single array");
    const ModelInfo& mi = rt.info(m);
    if (mi.inputs.size() != 1) {
      std::string names;
      for (const auto& t : mi.inputs) names += (names.empty() ? "'" : ", '") + t.name + "'";
      throw InvalidArgument("model '" + mi.name + "' has " + std::to_string(mi.inputs.size()) +
                            " inputs (" + names + "), got a single array: pass a dict "
                            "{input_name: array}");
    }
    Runtime::Request req;
    req.model = m;
    req.inputs.push_back(import_input(x, mi.inputs[0], mi.name, rt.takes_strided_inputs(m), out.keep));
    out.requests.push_back(std::move(req));
    out.models.push_back(m);
    return out;
  }
  nb::dict d = nb::borrow<nb::dict>(as_mapping);
  if (d.size() == 0) throw InvalidArgument("run() got an empty dict: no inputs given");
  bool multi = as_dict(d.values()[0]).is_valid();
  if (!multi) {
    add_dict_request(rt, pick_model(rt, model_name, "a dict of inputs"), d, out);
    return out;
  }
  // {model_name: {input_name: array}}
  std::optional<size_t> only;
  if (!model_name.is_none()) only = pick_model(rt, model_name, "");
  for (auto [key, value] : d) {
    if (!nb::isinstance<nb::str>(key)) throw InvalidArgument("model names must be str, got " + str_of(key));
    nb::object inputs = as_dict(value);
    if (!inputs.is_valid())
      throw InvalidArgument("the input dict mixes model names and input names: '" + str_of(key) +
                            "' maps to " + std::string(nb::type_name(value.type()).c_str()) +
                            ", expected a dict {input_name: array}");
    size_t m = rt.index_of(nb::borrow<nb::str>(key).c_str());
    if (only && m != *only) continue;
    add_dict_request(rt, m, inputs, out);
  }
  if (only && out.requests.empty())
    throw InvalidArgument("model_name '" + rt.info(*only).name +
                          "' is not among the models in the input dict");
  return out;
}

nb::object make_result(const Runtime& rt, const std::vector<size_t>& models,
                       std::vector<Runtime::Result>& results) {
  nb::object res = g_result_type();
  auto timings = std::make_unique<RunTimings>();
  for (size_t r = 0; r < results.size(); ++r) {
    const ModelInfo& mi = rt.info(models[r]);
    nb::dict outs;
    for (size_t o : mi.output_dict_order)
      if (o < results[r].outputs.size())
        outs[mi.outputs[o].name.c_str()] = to_numpy(std::move(results[r].outputs[o]));
    res[mi.name.c_str()] = outs;
    timings->models.push_back({mi.name, results[r].timings});
  }
  res.attr("_t") = nb::cast(timings.release(), nb::rv_policy::take_ownership);
  return res;
}

// What an interrupted run() leaves behind: the inputs its running parts still read, released
// (under the GIL) once they are done.
struct DetachedInputs final : PoolJob {
  KeepAlive keep;
  nb::object runtime;
  void run() noexcept override {
    {
      GilAcquire gil;
      keep.clear();
      runtime.reset();
    }
    delete this;
  }
};

nb::object run(nb::handle self, nb::handle x, nb::handle model_name) {
  Runtime& rt = nb::cast<Runtime&>(self);
  ParsedRun parsed = parse_run(rt, x, model_name);
  std::vector<Runtime::Result> results;
  if (PyThread_get_thread_ident() != g_main_thread) {
    GilRelease release;
    results = rt.run(std::move(parsed.requests));
  } else {
    // Python runs signal handlers on the main thread only, and only between bytecodes: poll
    // them while waiting, so Ctrl-C stops a run queued behind other work or a slow device.
    Runtime::WaitControl control;
    control.interrupted = [] {
      GilAcquire gil;
      return PyErr_CheckSignals() != 0;  // the handler's exception stays set for below
    };
    control.detach = [&] {
      auto inputs = std::make_unique<DetachedInputs>();
      {
        GilAcquire gil;
        inputs->keep = std::move(parsed.keep);
        inputs->runtime = nb::borrow(self);
      }
      PoolJob* job = inputs.release();
      return Runtime::Done([job](std::vector<Runtime::Result>*, std::exception_ptr) {
        if (!FixedPool::completions().post(job)) job->run();
      });
    };
    try {
      GilRelease release;
      results = rt.run(std::move(parsed.requests), &control);
    } catch (const Interrupted&) {
      throw nb::python_error();  // KeyboardInterrupt (or whatever the handler raised)
    }
  }
  return make_result(rt, parsed.models, results);
}

// State of one run_async() call, from the call until its callback ran. A pool job, so that
// completing it never needs memory: it is allocated when the call is made.
struct AsyncCall final : PoolJob {
  Runtime* rt = nullptr;  // alive as long as `runtime` is
  nb::object runtime;     // keeps the runtime alive until the call completes
  nb::object callback;    // callback(result, exception)
  std::vector<size_t> models;
  KeepAlive keep;
  std::vector<Runtime::Result> results;
  std::exception_ptr error;

  // Runs on a completion thread (or, if none can be had, on the thread that finished).
  void run() noexcept override {
    {
      GilAcquire gil;
      complete();
    }
    delete this;
  }

  void complete() noexcept {
    nb::object result = nb::none(), exc = nb::none();
    try {
      if (!error) result = make_result(*rt, models, results);
    } catch (...) {
      error = std::current_exception();  // e.g. MemoryError while building the arrays
    }
    try {
      if (error) exc = to_python_exception(error);
    } catch (const std::exception& e) {
      exc = nb::borrow(PyExc_RuntimeError)(e.what());
    } catch (...) {
    }
    try {
      callback(result, exc);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("hbm_runtime run_async callback");
    } catch (...) {
    }
    results.clear();
    keep.clear();
    callback.reset();
    runtime.reset();  // may destroy the runtime: last
  }
};

// An async call as Python sees it: Future.cancel() and running() ask it.
struct CallHandle {
  std::shared_ptr<Runtime::Call> call;
};

CallHandle run_async(nb::handle self, nb::handle x, nb::handle model_name, nb::object callback) {
  auto owned = std::make_unique<AsyncCall>();
  owned->rt = &nb::cast<Runtime&>(self);
  ParsedRun parsed = parse_run(*owned->rt, x, model_name);
  owned->runtime = nb::borrow(self);
  owned->callback = std::move(callback);
  owned->models = std::move(parsed.models);
  owned->keep = std::move(parsed.keep);
  Runtime* rt = owned->rt;
  AsyncCall* call = owned.get();
  // Completion needs the GIL: it runs on a completion thread, so that a host core is free
  // for the next task at once instead of queueing for the GIL.
  Runtime::Done done = [call](std::vector<Runtime::Result>* results, std::exception_ptr error) {
    if (results) call->results = std::move(*results);
    call->error = error;
    if (!FixedPool::completions().post(call)) call->run();
  };
  CallHandle handle;
  {
    // Device models are submitted (inputs copied, caches flushed) before this returns.
    GilRelease release;
    handle.call = rt->run_async(std::move(parsed.requests), std::move(done));  // throws: nothing started
  }
  owned.release();  // from here on, the call's completion owns it
  return handle;
}

// Model index of the private accessors, checked (they are callable from Python).
size_t checked_model(const Runtime& rt, size_t model) {
  if (model >= rt.model_count())
    throw InvalidArgument("model index " + std::to_string(model) + " is out of range: " +
                          std::to_string(rt.model_count()) + " model(s) loaded");
  return model;
}

nb::tuple quant_tuple(const QuantInfo& q) {
  size_t ns = q.scale.size(), nz = q.zero_point.size();
  auto* scale = new std::vector<float>(q.scale);
  auto* zp = new std::vector<int32_t>(q.zero_point);
  nb::capsule sc(scale, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  nb::capsule zc(zp, [](void* p) noexcept { delete static_cast<std::vector<int32_t>*>(p); });
  nb::object s = nb::ndarray<nb::numpy, float>(scale->data(), {ns}, sc).cast();
  nb::object z = nb::ndarray<nb::numpy, int32_t>(zp->data(), {nz}, zc).cast();
  return nb::make_tuple(q.type, s, z, q.axis);
}

// Descriptions are free text from the model file: bytes that are not UTF-8 (a binary desc,
// a GBK remark) become U+FFFD rather than make every metadata property raise.
nb::str desc_text(const std::string& desc) {
  PyObject* s = PyUnicode_DecodeUTF8(desc.data(), static_cast<Py_ssize_t>(desc.size()), "replace");
  if (!s) throw nb::python_error();
  return nb::steal<nb::str>(s);
}

// (name, desc, dtype, shape, strides, (quant_type, scale, zero_point, axis)) per tensor.
nb::list tensor_infos(const Runtime& rt, size_t m, bool outputs) {
  checked_model(rt, m);
  nb::list out;
  for (const auto& t : outputs ? rt.info(m).outputs : rt.info(m).inputs)
    out.append(nb::make_tuple(t.name, desc_text(t.desc), t.dtype, nb::cast(t.shape), nb::cast(t.strides),
                              quant_tuple(t.quant)));
  return out;
}

}  // namespace

void bind_runtime(nb::module_& m) {
  nb::class_<RunTimings>(m, "_RunTimings").def("to_dict", &RunTimings::to_dict);

  m.def("_set_result_type", [](nb::handle type) {
    type.inc_ref();  // held for the life of the process
    g_result_type = type;
  });
  m.def("_set_main_thread", [](unsigned long ident) { g_main_thread = ident; });

  nb::class_<CallHandle>(m, "_Call")
      .def("cancel", [](CallHandle& h) { return h.call->cancel(); },
           "Cancels the call if none of its work started yet; False otherwise.")
      .def("started", [](const CallHandle& h) { return h.call->started(); });

  nb::class_<Runtime>(m, "_Runtime")
      .def(nb::init<const std::vector<std::string>&, std::string_view>(), "model_files"_a,
           "engine"_a = "", nb::call_guard<GilRelease>())
      .def("_model_names",
           [](const Runtime& rt) {
             std::vector<std::string> names;
             for (size_t i = 0; i < rt.model_count(); ++i) names.push_back(rt.info(i).name);
             return names;
           })
      .def("_model_desc",
           [](const Runtime& rt, size_t i) { return desc_text(rt.info(checked_model(rt, i)).desc); })
      .def("_file_descs",
           [](const Runtime& rt) {
             std::vector<std::pair<std::string, nb::str>> out;
             for (const auto& [file, desc] : rt.file_descs()) out.emplace_back(file, desc_text(desc));
             return out;
           })
      .def("_engine_names", &Runtime::engine_names)
      .def("_index_of", [](const Runtime& rt, std::string_view n) { return rt.index_of(n); })
      .def("_tensor_infos", &tensor_infos,
           nb::sig("def _tensor_infos(self, model: int, outputs: bool, /) -> list[tuple[str, str, "
                   "hbDNNDataType, list[int], list[int], tuple[hbDNNQuantiType, typing.Any, "
                   "typing.Any, int]]]"))
      .def("_sched",
           [](const Runtime& rt, size_t i) {
             SchedParams p = rt.sched(checked_model(rt, i));
             return std::make_tuple(p.priority, p.custom_id, p.bpu_cores, p.device_id);
           })
      .def("_set_sched",
           [](Runtime& rt, const std::vector<std::tuple<size_t, int64_t, int64_t, std::vector<int64_t>,
                                                        int64_t>>& updates) {
             std::vector<std::pair<size_t, SchedParams>> parsed;
             for (const auto& [m, prio, cid, cores, dev] : updates) {
               checked_model(rt, m);
               const std::string who = "model '" + rt.info(m).name + "'";
               auto narrow = [&](int64_t v, const char* what) {
                 if (v < INT32_MIN || v > INT32_MAX)
                   throw InvalidArgument(std::string(what) + " of " + who + ": " + std::to_string(v) +
                                         " is out of range");
                 return static_cast<int32_t>(v);
               };
               SchedParams p;
               p.priority = narrow(prio, "priority");
               p.custom_id = cid;
               p.device_id = narrow(dev, "device_id");
               p.bpu_cores.clear();
               for (int64_t c : cores) p.bpu_cores.push_back(narrow(c, "bpu_cores"));
               parsed.push_back({m, std::move(p)});
             }
             rt.set_sched(parsed);
           })
      .def("_run", &run, "input_tensors"_a, "model_name"_a = nb::none())
      .def("_run_async", &run_async, "input_tensors"_a, "model_name"_a.none(), "callback"_a)
      .def(
          "input_buffers",
          [](Runtime& rt, nb::handle model_name) {
            size_t m = pick_model(rt, model_name, "input_buffers()");
            std::vector<OutputTensor> bufs = rt.input_buffers(m);
            nb::dict out;
            if (bufs.empty())
              throw InvalidArgument("model '" + rt.info(m).name + "' runs on the " +
                                    rt.engine_names()[m] +
                                    " engine, which has no device input memory; pass arrays to run()");
            for (size_t i : rt.info(m).input_dict_order)
              if (i < bufs.size())
                out[rt.info(m).inputs[i].name.c_str()] = to_device_numpy(std::move(bufs[i]));
            return nb::borrow<nb::typed<nb::dict, nb::str, nb::object>>(out);
          },
          "model_name"_a = nb::none(),
          "Device memory to write a model's inputs into, ``{input_name: numpy.ndarray}`` (BPU "
          "models only: ValueError on the host engine). The arrays have the engine's padded "
          "strides; passing them back to run() reaches the device without a copy.\n\n"
          "Example: ``bufs = rt.input_buffers(); bufs['y'][...] = y; rt.run(bufs)``.")
      .def("close", &Runtime::close, nb::call_guard<GilRelease>(),
           "Releases the models once every running inference finished (runs on the calling "
           "thread included). Queued tasks are cancelled: their run_async futures become "
           "cancelled right after, on a completion thread. Later runs raise "
           "RuntimeClosedError; closing again does nothing.")
      .def_prop_ro("closed", &Runtime::closed,
                   "True once close() was called (later runs raise RuntimeClosedError).")
      .def("_in_flight", &Runtime::in_flight);
}

}  // namespace hbm::py
