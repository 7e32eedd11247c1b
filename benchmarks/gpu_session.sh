#!/usr/bin/env bash
# The GPU checks still open, as one prepared command for a lent GPU machine (no internet
# there, torch preinstalled; see the README's "Speed on a GPU"). From the repository root:
#
#   pip download --no-deps -d wheels captcha==0.7.1     # what the GPU machine lacks, once
#   pip download --no-deps -d wheels --python-version 3.12 --platform manylinux2014_x86_64 \
#       --only-binary=:all: rapidfuzz
#   bash benchmarks/gpu_session.sh [STAGE...]           # there, with the kernels built here carried:
#                                                       # wheels, crnn_fast/_C.abi3.so, crnn_fast/_build_info.py
#
# Stages (default: checks probe study), each writing under $OUT (default runs/gpu-session):
#   checks  install, `crnn_fast.info`, the CUDA tests (among them the CPU/GPU CTC gradient
#           check), compute-sanitizer memcheck and synccheck over tests/sanitize_cuda.py, and
#           benchmarks/cudnn_ctc.py (at most 8 minutes, by its timeouts)
#   probe   training images/s of one epoch of the GPU preset's 100k images at batch 256, 512
#           and 1024 (the loop's own figure, validation and test left out)
#   study   benchmarks/seed_study.py, seeds $SEEDS (default 0 1 2) side by side, with the
#           training arguments in $RECIPE (default: none, the GPU preset), stopped after
#           $STUDY_S seconds (default 420); its reports, logs, curves and each run's best
#           weights (float16, crnn_fast.export) in one tarball, seeds.tgz
# Only 8 files of at most 16 MiB come back from a device call: checkpoints stay there.
set -uo pipefail
OUT=${OUT:-runs/gpu-session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DATA=${DATA:-/tmp/crnn-data}
stages=${*:-checks probe study}

stage() { echo "=== $1 ($(date +%T))"; }

if [[ " $stages " == *" checks "* ]]; then
    stage checks
    python3 -m pip install --no-index --no-deps -q wheels/*.whl || echo "wheels: not installed"
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -m crnn_fast.info; } \
        2>&1 | tee "$OUT/info.txt"
    timeout 180 python3 -m pytest tests -q -x -p no:cacheprovider -k "cuda or gpu" 2>&1 | tail -n 30 \
        > "$OUT/cuda-tests.log"
    for tool in memcheck synccheck; do
        PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool $tool --error-exitcode 1 \
            python3 tests/sanitize_cuda.py 2>&1 | tail -n 20
        echo "compute-sanitizer $tool: exit ${PIPESTATUS[0]}"
    done >> "$OUT/cuda-tests.log"
    timeout 60 python3 benchmarks/cudnn_ctc.py --out "$OUT/cudnn-ctc.json"
    tail -n 3 "$OUT/cuda-tests.log"
fi

if [[ " $stages " == *" probe "* ]]; then
    stage probe
    for batch in 256 512 1024; do
        timeout 120 python3 -m crnn_fast.train --preset gpu --epochs 1 --batch-size $batch --n-val 1000 \
            --n-test 1000 --data-dir "$DATA" --out "/tmp/probe-$batch" --no-progress > "/tmp/probe-$batch.log" 2>&1
        python3 -c "import json, sys; h = json.loads(open(sys.argv[1]).readline()); \
print(f'batch {sys.argv[2]}: {h[\"train_images_per_s\"]:,.0f} training images/s')" \
            "/tmp/probe-$batch/metrics.jsonl" $batch || tail -n 5 "/tmp/probe-$batch.log"
    done 2>&1 | tee "$OUT/probe.txt"
fi

if [[ " $stages " == *" study "* ]]; then
    stage study
    # shellcheck disable=SC2086  # SEEDS and RECIPE are word lists
    timeout "${STUDY_S:-420}" python3 benchmarks/seed_study.py --seeds ${SEEDS:-0 1 2} --out "$OUT/seeds" \
        --data-dir "$DATA" -- ${RECIPE:-} 2>&1 | tail -n 20
    for run in "$OUT"/seeds/*/; do
        [[ -f $run/best.pt ]] && python3 -m crnn_fast.export --checkpoint "$run/best.pt" --weights "$run/weights.pt"
    done
    tar czf "$OUT/seeds.tgz" -C "$OUT" --exclude "best.pt" --exclude "last.pt" seeds && rm -rf "$OUT/seeds"
fi
stage done
