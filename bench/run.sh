#!/usr/bin/env bash
# make bench-commands: whole commands side by side, timed by hyperfine.
#
# Builds a deterministic corpus (bench/corpus) as packets archives, .debs and
# pacman packages of the same files, then times each workload for packets,
# the floor (zstd -d | tar -x of the same archives) and the peers, in one run,
# on a tmpfs and on a freshly made loop-mounted ext4. Writes a Markdown table
# of medians and ratios to bench/results.md (or $1). Root only: it mounts.
# The commands a workload compares run in rounds, one run of each per round
# (compare), so that a drift of the machine weighs on all of them alike.
#
#   RUNS=5 SLOW_RUNS=3 ONLY="w1 w2 w3 w4 w5 w6 w7 w8 w9 w10" bench/run.sh [OUT]
#
# ONLY picks workloads (all by default); the table then holds just those.
# Nothing is deleted and re-extracted on /: every root lives on a tmpfs this
# script mounts, or on an ext4 made afresh (mkfs) before every run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_dir=$(pwd)
out=$(realpath -m "${1:-bench/results.md}")
runs=${RUNS:-5}
slow_runs=${SLOW_RUNS:-3}

[ "$(id -u)" = 0 ] || { echo "bench/run.sh needs root (it mounts a tmpfs and a loop ext4)" >&2; exit 1; }

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v pacman >/dev/null || need+=(pacman-package-manager)
command -v bsdtar >/dev/null || need+=(libarchive-tools)
command -v zstd >/dev/null || need+=(zstd)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/packets-bench.XXXXXX)
fast=$work/tmpfs      # corpus, archives and tmpfs roots
disk=$work/ext4       # the loop-mounted ext4 of W2
img=$work/ext4.img    # its image, on the host's own filesystem
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	mountpoint -q "$disk" && umount "$disk"
	mountpoint -q "$fast" && umount "$fast"
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$fast" "$disk"
mount -t tmpfs -o size=12g tmpfs "$fast"

say() { printf '==> %s\n' "$*" >&2; }
only=" ${ONLY:-w1 w2 w3 w4 w5 w6 w7 w8 w9 w10} "
want() { [[ $only == *" $1 "* ]]; }

say "build packets and the bench tools"
CGO_ENABLED=0 go build -trimpath -o "$work/packets" ./cmd/packets # as make build: pure Go, static
go build -o "$work/corpus" ./bench/corpus
go build -o "$work/report" ./bench/report
packets=$work/packets

say "generate the corpora"
c=$fast/corpus
"$work/corpus" -out "$c/main" -upgrades 20                    # 200 packages, ~30,000 files, ~250 MB; 20 with a serial 2
"$work/corpus" -out "$c/hooks" -hooks                         # the same 200 packages, each with install/remove hooks
"$work/corpus" -out "$c/small" -prefix s -packages 1000 -files 3000 -mb 6 -binaries 0

say "build the archives: packets, dpkg-deb, pacman"
build_all() { # corpus-dir repo-dir
	local src=$1 repo=$2
	mkdir -p "$repo/packages" "$repo/debs" "$repo/pacman"
	ls "$src/packets" | xargs -P "$(nproc)" -I{} "$packets" build "$src/packets/{}" -o "$repo/packages/{}.tar.zst" >/dev/null
	if [ -d "$src/deb" ]; then
		ls "$src/deb" | xargs -P "$(nproc)" -I{} dpkg-deb --root-owner-group -Zzstd -b "$src/deb/{}" "$repo/debs/{}.deb" >/dev/null
		ls "$src/pacman" | xargs -P "$(nproc)" -I{} sh -c 'cd "$1/pacman/$2" && bsdtar --zstd --uid 0 --gid 0 -cf "$3/pacman/$2.pkg.tar.zst" .PKGINFO opt' _ "$src" {} "$repo"
	fi
}
r=$fast/repos
build_all "$c/main" "$r/main"
build_all "$c/hooks" "$r/hooks"
build_all "$c/small" "$r/small"
"$packets" key generate --out "$work/bench" >/dev/null
for repo in main hooks small; do
	"$packets" repo index "$r/$repo" --key "$work/bench.key" >/dev/null
done

say "serve the repositories on loopback"
declare -A url
for repo in main hooks small; do
	"$packets" repo serve "$r/$repo" --listen 127.0.0.1:0 --url-file "$work/$repo.url" >/dev/null 2>&1 &
	pids+=($!)
