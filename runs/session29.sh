#!/usr/bin/env bash
# What session 29 queued behind runs/ctx-big: runs/ctx-ks, the judge, then runs/ctx-ftw.
set -euo pipefail
cd "$(dirname "$0")/.."
while pgrep -f "run-dir runs/ctx-big" > /dev/null; do sleep 30; done
runs/ctx-ks/run.sh >> runs/ctx-ks/train.log 2>&1
runs/ctx-big/judge.sh >> runs/ctx-big/judge.log 2>&1
runs/ctx-ftw/run.sh >> runs/ctx-ftw/train.log 2>&1
