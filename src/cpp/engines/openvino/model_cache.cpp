// Layout of HBM_RUNTIME_CACHE_DIR:
//   <root>/<content hash>-<size>-<tag hash>/model.onnx      the model's bytes, written once
//   <root>/<content hash>-<size>-<tag hash>/<id>.blob       OpenVINO's compiled blobs
//   <root>/<...>/.tmp-*                                      files and directories being written
//
// Why not hand OpenVINO (2026.4) the root directly:
// - Compiling from a file path, its blob id covers the absolute path and the compile
//   properties, and the blob's header the path's size and modification time in whole seconds:
//   a model rewritten within the same second with the same size would reuse the stale blob.
//   Compiling from a model object instead hashes the whole graph and its weights on every
//   load, after reading and converting the ONNX file, which is most of what a cache is meant
//   to skip. Here the entry is named by a hash of the bytes and its `model.onnx` copy is
//   compared byte for byte with the file being loaded; OpenVINO compiles that copy, whose
//   path, size and time never change.
// - OpenVINO writes a blob in place (open the final name, write, chmod) with no lock across
//   processes: a process starting meanwhile can read a partial blob, or map a file another
//   process truncates. OpenVINO is therefore only given a private directory of hard links to
//   the published blobs. When it finds a blob unusable it removes its link (never the
//   published file) before writing a new one there, and publish() renames new blobs into
//   the entry: readers see a whole old file or a whole new one.
#include "engines/openvino/model_cache.h"

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hbm::ov_cache {
namespace fs = std::filesystem;

uint64_t hash_bytes(std::string_view data, uint64_t seed) {
  // Four independent lanes (so the loop runs at memory speed), each step a bijection of the
  // lane, then every lane and the length folded through a final avalanche.
  constexpr uint64_t kMulA = 0x9e3779b97f4a7c15ULL, kMulB = 0xd6e8feb86659fd93ULL,
                     kMulC = 0xa0761d6478bd642fULL;
  auto step = [](uint64_t lane, uint64_t word) { return std::rotl(lane ^ (word * kMulB), 29) * kMulA; };
  auto avalanche = [](uint64_t h) {
    h ^= h >> 31;
    h *= kMulC;
    h ^= h >> 29;
    h *= kMulB;
    return h ^ (h >> 32);
  };
  uint64_t lane[4] = {seed ^ kMulA, seed + kMulB, seed ^ kMulC, seed - kMulA};
  const char* p = data.data();
  size_t n = data.size();
  for (; n >= 32; p += 32, n -= 32)
    for (int i = 0; i < 4; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      lane[i] = step(lane[i], w);
    }
  uint64_t tail[4] = {0, 0, 0, 0};
  std::memcpy(tail, p, n);
  uint64_t h = static_cast<uint64_t>(data.size()) * kMulC;
  for (int i = 0; i < 4; ++i) h = std::rotl(h ^ avalanche(step(lane[i], tail[i])), 23) * kMulA;
  return avalanche(h);
}

namespace {

constexpr char kModelName[] = "model.onnx";
constexpr char kTmpPrefix[] = ".tmp-";
constexpr auto kStaleAfter = std::chrono::hours(1);  // a crashed writer's leftovers

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string errno_text(int err) { return std::strerror(err); }

bool read_only_error(int err) { return err == EACCES || err == EPERM || err == EROFS; }

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool is_blob_name(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".blob") == 0 && name[0] != '.';
}

std::optional<FileId> file_id(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// Names of the entries of `dir` (no "." and ".."); empty when it cannot be read.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return out;
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
  }
  return out;
}

enum class Match { same, different, missing, unreadable };

// Compares the file at `path` with `bytes`, reading it in pieces (never mapping it: a file
// truncated meanwhile must be an error, not a SIGBUS).
Match compare_file(const std::string& path, std::string_view bytes) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return errno == ENOENT ? Match::missing : Match::unreadable;
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return Match::unreadable;
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != bytes.size()) return Match::different;
  constexpr size_t kChunk = size_t{1} << 20;
  auto buf = std::make_unique_for_overwrite<char[]>(kChunk);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t got = ::read(f.fd, buf.get(), std::min(kChunk, bytes.size() - done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Match::unreadable;
    if (got == 0) return Match::different;  // shrank meanwhile
    if (std::memcmp(buf.get(), bytes.data() + done, static_cast<size_t>(got)) != 0) return Match::different;
    done += static_cast<size_t>(got);
  }
  return Match::same;
}

// The hash of the whole file at `path` (whose size is `size`), nullopt when unreadable.
std::optional<uint64_t> hash_file(const std::string& path, size_t size) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return std::nullopt;
  auto buf = std::make_unique_for_overwrite<char[]>(size ? size : 1);
  size_t done = 0;
  while (done < size) {
    ssize_t got = ::read(f.fd, buf.get() + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return std::nullopt;
    done += static_cast<size_t>(got);
  }
  char extra;
  if (::read(f.fd, &extra, 1) != 0) return std::nullopt;  // grew meanwhile
  return hash_bytes(std::string_view(buf.get(), size));
}

