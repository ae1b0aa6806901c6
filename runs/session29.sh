#!/usr/bin/env bash
# What session 29 ran behind runs/ctx-big: runs/ctx-ks (stopped by its patience), the judge
# (runs/ctx-big/judge.sh), then runs/ctx-ks2; runs/ctx-ftw is left for a later session.
set -euo pipefail
cd "$(dirname "$0")/.."
while pgrep -f "run-dir runs/ctx-big" > /dev/null; do sleep 30; done
runs/ctx-ks/run.sh >> runs/ctx-ks/train.log 2>&1
runs/ctx-big/judge.sh >> runs/ctx-big/judge.log 2>&1
runs/ctx-ks2/run.sh >> runs/ctx-ks2/train.log 2>&1
