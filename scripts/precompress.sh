#!/usr/bin/env bash
# Precompresses the page's wasm, JavaScript and CSS once, at build time: trunk runs this as
# its post_build hook (Trunk.toml) in the staging directory it then moves to dist/. Each
# file gets a brotli (best quality) and a gzip (-9) copy beside it, `name.br` and
# `name.gz`, which the server sends as they are to a browser that accepts them
# (server/src/routes/page/), so no request costs a compression.
#
# Debian's `brotli` (Google's reference encoder) and `gzip`, rather than a Rust step: two
# commands with no build of their own, no network, and the best ratio either format
# offers. index.html is left alone: at about 1 KB it fits in one packet either way.
set -euo pipefail

dir="${TRUNK_STAGING_DIR:?run by trunk as a post_build hook (TRUNK_STAGING_DIR is not set)}"
command -v brotli >/dev/null \
  || { echo "precompress: brotli is not installed: run \`make packages\` (Debian package brotli)" >&2; exit 1; }

find "$dir" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' \) -print0 \
  | while IFS= read -r -d '' file; do
      brotli --best --force --keep -- "$file"
      # -n: no name or time stamp inside, so the same input gives the same bytes.
      gzip -9 --force --keep --no-name -- "$file"
    done