done
for repo in main hooks small; do
	for _ in $(seq 100); do [ -s "$work/$repo.url" ] && break; sleep 0.05; done
	url[$repo]=$(cat "$work/$repo.url")
done

# template ROOT REPO STATE: a synced packets root, nothing installed.
template() {
	local root=$1 repo=$2 state=$3
	mkdir -p "$root/etc/packets/keys"
	cp "$work/bench.pub" "$root/etc/packets/keys/bench.pub"
	printf '%s' "$state" >"$root/etc/packets/state.hcl"
	"$packets" --root "$root" sync "${url[$repo]}" >/dev/null
}
# state PREFIX N PIN [UNPINNED_EVERY]: N packages, pinned to PIN except every
# UNPINNED_EVERYth (which may upgrade).
state() {
	local i every=${4:-0}
	for ((i = 0; i < $2; i++)); do
		if [ "$every" -gt 0 ] && [ $((i % every)) = 0 ]; then
			printf 'package "%s%03d" {}\n' "$1" "$i"
		else
			printf 'package "%s%03d" { version = "= %s" }\n' "$1" "$i" "$3"
		fi
	done
}
t=$fast/templates
template "$t/main" main "$(state p 200 1.0)"
template "$t/hooks" hooks "$(state p 200 1.0)"
template "$t/small" small "$(state s 1000 1.0)"

