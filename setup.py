"""Build the crnn_fast kernels with torch.utils.cpp_extension.

Switches (environment variables):
  CRNN_FAST_FORCE_CPU=1   build the CPU kernels only, even where CUDA is available.
  FORCE_CUDA=1            build the CUDA kernels even if torch or the toolkit look unusable
                          (the build then fails loudly instead of silently skipping CUDA).
  TORCH_CUDA_ARCH_LIST    GPU architectures to compile for, e.g. "8.0;9.0+PTX". Unset and no
                          GPU visible: DEFAULT_CUDA_ARCHS below.
  MAX_JOBS                parallel compile jobs for ninja.
  CRNN_FAST_SANITIZE=1    compile and link the C++ kernels with AddressSanitizer and
                          UndefinedBehaviorSanitizer (-O1, frame pointers kept); run Python
                          with the ASan runtime preloaded (see the README, "Development").
"""

import glob
import os
import re
import shutil


def find_cuda_home():
    """A toolkit root that holds the CUDA headers and runtime, or None.

    torch looks at $CUDA_HOME/$CUDA_PATH, then at the parent of `nvcc` on PATH; when
    that `nvcc` is a wrapper script (e.g. /usr/local/bin/nvcc) the parent is no
    toolkit, so check for cuda_runtime.h and fall back to /usr/local/cuda.
    """
    nvcc = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    candidates += [os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None, "/usr/local/cuda"]
    for root in filter(None, candidates):
        if os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    return None


if find_cuda_home():
    os.environ.setdefault("CUDA_HOME", find_cuda_home())

import torch  # noqa: E402  (after CUDA_HOME is settled: cpp_extension reads it at import)
from setuptools import setup  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
# A100 and H100 natively; PTX of sm_90 lets newer GPUs JIT-compile the kernels.
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
# Stable-ABI target: the oldest torch whose C shim the kernels may call (0xMMmm000000000000).
TORCH_TARGET_VERSION = "0x020a000000000000"
MIN_TORCH = "2.10"


def env_flag(name):
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def read_version():
    with open(os.path.join(ROOT, "crnn_fast", "version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def want_cuda():
    if env_flag("CRNN_FAST_FORCE_CPU"):
        return False
    if env_flag("FORCE_CUDA"):
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def cuda_archs():
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    return os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")


def write_build_info(version, with_cuda, archs):
    """Record what this build compiled, for `python -m crnn_fast.info`."""
    info = {
        "version": version,
        "built_with_torch": torch.__version__.split("+")[0],
        "torch_target_abi": MIN_TORCH,
        "cuda": with_cuda,
        "cuda_version": torch.version.cuda if with_cuda else None,
        "cuda_archs": archs if with_cuda else None,
    }
    with open(os.path.join(ROOT, "crnn_fast", "_build_info.py"), "w") as f:
        f.write("# Written by setup.py at build time.\n")
        f.write(f"BUILD_INFO = {info!r}\n")


def get_extension(with_cuda):
    sources = [os.path.join("csrc", "ops.cpp")] + sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    common = ["-O3", f"-DTORCH_TARGET_VERSION={TORCH_TARGET_VERSION}"]
    extra_compile_args = {"cxx": common + ["-std=c++17", "-fvisibility=hidden"]}
    extra_link_args = []
    if env_flag("CRNN_FAST_SANITIZE"):
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
        extra_compile_args["cxx"] += ["-O1", "-g", *sanitize]  # the last -O wins
        extra_link_args += sanitize
    define_macros = []
    extension = CppExtension
    if with_cuda:
        extension = CUDAExtension
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        define_macros.append(("USE_CUDA", None))
        extra_compile_args["nvcc"] = common + ["-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
    return extension(
        name="crnn_fast._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
        py_limited_api=True,
    )


version = read_version()
with_cuda = want_cuda()
archs = cuda_archs() if with_cuda else None
write_build_info(version, with_cuda, archs)

setup(
    version=version,
    ext_modules=[get_extension(with_cuda)],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