// Writes `bytes` to a new read-only file in `dir`; returns its path, or "" with `err` set.
std::string write_temp_file(const std::string& dir, std::string_view bytes, int& err) {
  std::string path = dir + "/" + kTmpPrefix + "model-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) {
    err = errno;
    return "";
  }
  Fd f(fd);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t put = ::write(f.fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      err = put < 0 ? errno : EIO;
      ::unlink(path.c_str());
      return "";
    }
    done += static_cast<size_t>(put);
  }
  if (::fchmod(f.fd, 0444) != 0 || ::close(f.fd) != 0) {
    err = errno;
    f.fd = -1;
    ::unlink(path.c_str());
    return "";
  }
  f.fd = -1;
  return path;
}

// Removes what a crashed process left in `entry` long ago. A live compile's directory is
// never that old.
void remove_stale(const std::string& entry) {
  const auto now = fs::file_time_type::clock::now();
  for (const std::string& name : list_dir(entry)) {
    if (name.rfind(kTmpPrefix, 0) != 0) continue;
    std::error_code ec;
    const fs::path p = fs::path(entry) / name;
    const auto when = fs::last_write_time(p, ec);
    if (!ec && now - when > kStaleAfter) fs::remove_all(p, ec);
  }
}

// Puts `bytes` at `model` unless a file is already there (two processes may race here).
// Returns 0 or an errno value.
int create_model_file(const std::string& entry, const std::string& model, std::string_view bytes) {
  int err = 0;
  const std::string tmp = write_temp_file(entry, bytes, err);
  if (tmp.empty()) return err;
  int rc = ::link(tmp.c_str(), model.c_str());  // fails with EEXIST instead of replacing
  err = rc == 0 || errno == EEXIST ? 0 : errno;
  ::unlink(tmp.c_str());
  return err;
}

// Replaces a damaged `model` (e.g. left zero-filled by a power loss) and the blobs compiled
// from it. Returns 0 or an errno value.
int replace_model_file(const std::string& entry, const std::string& model, std::string_view bytes) {
  int err = 0;
  const std::string tmp = write_temp_file(entry, bytes, err);
  if (tmp.empty()) return err;
  if (::rename(tmp.c_str(), model.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return err;
  }
  for (const std::string& name : list_dir(entry))
    if (is_blob_name(name)) ::unlink((entry + "/" + name).c_str());
  return 0;
}

}  // namespace

Lease::Lease(std::string entry, std::string priv)
    : entry_(std::move(entry)), model_(entry_ + "/" + kModelName), private_(std::move(priv)) {}

Lease::Lease(Lease&& other) noexcept
    : entry_(std::move(other.entry_)),
      model_(std::move(other.model_)),
      private_(std::move(other.private_)),
      links_(std::move(other.links_)),
      offered_(std::move(other.offered_)) {
  other.private_.clear();
}

Lease::~Lease() {
  if (private_.empty()) return;
  try {
    std::error_code ec;
    fs::remove_all(private_, ec);
  } catch (...) {  // only allocation can throw here: leave the directory to remove_stale()
  }
}

void Lease::link_blobs() {
  for (const std::string& name : list_dir(entry_)) {
    if (!is_blob_name(name)) continue;
    const std::string from = entry_ + "/" + name;
    if (private_.empty()) {  // a read-only entry: OpenVINO reads it in place
      if (auto id = file_id(from)) offered_.push_back(*id);
      continue;
    }
    const std::string to = private_ + "/" + name;
    if (::link(from.c_str(), to.c_str()) != 0) continue;  // OpenVINO compiles and writes anew
    if (auto id = file_id(to)) {
      links_.emplace_back(name, *id);
      offered_.push_back(*id);
    }
  }
}