pacman_conf=$work/pacman.conf
printf '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n' >"$pacman_conf"
pacman_in() { # root, then pacman arguments
	local root=$1
	shift
	pacman --root "$root" --dbpath "$root/var/lib/pacman" --cachedir "$root/var/cache/pacman" \
		--hookdir "$root/etc/pacman.d/hooks" --config "$pacman_conf" "$@"
}
export -f pacman_in
export packets pacman_conf
v1() { ls "$1"/*-1.$2; } # the serial-1 archives of a repo dir
main_pkgs=$(v1 "$r/main/packages" tar.zst | tr '\n' ' ')
main_debs=$(v1 "$r/main/debs" deb | tr '\n' ' ')
main_pacs=$(v1 "$r/main/pacman" pkg.tar.zst | tr '\n' ' ')

results=$work/results
mkdir -p "$results"
# compare NAME RUNS [hyperfine options] COMMANDS...: RUNS rounds of one run
# of each command, in the order given, each round exported on its own
# ($results/NAME.N.json) for report to join. One hyperfine call with --runs
# would make all of one command's runs, then all of the next one's: a
# drift of the machine over the minutes a workload takes would then weigh
# on one command and not on the others.
compare() {
	local name=$1 n=$2 i
	shift 2
	for ((i = 1; i <= n; i++)); do
		echo "$name: round $i of $n" >&2
		hyperfine -N --runs 1 --export-json "$results/$name.$i.json" --style none "$@"
	done
}
report() { # name title report-flags...
	local name=$1 title=$2
	shift 2
	"$work/report" -title "$title" "$@" "$results/$name".[0-9]*.json >"$results/$name.md"
	cat "$results/$name.md" >&2
}

# fresh DIR: an empty directory at DIR (on whichever filesystem DIR is).
fresh='rm -rf "$R" && mkdir -p "$R"'
pacman_fresh='rm -rf "$R" && mkdir -p "$R/var/lib/pacman"'
dpkg_fresh='rm -rf "$R" && mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" && touch "$R/var/lib/dpkg/status"'

if want w1; then
say "W1: cold apply of 200 packages on tmpfs"
export R=$fast/root
compare w1 "$runs" \
	--command-name floor --prepare "sh -c '$fresh'" "sh -c 'zstd -dcq $main_pkgs | tar -xi -C \"\$R\"'" \
	--command-name packets --prepare "sh -c 'rm -rf \"\$R\" && cp -a $t/main \"\$R\"'" "$packets --root $R apply --yes" \
	--command-name pacman --prepare "sh -c '$pacman_fresh'" "bash -c 'pacman_in \"\$R\" -U --noconfirm --noprogressbar --noscriptlet $main_pacs'" \
	--command-name dpkg --prepare "sh -c '$dpkg_fresh'" "dpkg --root=$R -i $main_debs" >&2
report w1 "W1: cold apply, 200 packages (30,000 files, 250 MB) from a loopback mirror, tmpfs" -within floor=1.2 -faster pacman=3,dpkg=5
fi

if want w2; then
say "W2: the same on a journaled ext4 (made afresh for every run), durable"
truncate -s 3G "$img"
fresh_ext4="umount -q $disk 2>/dev/null; mkfs.ext4 -q -F $img && mount -o loop $img $disk"
export R=$disk/root
compare w2 "$slow_runs" \
	--command-name 'floor + sync' --prepare "sh -c '$fresh_ext4 && $fresh'" "sh -c 'zstd -dcq $main_pkgs | tar -xi -C \"\$R\" && sync'" \
	--command-name packets --prepare "sh -c '$fresh_ext4 && cp -a $t/main \"\$R\"'" "$packets --root $R apply --yes" \
	--command-name pacman --prepare "sh -c '$fresh_ext4 && $pacman_fresh'" "bash -c 'pacman_in \"\$R\" -U --noconfirm --noprogressbar --noscriptlet $main_pacs'" \
	--command-name dpkg --prepare "sh -c '$fresh_ext4 && $dpkg_fresh'" "dpkg --root=$R -i $main_debs" >&2
umount "$disk"
report w2 "W2: cold apply, 200 packages, journaled ext4 on a loop device, durable" -within 'floor + sync=1.3' -faster pacman=1,dpkg=1
fi

if want w7; then
say "W7: upgrade 20 of 200 installed packages"
export R=$fast/root
installed=$fast/installed-main
rm -rf "$installed" && cp -a "$t/main" "$installed" && "$packets" --root "$installed" apply --yes >/dev/null
state p 200 1.0 10 >"$installed/etc/packets/state.hcl" # every 10th unpinned: the 20 with a serial 2
compare w7 "$runs" \
	--command-name packets --prepare "sh -c 'rm -rf \"\$R\" && cp -a $installed \"\$R\"'" "$packets --root $R apply --yes" \
	--command-name 'cold apply of 200 (W1)' --prepare "sh -c 'rm -rf \"\$R\" && cp -a $t/main \"\$R\"'" "$packets --root $R apply --yes" >&2
report w7 "W7: upgrade 20 of 200 installed packages (a tenth of their files change), beside the cold apply"
fi

if want w10; then
say "W10: 200 packages whose install hooks run"
export R=$fast/root
compare w10 "$runs" \
	--command-name packets --prepare "sh -c 'rm -rf \"\$R\" && cp -a $t/hooks \"\$R\"'" "$packets --root $R apply --yes" \
	--command-name 'without hooks (W1)' --prepare "sh -c 'rm -rf \"\$R\" && cp -a $t/main \"\$R\"'" "$packets --root $R apply --yes" >&2
report w10 "W10: cold apply of 200 packages with install hooks (one sandbox child), beside the same without hooks" -over 'without hooks (W1)=0.05'
fi

if want w3 || want w4; then
say "W3 and W4: 1,000 installed: no-op apply, verify --fast"
small=$fast/small
pk=$small/packets pc=$small/pacman dp=$small/dpkg ap=$small/apt
mkdir -p "$small"
cp -a "$t/small" "$pk"
"$packets" --root "$pk" apply --yes >/dev/null
small_pacs=$(ls "$r/small/pacman"/*.pkg.tar.zst | tr '\n' ' ')
mkdir -p "$pc/var/lib/pacman" && pacman_in "$pc" -U --noconfirm --noprogressbar --noscriptlet $small_pacs >/dev/null 2>&1
repo-add -q "$r/small/pacman/bench.db.tar.gz" $small_pacs >/dev/null 2>&1
printf '\n[bench]\nServer = file://%s\n' "$r/small/pacman" >>"$pacman_conf"
pacman_in "$pc" -Sy >/dev/null 2>&1
mkdir -p "$dp/var/lib/dpkg/info" "$dp/var/lib/dpkg/updates" && touch "$dp/var/lib/dpkg/status"
dpkg --root="$dp" -i "$r/small/debs"/*.deb >/dev/null
(cd "$r/small/debs" && dpkg-scanpackages -m . >Packages 2>/dev/null)
mkdir -p "$ap/etc/apt/apt.conf.d" "$ap/etc/apt/preferences.d" "$ap/state/lists/partial" "$ap/cache/archives/partial"
echo "deb [trusted=yes] file:$r/small/debs ./" >"$ap/etc/apt/sources.list"
apt_opts="-o Dir=$ap -o Dir::State=$ap/state -o Dir::Cache=$ap/cache -o Dir::State::status=$dp/var/lib/dpkg/status -o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0"
apt-get $apt_opts -qq update >/dev/null 2>&1
names=$(state s 1000 1.0 | sed -n 's/^package "\([^"]*\)".*/\1/p' | tr '\n' ' ')
compare w3 20 --warmup 2 \
	--command-name packets "$packets --root $pk apply --yes" \
	--command-name 'pacman -S --needed' "bash -c 'pacman_in $pc -S --noconfirm --noprogressbar --needed $names'" \
	--command-name 'apt-get -s install' "apt-get $apt_opts -s install $names" >&2
report w3 "W3: no-op apply with 1,000 installed" -faster 'pacman -S --needed=1,apt-get -s install=1'
compare w4 20 --warmup 2 \
	--command-name packets "$packets --root $pk verify --fast" \
	--command-name find "find $pk/opt/packets -printf '%s %m %T@\n'" \
	--command-name 'pacman -Qk' "bash -c 'pacman_in $pc -Qk >/dev/null'" >&2
report w4 "W4: verify --fast (stat-based) of 1,000 installed packages (3,000 files)" -within find=1.1 -faster 'pacman -Qk=1'
fi

if want w5; then
	say "W5: plan against a 63,000-package index shaped like Debian's, beside libsolv's testsolv"
	command -v testsolv >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsolv-tools >/dev/null; }
	w5=$fast/w5
	mkdir -p "$w5"
	# 63,000 packages, about 2.5 dependencies each; the state declares every 63rd (1,000).
	"$work/corpus" -out "$c/w5" -prefix d -packages 63000 -files 63000 -mb 6 -binaries 0 -deps 2.5 -formats packets \
		-state-every 63 -state "$w5/state.hcl" -testsolv "$w5/case.t"
	mkdir -p "$r/w5/packages"
	ls "$c/w5/packets" | xargs -P "$(nproc)" -n 500 sh -c 'for d; do "$0" build "'"$c/w5/packets"'/$d" -o "'"$r/w5/packages"'/$d.tar.zst" >/dev/null || exit 1; done' "$packets"
	rm -rf "$c/w5"
	"$packets" repo index "$r/w5" --key "$work/bench.key" >/dev/null
	"$packets" repo serve "$r/w5" --listen 127.0.0.1:0 --url-file "$work/w5.url" >/dev/null 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$work/w5.url" ] && break; sleep 0.05; done
	mkdir -p "$w5/root/etc/packets/keys" && cp "$work/bench.pub" "$w5/root/etc/packets/keys/"
	"$packets" --root "$w5/root" sync "$(cat "$work/w5.url")" >/dev/null
	# Both must find the same transaction: the same number of installs.
	ours=$("$packets" --root "$w5/root" plan -f "$w5/state.hcl" --json | grep -c '"action": "install"')
	theirs=$(testsolv -r "$w5/case.t" | grep -c '^install ')
	compare w5 "$runs" --warmup 1 \
		--command-name packets "$packets --root $w5/root plan -f $w5/state.hcl" \
		--command-name 'testsolv (libsolv)' "testsolv -r $w5/case.t" >&2
	report w5 "W5: plan 1,000 declared packages against a 63,000-package index (about 2.5 dependencies each), beside libsolv's testsolv on the same problem (packets: $ours installs, libsolv: $theirs)" -faster 'testsolv (libsolv)=1'
