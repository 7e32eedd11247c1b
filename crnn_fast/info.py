"""Show what this crnn_fast install compiled and what it can run on.

    python -m crnn_fast.info            # human-readable
    python -m crnn_fast.info --json     # machine-readable
    python -m crnn_fast.info --require cuda   # exit 1 unless the CUDA kernels were built
"""

import argparse
import json
import sys

import torch

from . import checkpoint, ops
from ._extension import build_info
from .evaluate import native_bf16
from .version import __version__

BACKENDS = ("CPU", "CUDA")


def op_names() -> list[str]:
    """Every op the compiled library declared."""
    prefix = "crnn_fast::"
    return sorted(n[len(prefix):] for n in torch._C._dispatch_get_all_op_names() if n.startswith(prefix))


def collect() -> dict:
    """The install's facts: versions, compiled backends (asked of the dispatcher) and runtime devices."""
    built = build_info() or {}
    kernels = {
        name: [key for key in BACKENDS if torch._C._dispatch_has_kernel_for_dispatch_key(f"crnn_fast::{name}", key)]
        for name in op_names()
    }
    devices = [
        {"index": i, "name": torch.cuda.get_device_name(i), "capability": "%d.%d" % torch.cuda.get_device_capability(i)}
        for i in range(torch.cuda.device_count())
    ] if torch.cuda.is_available() else []
    return {
        "crnn_fast": __version__,
        "torch": torch.__version__,
        "built_with_torch": built.get("built_with_torch"),
        "stable_abi_min_torch": built.get("torch_target_abi"),
        "compiled": {
            "cpu": all("CPU" in keys for keys in kernels.values()),
            "cuda": all("CUDA" in keys for keys in kernels.values()),
            "cuda_version": built.get("cuda_version"),
            "cuda_archs": built.get("cuda_archs"),
        },
        "kernels": kernels,
        "cpu_threads": torch.get_num_threads(),
        "cpu_bf16": native_bf16(torch.device("cpu")),
        "shipped_model": str(checkpoint.SHIPPED["default"]) if checkpoint.SHIPPED["default"].is_file() else None,
        "shipped_models": {name: str(path) for name, path in checkpoint.SHIPPED.items() if path.is_file()},
        "cuda_devices": devices,
        "supported_dtypes": [str(d).removeprefix("torch.") for d in ops.FLOAT_DTYPES],
    }


def render(info: dict) -> str:
    compiled = info["compiled"]
    cuda_line = (
        f"yes, CUDA {compiled['cuda_version']}, archs {compiled['cuda_archs']}" if compiled["cuda"] else "no"
    )
    if info["cuda_devices"]:
        gpus = ", ".join(f"{d['index']}: {d['name']} (sm_{d['capability'].replace('.', '')})" for d in info["cuda_devices"])
    else:
        gpus = "none visible"
    lines = [
        f"crnn_fast        {info['crnn_fast']}",
        f"torch            {info['torch']} (kernels built with {info['built_with_torch']}, "
        f"stable ABI: loads on torch >= {info['stable_abi_min_torch']})",
        f"CPU kernels      {'yes' if compiled['cpu'] else 'no'} ({info['cpu_threads']} threads)",
        f"CUDA kernels     {cuda_line}",
        f"GPUs             {gpus}",
        f"CPU bf16         {'native: the CRNN runs under bf16 autocast' if info['cpu_bf16'] else 'no: float32'}",
        f"shipped model    {info['shipped_model'] or 'missing (reinstall crnn_fast)'}",
        f"shipped models   {', '.join(info['shipped_models']) or 'none'}",
        "ops:",
    ]
    width = max(map(len, info["kernels"]), default=0)
    lines += [f"  {name:<{width}}  {', '.join(keys) or 'none'}" for name, keys in info["kernels"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.info", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument("--require", choices=["cpu", "cuda"], action="append", default=[],
                        help="exit with status 1 unless this backend's kernels were compiled (repeatable)")
    args = parser.parse_args(argv)
    info = collect()
    print(json.dumps(info, indent=2) if args.json else render(info))
    missing = [backend for backend in args.require if not info["compiled"][backend]]
    if missing:
        print(f"error: {', '.join(missing)} kernels were not compiled in this install", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
