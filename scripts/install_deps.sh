#!/usr/bin/env bash
# Installs the Debian 12 packages healthgym needs to build and test; installs
# nothing when they are all present, so it is safe to run every time.
set -euo pipefail

packages=(
  build-essential cmake
  libtorch-dev           # LibTorch 1.13 (CPU)
  libopenblas0-pthread   # without it LibTorch falls back to the reference BLAS (14x slower)
  libcli11-dev nlohmann-json3-dev zlib1g-dev
  libgloo-dev            # headers for c10d's Gloo backend (distributed training)
  libgtest-dev libgmock-dev
  clang-format           # style check in scripts/test.sh
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
