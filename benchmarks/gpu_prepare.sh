#!/usr/bin/env bash
# Everything benchmarks/gpu.py needs on the lent GPU machine that its image lacks, made here (run from the
# project root; ~5 minutes, most of it xz): onnxruntime-gpu 1.31.1 (CUDA 13) unpacked, without its
# TensorRT provider (the image has no TensorRT), as one tar.xz (193 MiB against the wheel's 244) cut in
# four parts, so that the working tree (~9 MiB) and one part stay under a device call's 64 MiB; the small
# wheels streamer needs (webrtcvad-wheels, soxr, websockets, cp312); and 240 s of held-out speech as a
# WAV (the image has no espeak-ng). The image's own torch, transformers, onnx and onnxruntime export the
# model there. Then four device calls back to back (the machine stays warm ~30 s between calls), each
# `bash benchmarks/gpu_device.sh STAGE` (see that file):
#   1. carry [".gpu/p1", ".gpu/small", "benchmarks/out/gpu_speech.wav"]   stage start (exports in the background)
#   2. carry [".gpu/p2"]  stage part      3. carry [".gpu/p3"]  stage part
#   4. carry [".gpu/p4"]  stage run       (joins, installs, waits for the export, runs gpu.py; JSON to $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/dl .gpu/small .gpu/unpacked
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$1" "$2"; }
get .gpu/dl onnxruntime-gpu==1.31.1
for p in webrtcvad-wheels soxr websockets; do get .gpu/small "$p"; done
(cd .gpu/unpacked && python3 -m zipfile -e ../dl/*.whl . && rm onnxruntime/capi/libonnxruntime_providers_tensorrt.so)
tar -C .gpu/unpacked -cf - . | xz -9 -T0 > .gpu/ort.tar.xz
rm -rf .gpu/dl .gpu/unpacked
# part 1 travels with the small wheels and the speech, so it is the smallest
size=$(stat -c %s .gpu/ort.tar.xz); first=$((40 << 20)); rest=$(( (size - first + 2) / 3 + 1 ))
mkdir -p .gpu/p1 .gpu/p2 .gpu/p3 .gpu/p4
head -c $first .gpu/ort.tar.xz > .gpu/p1/part.1
tail -c +$((first + 1)) .gpu/ort.tar.xz | split -b $rest -d -a 1 --numeric-suffixes=2 - .gpu/part.
for i in 2 3 4; do mv .gpu/part.$i .gpu/p$i/part.$i; done
rm .gpu/ort.tar.xz
python3 benchmarks/gpu.py --prepare-speech
du -sh .gpu/p* .gpu/small benchmarks/out/gpu_speech.wav
