#!/usr/bin/env bash
# The GPU machine's side of benchmarks/gpu_prepare.sh, one stage a device call, run from the project root:
#   start  keeps part 1, the small wheels and the speech in /tmp/gpu, and exports XLS-R-300M fp32 and fp16
#          in the background (its own session, so it outlives the call) with the image's packages
#   part   keeps the part this call carried
#   run    joins the parts, installs onnxruntime-gpu and the small wheels into /tmp/site, waits for the
#          export, runs benchmarks/gpu.py (GPU_ARGS adds arguments) and leaves its log and JSON in $OUT
set -uo pipefail
stage=${1:?start, part or run}
W=${GPU_WORK:-/tmp/gpu}
mkdir -p $W/parts
cp .gpu/p*/part.* $W/parts/ 2>/dev/null
case $stage in
start)
    cp -r .gpu/small $W/small && cp benchmarks/out/gpu_speech.wav $W/speech.wav || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --target $W/site-small $W/small/*.whl || exit 1
    rm -rf $W/repo && mkdir $W/repo && cp -r benchmarks models streamer client $W/repo/ || exit 1
    # a session of its own, so that it outlives this call
    setsid nohup bash -c "cd $W/repo && PYTHONPATH=$W/site-small:$W/repo python3 benchmarks/gpu.py --export-to \
        $W/models > $W/export.log 2>&1 && touch $W/export.done || touch $W/export.failed" > /dev/null 2>&1 < /dev/null &
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
    python3 -c "import torch, transformers, onnx, onnxruntime; print(torch.__version__, transformers.__version__, onnx.__version__, onnxruntime.__version__)"
    ;;
part) ls $W/parts ;;
run)
    ls $W/parts
    cat $W/parts/part.* > $W/ort.tar.xz || exit 1
    python3 -c "import tarfile; tarfile.open('$W/ort.tar.xz').extractall('$W/site')" || exit 1  # no xz needed
    export PYTHONPATH=$W/site:$W/site-small:$PWD
    python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())" || exit 1
    for _ in $(seq 240); do [ -e $W/export.done ] || [ -e $W/export.failed ] && break; sleep 1; done
    tail -3 $W/export.log
    [ -e $W/export.done ] || { cat $W/export.log; echo "export not done: gpu.py exports itself"; }
    fp=$W/models/xlsr-300m-random-onnx
    models=(); [ -e $W/export.done ] && models=(--fp32 ${fp}-fp32 --fp16 ${fp}-fp16)
    PYTHONUNBUFFERED=1 timeout ${GPU_TIMEOUT_S:-470} python3 benchmarks/gpu.py --device cuda --speech $W/speech.wav \
        "${models[@]}" ${GPU_ARGS:-} 2>&1 | tee $OUT/gpu.log
    cp $W/export.log $OUT/ 2>/dev/null
    nvidia-smi --query-gpu=memory.used --format=csv,noheader
    ;;
esac
