// numpy / DLPack arrays <-> core tensors.
#pragma once
#include <memory>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "core/buffer.h"
#include "core/model_info.h"

namespace hbm::py {

// What must outlive a run: the caller's arrays and our contiguous copies of them.
struct KeepAlive {
  std::vector<nanobind::object> objects;                // numpy arrays read directly
  std::vector<nanobind::ndarray<nanobind::ro>> arrays;  // other producers, through DLPack
  std::vector<std::unique_ptr<AlignedBuffer>> copies;
  void clear() {  // GIL held
    objects.clear();
    arrays.clear();
    copies.clear();
  }
};

// A view of `obj` (numpy array, DLPack producer, __array_interface__ object) for input
// `tensor` of `model`. Non-C-contiguous arrays are copied, except arrays from
// input_buffers() when `strided_ok` (the model's engine takes strided inputs); dtype and
// shape are checked by the core, not converted.
InputView import_input(nanobind::handle obj, const TensorInfo& tensor, const std::string& model,
                       bool strided_ok, KeepAlive& keep);

// A numpy array sharing the output's memory; the array keeps that memory alive.
nanobind::object to_numpy(OutputTensor&& t);

// Same for engine-owned input memory handed out by input_buffers(): while the array
// lives, passing it (with its own layout) to run() reaches the engine without a copy,
// although it is padded rather than C-contiguous.
nanobind::object to_device_numpy(OutputTensor&& t);

}  // namespace hbm::py
