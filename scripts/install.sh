#!/usr/bin/env bash
# Installs everything, builds, and runs the main job on wan-mini (scripts/main_job.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
"$root/scripts/main_job.sh"
