#!/usr/bin/env bash
# Fails when the committed gen/ differs from a fresh generation, or when buf lint fails.
set -euo pipefail
cd "$(dirname "$0")/.."
go tool buf lint
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r gen "$tmp/committed"
go tool buf generate
if ! diff -r "$tmp/committed" gen >/dev/null; then
  diff -r "$tmp/committed" gen | head -40
  rm -rf gen && cp -r "$tmp/committed" gen
  echo "gen/ is stale: run 'make proto' and commit the result" >&2
  exit 1
fi
echo "proto: lint ok, gen/ up to date"
