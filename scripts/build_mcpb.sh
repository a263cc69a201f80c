#!/usr/bin/env sh
# Builds the Claude Desktop bundle: target/mcpb/ategnatos-<version>.mcpb, a zip
# of mcpb/manifest.json and this machine's release binary as server/ategnatos.
# Open the file with Claude Desktop (or drag it onto Settings → Extensions) to
# install; Desktop asks for the studio folder and the optional keys.
# A bundle holds one platform's binary: build it on the platform it is for.
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
manifest_version=$(sed -n 's/^  "version": "\(.*\)",/\1/p' mcpb/manifest.json | head -n 1)
if [ "$version" != "$manifest_version" ]; then
  echo "mcpb/manifest.json says version $manifest_version, Cargo.toml $version: make them the same" >&2
  exit 1
fi
cargo build --release --locked
exe=""
case "$(uname -s)" in MINGW*|MSYS*|CYGWIN*) exe=".exe" ;; esac
stage=target/mcpb/stage
rm -rf "$stage"
mkdir -p "$stage/server"
cp mcpb/manifest.json "$stage/manifest.json"
cp "target/release/ategnatos$exe" "$stage/server/ategnatos$exe"
out="target/mcpb/ategnatos-$version.mcpb"
rm -f "$out"
if command -v mcpb >/dev/null 2>&1; then
  mcpb pack "$stage" "$out"
else
  # A .mcpb is a zip; Python's zipfile keeps the binary's executable bit.
  (cd "$stage" && python3 -m zipfile -c "../$(basename "$out")" manifest.json server)
fi
echo "$out"
