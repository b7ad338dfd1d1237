#!/usr/bin/env bash
# On the GPU machine, from the repository root, once per transfer (see harness/bench/vllm_wheels.py):
#   bash harness/bench/vllm_h200.sh [BENCH_PARTS]
# Stages the carried parts of the vLLM bundle (.whl/vllm-h200); once all have arrived, installs them
# into /tmp/site and runs `python -m m1bench.harness.bench.vllm_gpu` (parts: BENCH_PARTS, default all)
# with its JSON and server logs in $OUT (or ./runs/vllm-h200). Before the bundle is complete it runs
# embedded_server if asked (it needs no vLLM; the few wheels it does need come in .whl/serve-deps),
# and exits 3.
set -uo pipefail
out=${OUT:-runs/vllm-h200}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 M1BENCH_HOME=${M1BENCH_HOME:-/tmp/m1home}
# The bundle leaves FlashInfer out (vLLM falls back to its own kernels); its sampler must be told.
export VLLM_USE_FLASHINFER_SAMPLER=0
# m1bench importable and its vLLM plugin discoverable (an entry point) without building it: the
# repository root is the package m1bench.
site=/tmp/m1site
mkdir -p $site/m1bench-0.1.0.dist-info
ln -sfn "$PWD" $site/m1bench
printf 'Metadata-Version: 2.1\nName: m1bench\nVersion: 0.1.0\n' > $site/m1bench-0.1.0.dist-info/METADATA
printf '[vllm.general_plugins]\nm1bench_m1 = m1bench.model.vllm_plugin:register\n' > $site/m1bench-0.1.0.dist-info/entry_points.txt
python3 harness/bench/vllm_wheels.py stage .whl/vllm-h200 --staging /tmp/vllm-stage --site /tmp/site
staged=$?
parts=${1:-parity,long,vllm_server,embedded_server,m1_slice_server}
if [ $staged -eq 0 ]; then
  export PYTHONPATH=$site:/tmp/site
else
  [ $staged -eq 3 ] || exit $staged
  case ",$parts," in *,embedded_server,*) ;; *) exit 3 ;; esac
  python3 -m pip install -q --no-index --no-deps --target /tmp/site0 .whl/serve-deps/*.whl || exit 1
  export PYTHONPATH=$site:/tmp/site0
  parts=embedded_server
fi
# parts measured earlier: this machine's last call, else the committed file
if [ -f /tmp/vllm_h200.json ]; then cp /tmp/vllm_h200.json "$out/"; elif [ -f reports/bench/vllm_h200.json ]; then cp reports/bench/vllm_h200.json "$out/"; fi
python3 -m m1bench.harness.bench.vllm_gpu --out "$out/vllm_h200.json" --parts "$parts"
rc=$?
cp "$out/vllm_h200.json" /tmp/vllm_h200.json
cp runs/bench-vllm-gpu/*.log "$out/" 2>/dev/null
[ $staged -eq 0 ] && exit $rc || exit 3
