#!/usr/bin/env bash
# Everything benchmarks/gpu.py needs on the lent GPU machine that it lacks, made here (run from the project
# root): onnxruntime-gpu in parts (../shared/gpu/prepare_ort_gpu.sh), the wheels for exporting XLS-R-300M
# there (transformers and its dependencies, for Python 3.12), and the held-out speech (the GPU machine
# has no espeak-ng). Then, on the device, back to back (see ../shared/gpu/README.md):
#   carry [".gpu/p1"]  mkdir -p /tmp/ortparts && cp .gpu/p1/part.* /tmp/ortparts/     ... up to the last part,
#   last: carry [".gpu/pN", ".gpu/small", "benchmarks/out/gpu_speech.wav"]
#     cp .gpu/pN/part.* /tmp/ortparts/ && W=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl &&
#     cat /tmp/ortparts/part.* > $W && python3 -m pip install -q --no-index --no-deps --target /tmp/site $W
#     .gpu/small/*.whl && PYTHONPATH=/tmp/site:$PWD timeout 540 python3 benchmarks/gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash ../shared/gpu/prepare_ort_gpu.sh
get() { python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .gpu/small "$@"; }
# transformers builds and exports the model; torch, numpy and onnx are in the image, so they are not fetched
get --no-deps "transformers==$(python3 -c 'import transformers; print(transformers.__version__)')" \
    huggingface_hub tokenizers safetensors regex pyyaml tqdm filelock fsspec packaging typing_extensions \
    hf-xet prometheus_client
python3 benchmarks/gpu.py --prepare-speech
du -sh .gpu/small benchmarks/out/gpu_speech.wav
