// The compiled-model cache of the host engine (HBM_RUNTIME_CACHE_DIR): OpenVINO's own model
// cache (its CACHE_DIR property), fed in a way that makes it safe to share between processes
// and that keys it by the model's bytes rather than by its path and modification time.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace hbm::ov_cache {

// A fast 64-bit hash of `data` (not cryptographic: an entry's model bytes are compared in
// full before the entry is used).
uint64_t hash_bytes(std::string_view data, uint64_t seed = 0);

// A file as the kernel knows it, to find its mappings in /proc/self/maps.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

// One compile through the cache. The entry's directory holds `model.onnx` (a copy of the
// model's bytes, never modified: OpenVINO keys its blobs by that path, its size and its
// modification time) and the published `<id>.blob` files. OpenVINO itself only ever sees a
// private directory holding hard links to those blobs: it writes new blobs there (it writes
// in place, not atomically) and publish() renames them into the entry, so no process ever
// reads a blob another one is still writing. The destructor removes the private directory.
class Lease {
 public:
  // The entry for `bytes` under `root` (created when missing). `tag` names what the blobs
  // also depend on (the OpenVINO build, the CPU). nullopt with `why` set when the cache cannot
  // be used for these bytes; `unusable_root` then tells whether the whole directory is.
  static std::optional<Lease> open(const std::string& root, std::string_view bytes,
                                   const std::string& tag, std::string& why, bool& unusable_root);
  // Another compile from an entry opened before (its model bytes already checked).
  static std::optional<Lease> reopen(const std::string& entry_dir);

  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease();

  const std::string& entry_dir() const { return entry_; }
  const std::string& model_path() const { return model_; }
  // OpenVINO's CACHE_DIR for this compile.
  const std::string& cache_dir() const { return private_.empty() ? entry_ : private_; }
  // True when cache_dir() is this lease's own directory (false: a read-only entry, read in place).
  bool is_private() const { return !private_.empty(); }
  // The published blobs OpenVINO may import (and map) in this compile.
  const std::vector<FileId>& offered_blobs() const { return offered_; }

  // After a successful compile: moves the blobs OpenVINO wrote into the entry, replacing the
  // ones it found stale. Errors are ignored: the next load compiles again.
  void publish();

 private:
  Lease(std::string entry, std::string priv);
  void link_blobs();

  std::string entry_;    // <root>/<key>
  std::string model_;    // <entry>/model.onnx
  std::string private_;  // <entry>/.tmp-load-XXXXXX, empty when the entry is read-only
  std::vector<std::pair<std::string, FileId>> links_;  // blob name, file linked into private_
  std::vector<FileId> offered_;
};

// Drops this process's page-table entries of shared read-only mappings of `files` opened in
// `dir` itself (not below it), so that pages OpenVINO mapped from a blob and already copied
// into its own layout (repacked weights) stop counting in the RSS. Nothing is lost: the pages
// stay in the page cache, and a later read maps them again. No mapping it may touch can be
// unmapped meanwhile: either only the caller's compile opens files in `dir` (a lease's private
// directory), or the caller holds ov::mapping_mutex() from the compile that mapped them to
// this call.
void release_mapped_pages(const std::vector<FileId>& files, const std::string& dir);

}  // namespace hbm::ov_cache
