#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and the pinned local plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
export PATH="$PWD/.tools/bin:$PATH"
(cd proto && buf lint && buf generate)