std::optional<Lease> Lease::open(const std::string& root_in, std::string_view bytes,
                                 const std::string& tag, std::string& why, bool& unusable_root) {
  unusable_root = false;
  std::error_code ec;
  fs::path root = fs::absolute(root_in, ec);
  if (!ec) fs::create_directories(root, ec);
  const bool is_dir = !ec && fs::is_directory(root, ec);
  if (is_dir) root = fs::canonical(root, ec);  // the path /proc/self/maps shows
  if (ec || !is_dir) {
    why = ec ? ec.message() : "not a directory";
    unusable_root = true;
    return std::nullopt;
  }
  const uint64_t key = hash_bytes(bytes);
  const std::string entry =
      (root / (hex64(key) + "-" + std::to_string(bytes.size()) + "-" + hex64(hash_bytes(tag)))).string();
  const std::string model = entry + "/" + kModelName;
  bool writable = true;
  if (::mkdir(entry.c_str(), 0777) != 0 && errno != EEXIST) {
    if (!read_only_error(errno)) {
      why = errno_text(errno);
      unusable_root = true;
      return std::nullopt;
    }
    writable = false;
  }

  switch (compare_file(model, bytes)) {
    case Match::same:
      break;
    case Match::missing: {
      if (!writable) {
        why = "cannot write to it";
        unusable_root = true;
        return std::nullopt;
      }
      if (int err = create_model_file(entry, model, bytes)) {
        why = errno_text(err);
        unusable_root = read_only_error(err) || err == ENOSPC || err == EDQUOT;
        return std::nullopt;
      }
      if (compare_file(model, bytes) != Match::same) {  // another process's damaged copy
        why = "its copy of the model differs";
        return std::nullopt;
      }
      break;
    }
    case Match::different: {
      // Same name, other bytes: a damaged copy (its hash is not the name's), which is replaced,
      // or another model with the same hash, which cannot be cached here.
      struct stat st;
      const bool damaged = ::stat(model.c_str(), &st) != 0 ||
                           static_cast<uint64_t>(st.st_size) != bytes.size() ||
                           hash_file(model, bytes.size()) != key;
      if (!damaged || !writable) {
        why = damaged ? "its copy of the model is damaged and read-only"
                      : "another model's entry has the same hash";
        return std::nullopt;
      }
      if (int err = replace_model_file(entry, model, bytes)) {
        why = errno_text(err);
        return std::nullopt;
      }
      if (compare_file(model, bytes) != Match::same) {
        why = "its copy of the model differs";
        return std::nullopt;
      }
      break;
    }
    case Match::unreadable:
      why = "cannot read " + model + ": " + errno_text(errno);
      return std::nullopt;
  }

  std::string priv;
  if (writable) {
    remove_stale(entry);
    priv = entry + "/" + kTmpPrefix + "load-XXXXXX";
    if (!::mkdtemp(priv.data())) {
      if (!read_only_error(errno)) {
        why = errno_text(errno);
        unusable_root = errno == ENOSPC || errno == EDQUOT;
        return std::nullopt;
      }
      priv.clear();
    }
  }
  Lease lease(entry, std::move(priv));
  lease.link_blobs();
  if (lease.private_.empty() && lease.offered_.empty()) {
    why = "cannot write to it";  // read-only and holding no compiled blob
    unusable_root = true;
    return std::nullopt;
  }
  return lease;
}

std::optional<Lease> Lease::reopen(const std::string& entry_dir) {
  std::string priv = entry_dir + "/" + kTmpPrefix + "load-XXXXXX";
  if (!::mkdtemp(priv.data())) {
    if (!read_only_error(errno)) return std::nullopt;
    priv.clear();
  }
  Lease lease(entry_dir, std::move(priv));
  lease.link_blobs();
  if (lease.private_.empty() && lease.offered_.empty()) return std::nullopt;
  return lease;
}

void Lease::publish() {
  if (private_.empty()) return;
  for (const std::string& name : list_dir(private_)) {
    if (!is_blob_name(name)) continue;
    const std::string from = private_ + "/" + name;
    const std::optional<FileId> id = file_id(from);
    if (!id) continue;
    bool linked = false;
    for (const auto& [n, fid] : links_) linked = linked || (n == name && fid == *id);
    if (!linked) ::rename(from.c_str(), (entry_ + "/" + name).c_str());  // atomic replace
  }
}

void release_mapped_pages(const std::vector<FileId>& files, const std::string& dir) {
  if (files.empty()) return;
  const std::string inside = dir + "/";
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long long start = 0, end = 0, offset = 0, inode = 0;
    unsigned int dev_major = 0, dev_minor = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu", &start, &end, perms, &offset,
                    &dev_major, &dev_minor, &inode) != 7)
      continue;
    // Shared read-only mappings only: their pages are the file's own, never private copies,
    // so dropping them loses nothing.
    if (perms[1] == 'w' || perms[3] != 's' || end <= start) continue;
    // Opened in `dir` itself: another compile's files (a private directory below an entry)
    // are not ours to touch. The path, not the device, decides: the device /proc shows can
    // differ from stat()'s (overlayfs, btrfs subvolumes).
    const size_t path_at = line.find('/');
    if (path_at == std::string::npos || line.compare(path_at, inside.size(), inside) != 0 ||
        line.find('/', path_at + inside.size()) != std::string::npos)
      continue;
    for (const FileId& f : files) {
      if (f.ino != static_cast<ino_t>(inode)) continue;
      ::madvise(reinterpret_cast<void*>(start), static_cast<size_t>(end - start), MADV_DONTNEED);
      break;
    }
  }
}

}  // namespace hbm::ov_cache
