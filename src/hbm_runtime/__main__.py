"""Command line of hbm_runtime: ``info`` (model metadata), ``bench`` (how fast the models
run here), ``demo`` (the bundled demo model) and ``doctor`` (what works on this machine).
See docs/cli.md."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, NoReturn, Optional, TypeVar

from ._cli_common import NUMPY_DTYPES, CliError
from ._cli_demo import DEMO_MODEL

__all__ = ["main", "DEMO_MODEL", "NUMPY_DTYPES"]


class _UsageError(Exception):
    """A bad command line; argparse's own message."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is an error like the others: exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")


N = TypeVar("N", int, float)


def _number(convert: Callable[[str], N], what: str, ok: Callable[[N], bool]) -> Callable[[str], N]:
    """An argparse type: `convert`, then `ok`; messages say `what` was expected."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if not ok(value):
            shown = str(value) if isinstance(value, int) else f"'{text}'"
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown}")
        return value

    return parse


_positive_int = _number(int, "a whole number >= 1", lambda v: v >= 1)
_count = _number(int, "a whole number >= 0", lambda v: v >= 0)
_positive_float = _number(float, "a number of seconds > 0", lambda v: v > 0 and v != float("inf"))
_int = _number(int, "a whole number", lambda v: True)


def _cores(text: str) -> List[int]:
    try:
        cores = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        cores = []
    if not cores:
        raise argparse.ArgumentTypeError(f"expected core ids like 0 1 or 0,1, got '{text}'")
    return cores


def _prog() -> str:
    # "hbm-runtime" when started as the console script.
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "hbm-runtime" if name == "hbm-runtime" else "python -m hbm_runtime"


def _tolerant_stdout() -> None:
    # Descriptions may hold characters the terminal's encoding lacks: escape them, do not fail.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (docs/cli.md describes every option)."""
    parser = _Parser(prog=_prog(), description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,bench,demo,doctor}")

    p_info = sub.add_parser("info", help="print every model's metadata",
                            description="Prints every model's metadata: files, models, engines, scheduling, "
                                        "inputs and outputs. Long values are cut unless --full.")
    p_info.add_argument("models", nargs="+", metavar="MODEL", help=".hbm or .onnx files (loaded together)")
    p_info.add_argument("--full", action="store_true", help="show long descriptions and value lists whole")
    p_info.add_argument("--width", type=_positive_int,
                        help="cut long descriptions to this many columns (default: the terminal's, else 120)")
    p_info.add_argument("--json", action="store_true", help="print all metadata as one JSON object")

    p_bench = sub.add_parser("bench", help="measure latency and throughput of the models here",
                             description="Runs the models on random inputs (or --input files) from one or more "
                                         "threads and reports latency percentiles, throughput and the per-stage "
                                         "split. Ctrl-C stops the run, prints what was measured and exits 130.")
    p_bench.add_argument("models", nargs="+", metavar="MODEL", help=".hbm or .onnx files (loaded together)")
    p_bench.add_argument("--model-name", metavar="NAME",
                         help="benchmark only this model (default: all loaded models, run together)")
    p_bench.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                         help="threads calling run() at the same time (default 1)")
    amount = p_bench.add_mutually_exclusive_group()
    amount.add_argument("--runs", type=_positive_int, metavar="N", help="timed runs in total, split over the threads")
    amount.add_argument("--seconds", type=_positive_float, metavar="S",
                        help="run for this long (default 5 s when --runs is not given)")
    p_bench.add_argument("--warmup", type=_count, default=10, metavar="N",
                         help="untimed runs per thread before timing (default 10)")
    p_bench.add_argument("--priority", type=_int, metavar="P", help="scheduling priority of the benchmarked models")
    p_bench.add_argument("--cores", type=_cores, nargs="+", metavar="ID",
                         help="BPU core ids (host: virtual cores) the models may run on, e.g. --cores 0 1")
    p_bench.add_argument("--input", dest="inputs", action="append", default=[], metavar="NAME=FILE.npy",
                         help="data of an input from a .npy file (NAME or MODEL:NAME); repeatable")
    p_bench.add_argument("--shape", dest="shapes", action="append", default=[], metavar="NAME=D0,D1,...",
                         help="shape of a random input with dynamic dimensions (default: -1 becomes 1); repeatable")
    p_bench.add_argument("--seed", type=_int, default=0, metavar="N", help="seed of the random inputs (default 0)")
    p_bench.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p_bench.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress on stderr (default: when stderr is a terminal)")

    p_demo = sub.add_parser("demo", help="run the bundled demo model and time it")
    p_demo.add_argument("--model", help="run this model instead of the bundled one")
    p_demo.add_argument("--runs", type=_positive_int, default=200, help="timed runs (default 200)")

    p_doctor = sub.add_parser("doctor", help="check what works here: Python, CPU, engines, libraries, settings",
                              description="Checks Python, numpy, the package, the CPU, which engines load (and "
                                          "from where), the environment variables hbm_runtime reads and the model "
                                          "cache, and prints a fix for every problem. Exit status 0 when at least "
                                          "one engine works, else 1.")
    p_doctor.add_argument("models", nargs="*", metavar="MODEL",
                          help=".hbm or .onnx files to load with their engine (also shows the BPU layout)")
    p_doctor.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); returns the exit status:
    0 success, 1 error (message on stderr), 130 interrupted by Ctrl-C."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(e, file=sys.stderr)
        return 1
    _tolerant_stdout()
    try:
        if args.command == "info":
            from ._cli_info import info

            return info(args.models, full=args.full, as_json=args.json, width=args.width)
        if args.command == "bench":
            from ._cli_bench import BenchOptions, bench

            return bench(BenchOptions(
                files=args.models, model_name=args.model_name, threads=args.threads, runs=args.runs,
                seconds=args.seconds, warmup=args.warmup, priority=args.priority,
                cores=None if args.cores is None else [c for group in args.cores for c in group],
                inputs=args.inputs, shapes=args.shapes, seed=args.seed, as_json=args.json,
                progress=args.progress))
        if args.command == "doctor":
            from ._cli_doctor import doctor

            return doctor(args.models, as_json=args.json)
        from ._cli_demo import demo

        return demo(args.model, args.runs)
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (| head): no message, no second error at exit
        return 1
    except (CliError, ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
