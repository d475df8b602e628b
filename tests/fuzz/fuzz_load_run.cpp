// libFuzzer target: the bytes are an .onnx file. It is loaded with hbm::Runtime (our ONNX
// reader, then OpenVINO) and every model is run twice on inputs of its declared dtypes and
// shapes (dynamic dims = 1 or 2, from the input's size) held in read-only memory, so any
// write into caller memory faults. Each output must have the declared dtype, the declared
// static dims and dense strides; every output byte is read (ASan sees reads of memory we do
// not own) and both runs must return the same bytes (uninitialised memory rarely repeats).
// Errors thrown as hbm::Error (-> ValueError / HBMRuntimeError in Python) or std::bad_alloc
// are fine; any other escape is a finding (abort), as is any sanitizer report.
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/runtime.h"

namespace fs = std::filesystem;

// OpenVINO's TBB dlopens libtbbbind with RTLD_DEEPBIND, which ASan refuses outright
// (google/sanitizers#611). The sanitizer's dlopen is a weak alias of its interceptor, so this
// strong one drops that flag (tbbbind then binds to the process's symbols) and calls on.
extern "C" void* __interceptor_dlopen(const char* file, int flags);
extern "C" void* dlopen(const char* file, int flags) {
  return __interceptor_dlopen(file, flags & ~RTLD_DEEPBIND);
}

// ASan's own operator new dies on a failed allocation even with allocator_may_return_null=1
// (it cannot throw), so a model that makes OpenVINO ask for terabytes would end the run. These
// replace all of ASan's new/delete (its archive member is then not linked; only the check of
// new/delete mismatches is lost), are exported (-rdynamic) so OpenVINO's libraries use them
// too, and throw std::bad_alloc like a normal build does when malloc returns null.
namespace {
void* checked(void* p) {
  if (!p) throw std::bad_alloc();
  return p;
}
void* aligned(size_t n, std::align_val_t a) {
  void* p = nullptr;
  size_t al = std::max(static_cast<size_t>(a), sizeof(void*));
  return posix_memalign(&p, al, n ? n : 1) == 0 ? p : nullptr;
}
}  // namespace
void* operator new(size_t n) { return checked(std::malloc(n ? n : 1)); }
void* operator new[](size_t n) { return checked(std::malloc(n ? n : 1)); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new(size_t n, std::align_val_t a) { return checked(aligned(n, a)); }
void* operator new[](size_t n, std::align_val_t a) { return checked(aligned(n, a)); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return aligned(n, a); }
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

constexpr size_t kMaxInputBytes = size_t{32} << 20;  // per input; larger ones are not run

std::string g_dir;   // per-process scratch directory holding the model and its side files
std::string g_path;  // g_dir + "/m.onnx"

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "\n==FINDING== %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) finding("cannot write " + path);
}

// Side files the seed corpus refers to as external data: weights.bin (4096 bytes of a
// pattern), sub/w.bin, and a symbolic link the reader must refuse to follow.
void make_side_files() {
  std::vector<uint8_t> pattern(4096);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 37 + 11);
  write_file(g_dir + "/weights.bin", pattern.data(), pattern.size());
  fs::create_directories(g_dir + "/sub");
  write_file(g_dir + "/sub/w.bin", pattern.data(), pattern.size());
  std::error_code ec;
  fs::create_symlink(g_dir + "/weights.bin", g_dir + "/link.bin", ec);
}

// ---- inputs in read-only memory --------------------------------------------------------------

struct ReadOnly {
  void* p = MAP_FAILED;
  size_t len = 0;
  ~ReadOnly() {
    if (p != MAP_FAILED) munmap(p, len);
  }
};

// A value pattern valid for every dtype (bool 0/1, small finite floats).
void fill(void* dst, hbm::DataType t, size_t count, uint32_t salt) {
  using hbm::DataType;
  for (size_t i = 0; i < count; ++i) {
    int v = static_cast<int>((i * 7 + salt) % 9) - 4;  // -4..4
    switch (t) {
      case DataType::F32: static_cast<float*>(dst)[i] = static_cast<float>(v) * 0.5f; break;
      case DataType::F64: static_cast<double*>(dst)[i] = v * 0.5; break;
      case DataType::F16: {  // exact halves of -2..2 in binary16
        static const uint16_t h[9] = {0xC000, 0xBE00, 0xBC00, 0xB800, 0x0000,
                                      0x3800, 0x3C00, 0x3E00, 0x4000};
        static_cast<uint16_t*>(dst)[i] = h[v + 4];
        break;
      }
      case DataType::BOOL8: static_cast<uint8_t*>(dst)[i] = v > 0; break;
      case DataType::S8: case DataType::S4: static_cast<int8_t*>(dst)[i] = static_cast<int8_t>(v); break;
      case DataType::U8: case DataType::U4: static_cast<uint8_t*>(dst)[i] = static_cast<uint8_t>(v + 4); break;
      case DataType::S16: static_cast<int16_t*>(dst)[i] = static_cast<int16_t>(v); break;
      case DataType::U16: static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(v + 4); break;
      case DataType::S32: static_cast<int32_t*>(dst)[i] = v; break;
      case DataType::U32: static_cast<uint32_t*>(dst)[i] = static_cast<uint32_t>(v + 4); break;
      case DataType::S64: static_cast<int64_t*>(dst)[i] = v; break;
      case DataType::U64: static_cast<uint64_t*>(dst)[i] = static_cast<uint64_t>(v + 4); break;
      default: break;
    }
  }
}

// Sums every byte (so each is read) and copies them for the determinism check.
std::string read_all(const hbm::OutputTensor& o, size_t bytes) {
  if (bytes && !o.data) finding("output with " + std::to_string(bytes) + " bytes has no data");
  std::string copy(static_cast<const char*>(o.data), bytes);
  volatile unsigned sum = 0;
  for (char c : copy) sum = sum + static_cast<unsigned char>(c);
  return copy;
}

