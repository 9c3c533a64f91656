#!/usr/bin/env bash
# Headless Chromium for the end-to-end browser tests, from Debian's packages.
# Playwright drives this system browser: its own browser download is not used.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${LIVEREC_CHROMIUM:-}" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "Chromium is missing and I am not root: install the 'chromium' package" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing Chromium (Debian package) for the browser tests ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
