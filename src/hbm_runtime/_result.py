"""What run() returns: a plain dict of dicts, plus per-model timings."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np


class RunResult(dict[str, dict[str, np.ndarray[Any, Any]]]):
    """``{model_name: {output_name: numpy.ndarray}}`` with a ``timings`` attribute.

    ``timings[model_name]`` is a dict with ``started_at`` (when work on the model began, in
    seconds on the ``time.monotonic()`` clock), ``queued_us``, ``prepare_us``, ``infer_us``,
    ``finish_us`` (microseconds) and ``core`` (the host virtual core that ran it, or -1
    when the device's own scheduler chose).
    """

    __slots__ = ("_t", "_timings")
    _t: Any
    _timings: Dict[str, Dict[str, float]]

    @property
    def timings(self) -> Dict[str, Dict[str, float]]:
        """Per model, when and where its work ran, e.g. ``{'resnet18': {'started_at': 12.5,
        'queued_us': 8.0, 'prepare_us': 21.0, 'infer_us': 950.0, 'finish_us': 12.0,
        'core': 0}}`` (see the class description)."""
        try:
            return self._timings
        except AttributeError:
            raw = getattr(self, "_t", None)
            self._timings = raw.to_dict() if raw is not None else {}
            return self._timings

    def __reduce__(self) -> Tuple[Any, ...]:
        return (dict, (dict(self),))