fi

if want w6; then
say "W6: repo index of 2,000 and 20,000 packages; sync of the 20,000"
for n in 2000 20000; do
	"$work/corpus" -out "$c/idx$n" -prefix i -packages $n -files $n -mb $((n / 1000)) -binaries 0
	mkdir -p "$r/idx$n/packages"
	ls "$c/idx$n/packets" | xargs -P "$(nproc)" -n 200 sh -c 'for d; do "$0" build "'"$c/idx$n/packets"'/$d" -o "'"$r/idx$n/packages"'/$d.tar.zst" >/dev/null || exit 1; done' "$packets"
	rm -rf "$c/idx$n"
done
cold_index='sh -c "rm -f $R/index-*.db $R/release.toml $R/release.toml.minisig"'
compare w6 "$slow_runs" \
	--command-name 'packets (20,000)' --prepare "env R=$r/idx20000 $cold_index" "$packets repo index $r/idx20000 --key $work/bench.key" \
	--command-name 'index 2,000' --prepare "env R=$r/idx2000 $cold_index" "$packets repo index $r/idx2000 --key $work/bench.key" \
	--command-name 're-index 20,000 unchanged' --prepare true "$packets repo index $r/idx20000 --key $work/bench.key" >&2
"$packets" repo serve "$r/idx20000" --listen 127.0.0.1:0 --url-file "$work/idx.url" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/idx.url" ] && break; sleep 0.05; done
export R=$fast/syncroot
compare w6s "$runs" \
	--command-name 'packets sync (20,000)' --prepare "sh -c 'rm -rf \"\$R\" && mkdir -p \"\$R/etc/packets/keys\" && cp $work/bench.pub \"\$R/etc/packets/keys/\"'" \
	"$packets --root $R sync $(cat "$work/idx.url")" >&2
