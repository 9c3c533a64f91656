#!/usr/bin/env bash
# The page's browser libraries, from the npm registry at the versions of web/assets'
# lockfile, copied into web/static/vendor (gitignored) so the app serves them itself.
# Without them the page still works, minus the operations charts.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=web/assets
VENDOR=web/static/vendor
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: install Node.js 20+ to build the page's charts and API docs assets" >&2
  exit 1
fi
# --ignore-scripts: the packages ship ready-made files; no install hook needs to run.
(cd "$ASSETS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
mods="$ASSETS/node_modules"
rm -rf "$VENDOR.tmp"
mkdir -p "$VENDOR.tmp"
cp "$mods/uplot/dist/uPlot.iife.min.js" "$mods/uplot/dist/uPlot.min.css" "$VENDOR.tmp/"
cp "$mods/uplot/LICENSE" "$VENDOR.tmp/uPlot.LICENSE"
cp "$mods/swagger-ui-dist/swagger-ui-bundle.js" "$mods/swagger-ui-dist/swagger-ui.css" "$VENDOR.tmp/"
cp "$mods/swagger-ui-dist/LICENSE" "$VENDOR.tmp/swagger-ui.LICENSE"
cp "$mods/swagger-ui-dist/NOTICE" "$VENDOR.tmp/swagger-ui.NOTICE"
# The files name source maps that are not copied; drop those comments so no tool asks.
sed -i '/sourceMappingURL=/d' "$VENDOR.tmp/swagger-ui-bundle.js" "$VENDOR.tmp/swagger-ui.css"
# Swap in whole, so a failed build never leaves a half-filled folder that looks complete.
rm -rf "$VENDOR"
mv "$VENDOR.tmp" "$VENDOR"
touch "$VENDOR/.built"
echo "assets: $(ls "$VENDOR" | tr '\n' ' ')"
