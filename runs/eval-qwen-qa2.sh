#!/usr/bin/env bash
# The own-question QA adapter (runs/qwen-qa2) as adapters/qwen2.5-0.5b/qa2.safetensors, on issue
# 15's acceptance sets (see runs/eval-qwen-run.sh).
exec "$(dirname "$0")/eval-qwen-run.sh" qwen-qa2 qa2
