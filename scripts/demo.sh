#!/usr/bin/env bash
# make demo: packets' main job, end to end, in a throw-away directory.
# Builds the example packages, indexes and signs them, serves them on
# loopback, syncs, and applies examples/state.hcl into a fresh root; then
# edits the state (an install, a remove, an upgrade) and applies again.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=$(realpath "${1:-bin/packets}")
work=$(mktemp -d "${TMPDIR:-/tmp}/packets-demo.XXXXXX")
root=$work/root repo=$work/repo
server=

cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\e[1m' off=$'\e[0m'; else bold= off=; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
run() { printf '$ packets %s\n' "$*"; "$packets" "$@"; }

step "Build the example packages"
mkdir -p "$repo/packages"
for src in examples/packages/*/; do
	run build "$src" -o "$repo/packages/$(basename "$src").tar.zst"
done

step "Make a signing key, index and sign the repository"
run key generate --out "$work/demo"
run repo index "$repo" --key "$work/demo.key"

step "Serve the repository on loopback"
"$packets" repo serve "$repo" --listen 127.0.0.1:0 --url-file "$work/url" &
server=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.05; done
[ -s "$work/url" ] || { echo "repo serve did not start" >&2; exit 1; }
url=$(cat "$work/url")

step "Trust the key, sync the catalogue"
mkdir -p "$root/etc/packets/keys"
cp "$work/demo.pub" "$root/etc/packets/keys/demo.pub"
cp examples/state.hcl "$root/etc/packets/state.hcl"
run --root "$root" sync "$url"
run --root "$root" search hello

step "Plan and apply examples/state.hcl into $root"
run --root "$root" plan
run --root "$root" apply --yes
run --root "$root" list
printf '$ %s\n' "$root/usr/bin/hello packets"
"$root/usr/bin/hello" packets
printf '$ cat %s\n' "$root/opt/packets/motd/motd.txt"
cat "$root/opt/packets/motd/motd.txt"

step "Edit the state: install tree-lite, remove motd, lift hello's pin (an upgrade)"
run --root "$root" install --no-apply tree-lite
run --root "$root" remove --no-apply motd
run --root "$root" install --no-apply 'hello@>= 1.1'
run --root "$root" apply --yes
run --root "$root" list
run --root "$root" owns /usr/bin/hello
run --root "$root" verify

step "Apply again: nothing to do"
run --root "$root" apply --yes
