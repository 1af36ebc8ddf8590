#!/usr/bin/env bash
# Checks imgcap's c10d shim on a machine with a CUDA libtorch but no Go toolchain: compiles
# cmd/gotchprep/distshim/dist.cpp with the flags gotchprep would use (Gloo and NCCL) and runs
# harness.cpp with NCCL (one rank on GPU 0) and Gloo (two processes). Run from the repository
# root. LIBTORCH defaults to the libtorch inside the python3 torch package; CUDA_HOME to
# /usr/local/cuda.
set -u
T=${LIBTORCH:-$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')}
CUDA=${CUDA_HOME:-/usr/local/cuda}
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version())' 2>/dev/null
nvidia-smi -L
echo "libtorch: $T"; ls -d "$T"/include/gloo 2>/dev/null || echo "no gloo headers in $T/include"
SRC=cmd/gotchprep/distshim
OUT=${OUT:-/tmp}/imgcap-dist-check
mkdir -p "$OUT"
INC="-I$SRC -I$T/include -I$T/include/torch/csrc/api/include -I$CUDA/include"
for std in c++17 c++20; do
  if g++ -std=$std -fsyntax-only $INC -x c++ - <<<'#include <ATen/ATen.h>' 2>/dev/null; then break; fi
done
echo "C++ standard: $std"
CXX="g++ -std=$std -O1 -w $INC"
LIBS="-L$T/lib -Wl,-rpath,$T/lib -ltorch -ltorch_cpu -lc10 -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed"
NCCL="-DUSE_C10D_NCCL -DIMGCAP_DIST_NCCL"
GLOO="-DUSE_C10D_GLOO -DIMGCAP_DIST_GLOO"
start=$(date +%s)
$CXX -c dist/testdata/gpu/harness.cpp -o "$OUT/harness.o" &
$CXX $GLOO $NCCL -c $SRC/dist.cpp -o "$OUT/dist-both.o" 2>"$OUT/both.err" &
$CXX $NCCL -c $SRC/dist.cpp -o "$OUT/dist-nccl.o" 2>"$OUT/nccl.err" &
wait
echo "compiled in $(( $(date +%s) - start ))s"
if [ -f "$OUT/dist-both.o" ]; then obj=dist-both.o; echo "shim compiles with Gloo and NCCL"
elif [ -f "$OUT/dist-nccl.o" ]; then obj=dist-nccl.o; echo "shim compiles with NCCL only; Gloo failed:"; head -5 "$OUT/both.err"
else echo "shim does not compile:"; head -20 "$OUT/nccl.err"; exit 1; fi
g++ "$OUT/$obj" "$OUT/harness.o" $LIBS -o "$OUT/harness" || exit 1
rc=0
echo "== NCCL, 1 rank"
RANK=0 WORLD_SIZE=1 MASTER_PORT=29701 timeout 120 "$OUT/harness" nccl || rc=1
if [ "$obj" = dist-both.o ]; then
  echo "== Gloo, 2 ranks"
  RANK=0 WORLD_SIZE=2 MASTER_PORT=29702 timeout 120 "$OUT/harness" gloo & p=$!
  RANK=1 WORLD_SIZE=2 MASTER_PORT=29702 timeout 120 "$OUT/harness" gloo || rc=1
  wait $p || rc=1
fi
echo "== NCCL, 2 ranks on one GPU (NCCL may refuse a GPU shared by two ranks)"
RANK=0 WORLD_SIZE=2 MASTER_PORT=29703 timeout 60 "$OUT/harness" nccl & p=$!
RANK=1 WORLD_SIZE=2 MASTER_PORT=29703 timeout 60 "$OUT/harness" nccl; echo "rank 1 exit $?"
wait $p; echo "rank 0 exit $?"
exit $rc
