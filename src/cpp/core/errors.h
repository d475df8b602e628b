// One error hierarchy for the whole core; the bindings translate it once.
#pragma once
#include <stdexcept>
#include <string>

namespace hbm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The caller passed something wrong (-> ValueError).
struct InvalidArgument : Error {
  using Error::Error;
};

// The caller asked for something that is not there (-> KeyError-like ValueError).
struct NotFound : InvalidArgument {
  using InvalidArgument::InvalidArgument;
};

// An engine library reported a failure (-> HBMRuntimeError with .code).
struct EngineError : Error {
  EngineError(std::string message, int code, std::string description = {})
      : Error(std::move(message)), code(code), description(std::move(description)) {}
  int code;
  std::string description;
};

// An engine cannot be used here: library missing or incomplete (-> EngineUnavailableError).
struct EngineUnavailable : Error {
  using Error::Error;
};

// A runtime was closed while work was pending, or the caller cancelled it (-> RuntimeError).
struct Cancelled : Error {
  using Error::Error;
};

// A blocking wait gave up because the caller was interrupted (Ctrl-C); the bindings re-raise
// the interrupt itself.
struct Interrupted : Error {
  using Error::Error;
};

}  // namespace hbm