void check_outputs(const hbm::ModelInfo& mi, const std::vector<hbm::OutputTensor>& outs,
                   std::vector<std::string>& bytes_out) {
  if (outs.size() != mi.outputs.size())
    finding("model returned " + std::to_string(outs.size()) + " outputs, declares " +
            std::to_string(mi.outputs.size()));
  bytes_out.clear();
  for (size_t i = 0; i < outs.size(); ++i) {
    const hbm::TensorInfo& t = mi.outputs[i];
    const hbm::OutputTensor& o = outs[i];
    const std::string what = "output '" + t.name + "' ";
    if (o.dtype != t.dtype) finding(what + "dtype differs from its metadata");
    // Metadata [] is a scalar or (unranked output) any rank.
    if (!t.shape.empty()) {
      if (o.shape.size() != t.shape.size())
        finding(what + "rank " + std::to_string(o.shape.size()) + ", metadata " +
                hbm::format_shape(t.shape));
      for (size_t d = 0; d < t.shape.size(); ++d)
        if (t.shape[d] >= 0 && o.shape[d] != t.shape[d])
          finding(what + "shape " + hbm::format_shape(o.shape) + ", metadata " +
                  hbm::format_shape(t.shape));
    }
    size_t n = 1;
    for (int64_t d : o.shape) {
      if (d < 0) finding(what + "has a negative dim " + hbm::format_shape(o.shape));
      if (d && n > SIZE_MAX / static_cast<size_t>(d)) finding(what + "size overflows");
      n *= static_cast<size_t>(d);
    }
    if (o.strides != t.dense_strides(o.shape)) finding(what + "strides are not dense");
    bytes_out.push_back(read_all(o, n * hbm::element_size(o.dtype)));
  }
}

void run_model(hbm::Runtime& rt, size_t m, size_t size) {
  const hbm::ModelInfo& mi = rt.info(m);
  std::vector<ReadOnly> mem(mi.inputs.size());
  hbm::Runtime::Request req;
  req.model = m;
  const int64_t dyn = 1 + static_cast<int64_t>(size % 2);
  for (size_t i = 0; i < mi.inputs.size(); ++i) {
    const hbm::TensorInfo& t = mi.inputs[i];
    hbm::InputView v;
    v.dtype = t.dtype;
    size_t count = 1;
    for (int64_t d : t.shape) {
      int64_t dim = d < 0 ? dyn : d;
      v.shape.push_back(dim);
      if (dim && count > kMaxInputBytes / static_cast<size_t>(dim)) return;  // too large to run
      count *= static_cast<size_t>(dim);
    }
    v.nbytes = count * hbm::element_size(t.dtype);
    if (v.nbytes > kMaxInputBytes) return;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    mem[i].len = (v.nbytes + page - 1) / page * page + page;
    mem[i].p = mmap(nullptr, mem[i].len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem[i].p == MAP_FAILED) return;
    // The data ends where the mapping ends, so reading past it faults too.
    char* data = static_cast<char*>(mem[i].p) + (mem[i].len - v.nbytes) / 64 * 64;
    if (data + v.nbytes > static_cast<char*>(mem[i].p) + mem[i].len) finding("harness bug");
    fill(data, t.dtype, count, static_cast<uint32_t>(i));
    if (mprotect(mem[i].p, mem[i].len, PROT_READ) != 0) finding("mprotect failed");
    v.data = data;
    req.inputs.push_back(std::move(v));
  }
  std::vector<hbm::Runtime::Result> first;
  try {
    first = rt.run({req});
  } catch (const hbm::Error&) {
    return;
  }
  std::vector<std::string> a, b;
  check_outputs(mi, first.at(0).outputs, a);
  // Again, while the first results are still held (another request slot, fresh buffers).
  std::vector<hbm::Runtime::Result> second;
  try {
    second = rt.run({req});
  } catch (const hbm::Error& e) {
    finding(std::string("second run failed where the first succeeded: ") + e.what());
  }
  check_outputs(mi, second.at(0).outputs, b);
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) finding("output '" + mi.outputs[i].name + "' differs between two runs");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!std::getenv("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS") && !std::getenv("HBM_OPENVINO_LIB_DIR")) {
    std::fprintf(stderr, "set HBM_RUNTIME_OPENVINO_PACKAGE_LIBS=<site-packages>/openvino/libs\n");
    std::exit(2);
  }
  char tmpl[] = "/tmp/hbm_fuzz_XXXXXX";
  if (!mkdtemp(tmpl)) finding("mkdtemp failed");
  g_dir = tmpl;
  g_path = g_dir + "/m.onnx";
  make_side_files();
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
  });
  return 0;
}

// A Loop's trip count is data: a mutated one (2**62) computes for ever, here as in
// onnxruntime, which is the model's doing, not a runtime bug. Graphs naming the op are loaded
// but not run (a crude byte search: it may also skip a few models that merely mention it).
bool may_loop_for_ever(const uint8_t* data, size_t size) {
  static const char kOp[] = "Loop";
  return std::search(data, data + size, kOp, kOp + 4) != data + size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_file(g_path, data, size);
  try {
    hbm::Runtime rt({g_path});
    if (!may_loop_for_ever(data, size))
      for (size_t m = 0; m < rt.model_count(); ++m) run_model(rt, m, size);
    rt.close();
  } catch (const hbm::Error&) {
    // A clear error: fine.
  } catch (const std::bad_alloc&) {
    // A huge declared or computed tensor: MemoryError in Python, fine.
  } catch (const std::exception& e) {
    finding(std::string("unexpected exception type escaped: ") + e.what());
  }
  return 0;
}