report w6 "W6: repo index of 20,000 packages (cold), of 2,000, and re-index unchanged" -subject 'packets (20,000)'
report w6s "W6: sync of the 20,000-package index into a fresh root, from a loopback mirror" -subject 'packets sync (20,000)'
fi

if want w8; then
	say "W8: LAN transfer across veth pairs in network namespaces, unshaped and shaped to 1 Gbit/s with tc"
	# TMPDIR on the tmpfs, as every workload: the hosts' caches (and the
	# fsync that makes a fetched blob durable) are then not on the host's
	# own disk, whose speed is not the link's.
	mkdir -p "$fast/tmp"
	TMPDIR=$fast/tmp go test -tags netns -count=1 -run '^$' -bench NetnsTransfer -benchtime 1x ./peer >"$results/w8.txt"
	cat "$results/w8.txt" >&2
	{
		echo "### W8: a 64 MiB blob from a LAN peer and from a plain HTTP mirror over the same link (veth pairs, a bridge, tc tbf)"
		echo
		echo "| link | peer | plain HTTP | peer ÷ HTTP | peer ÷ line rate | discovery | fallback to the mirror |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		awk '/^BenchmarkNetnsTransfer\// {
			split($1, n, "/"); sub(/-[0-9]+$/, "", n[2]); delete m
			for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i
			line = ("peer/line-rate" in m) ? sprintf("%.0f%%", 100 * m["peer/line-rate"]) : "—"
			printf "| %s | %.0f MB/s | %.0f MB/s | %.2f | %s | %.0f µs | %.0f ms |\n", n[2], m["peer-MB/s"], m["mirror-MB/s"], m["peer/mirror"], line, m["discovery-µs"], m["fallback-ms"]
		}' "$results/w8.txt"
		echo
		echo "Targets (1 Gbit/s): ≥ 90% of line rate; discovery ≤ 50 ms; fallback to the mirror ≤ 1 s."
		echo
	} >"$results/w8.md"
	cat "$results/w8.md" >&2
fi

if want w9; then
	say "W9: four hosts apply the same state, peering off, rolling, simultaneous"
	mkdir -p "$fast/tmp"
	TMPDIR=$fast/tmp go test -tags netns -count=1 -run '^$' -bench LANFleet -benchtime 1x ./e2e >"$results/w9.txt"
	cat "$results/w9.txt" >&2
	{
		echo "### W9: a mirror and four hosts in network namespaces apply the same state (the real binary)"
		echo
		echo "| peering | copies of the archives the mirror served |"
		echo "|---|---:|"
		awk '/^BenchmarkLANFleet\// {
			split($1, n, "/"); sub(/-[0-9]+$/, "", n[2])
			for (i = 3; i < NF; i += 2) if ($(i + 1) == "mirror-copies") printf "| %s | %.2f |\n", n[2], $i
		}' "$results/w9.txt"
		echo
		echo "Target: ≤ 1.3 copies with peering on."
		echo
	} >"$results/w9.md"
	cat "$results/w9.md" >&2
fi

{
	echo "# packets benchmark results"
	echo
	echo "Measured by \`make bench-commands\` (bench/run.sh) on $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d);"
	echo "hyperfine $(hyperfine --version | cut -d' ' -f2), pacman $(pacman -V 2>/dev/null | sed -n 's/.*Pacman v\([0-9.]*\).*/\1/p' | head -1), dpkg $(dpkg-query -W -f '${Version}' dpkg), apt $(dpkg-query -W -f '${Version}' apt)."
	echo "Medians of $runs runs ($slow_runs on ext4), made in rounds of one run of each command; ratios are each command's median over packets'."
	echo "Corpus: bench/corpus, 200 packages, $(find "$c/main/packets" -path '*-1/*' -type f -printf '%s\n' | awk '{s += $1; n++} END {printf "%d files, %.0f MB", n, s / 1e6}'); the same files as .deb (dpkg-deb -Zzstd) and pacman packages."
	echo
	for w in w1 w2 w3 w4 w5 w6 w6s w7 w8 w9 w10; do
		if [ -f "$results/$w.md" ]; then cat "$results/$w.md"; fi
	done
} >"$out"
say "wrote $out"
