"""Exceptions raised by hbm_runtime (besides ValueError/TypeError for bad arguments)."""

from __future__ import annotations

from typing import Any, Tuple


class HBMRuntimeError(RuntimeError):
    """An engine library reported a failure.

    ``code`` is the library's status code and ``description`` its own text for it.
    """

    def __init__(self, message: str, code: int = -1, description: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.description = description

    def __reduce__(self) -> Tuple[Any, ...]:  # keep code/description through pickling (multiprocessing)
        return (type(self), (str(self), self.code, self.description))


class EngineUnavailableError(RuntimeError):
    """The engine a model needs cannot be loaded here (library missing or incomplete).

    The message says what to install or which environment variable to set.
    """


class RuntimeClosedError(RuntimeError):
    """The runtime was closed (explicitly or at interpreter exit) before the work ran."""


class InvalidArgumentError(ValueError, RuntimeError):
    """An argument or input does not fit the model (name, dtype, shape, scheduling value...).

    A ValueError, as the API documents; also a RuntimeError, which is what the vendor's own
    package raises for these, so ``except RuntimeError`` in code written for it still works.
    """


class ModelFileNotFoundError(FileNotFoundError, InvalidArgumentError):
    """A model file does not exist. Checked before any engine loads, so a mistyped path is
    never reported as a missing engine library. Also an InvalidArgumentError, like every
    other bad argument to HB_HBMRuntime()."""
