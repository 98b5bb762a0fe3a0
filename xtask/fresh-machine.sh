#!/bin/bash
# Checks that `cargo xtask test` does its own set-up on a fresh Debian 12 machine: debootstraps
# bookworm into DIR (default /work/fresh-machine), gives it only what the fresh machine has
# (build-essential, git, ca-certificates, python3, curl, and the rustup toolchain), mounts what a
# real machine has, clones this repository into it and runs the command there as root, with a
# clean environment. Output: DIR/test.log. Run as root on a Debian 12 x86_64 host;
# no Docker needed. Everything is unmounted on exit; DIR/root stays, and a second run reuses it
# (its clone brought to this repository's HEAD; `cargo xtask test` is idempotent). No policy-rc.d: the packaged servers start
# on their default ports while apt installs them, and the project's set-up stops them.
#
#   bash xtask/fresh-machine.sh [DIR]
set -euo pipefail

DIR=$(realpath -m "${1:-/work/fresh-machine}")
ROOT=$DIR/root
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)   # the clone to test
MIRROR=http://deb.debian.org/debian
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

# Ends what still runs in the root (servers the set-up or the tests left), by pid, then
# unmounts everything under it.
cleanup() {
    for p in /proc/[0-9]*; do
        if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ]; then kill -9 "${p#/proc/}" || true; fi
    done
    sleep 1
    mounted() { findmnt -rno TARGET | awk -v r="$ROOT" '$0 == r || index($0, r "/") == 1'; }
    mounted | sort -r | xargs -r -n1 umount
    if mounted | grep -q .; then echo "still mounted under $ROOT" >&2; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# 1. Debian 12 with only what the fresh machine has (the rest is the project's to install).
command -v debootstrap >/dev/null || apt-get install -y debootstrap
mkdir -p "$DIR"
[ -x "$ROOT/usr/bin/apt-get" ] ||
    debootstrap --include=build-essential,git,ca-certificates,python3,curl bookworm "$ROOT" "$MIRROR"

# 2. apt as on the host: bookworm, bookworm-updates and bookworm-security (where rustc-web and
#    LLVM 22 come from), without the Valid-Until check the host's mirror needs. Name resolution
#    as on a real machine (the installer puts the host name in /etc/hosts).
rm -f "$ROOT/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/"
[ ! -f /etc/apt/apt.conf.d/99artifact-registry ] ||
    cp /etc/apt/apt.conf.d/99artifact-registry "$ROOT/etc/apt/apt.conf.d/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
grep -qw "$(hostname)" "$ROOT/etc/hosts" || echo "127.0.1.1	$(hostname)" >>"$ROOT/etc/hosts"
# This workplace's egress to the registries goes through a TLS proxy whose CA every machine of it
# trusts (in the system store, and for pip in /etc/pip.conf): the same in the root.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null
fi
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$ROOT/etc/pip.conf"

# 3. The root is a mount point, as / is on a real machine (`unshare --mount`, which the tests
#    use, makes / private and fails with EINVAL on a plain directory).
mount --bind "$ROOT" "$ROOT"

# 4. The rustup toolchain (cargo/rustc 1.95): the host's ~/.rustup and ~/.cargo/bin under
#    overlays, so the host's stay read-only while the set-up can write its own (rustup toolchain
#    link, cargo install bpf-linker). What the project's set-up once added on the host (the
#    debian-bpf link, bpf-linker) is hidden, as a fresh machine has neither. ~/.cargo is the
#    root's own and empty, so crates come from crates.io.
new=$([ -d "$DIR/overlay" ] || echo yes)
for d in rustup cargo-bin; do
    mkdir -p "$DIR/overlay/$d/upper" "$DIR/overlay/$d/work"
done
mkdir -p "$ROOT/root/.rustup" "$ROOT/root/.cargo/bin"
mount -t overlay overlay -o "lowerdir=/root/.rustup,upperdir=$DIR/overlay/rustup/upper,workdir=$DIR/overlay/rustup/work" "$ROOT/root/.rustup"
mount -t overlay overlay -o "lowerdir=/root/.cargo/bin,upperdir=$DIR/overlay/cargo-bin/upper,workdir=$DIR/overlay/cargo-bin/work" "$ROOT/root/.cargo/bin"
if [ "$new" = yes ]; then
    rm -f "$ROOT/root/.rustup/toolchains/debian-bpf" "$ROOT/root/.cargo/bin/bpf-linker"
fi

# 5. The file systems of a real machine.
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount -t tracefs tracefs "$ROOT/sys/kernel/tracing"
grep -qw debugfs /proc/filesystems && mount -t debugfs debugfs "$ROOT/sys/kernel/debug"
mount -t bpf bpf "$ROOT/sys/fs/bpf"
mount -t cgroup2 cgroup2 "$ROOT/sys/fs/cgroup"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"   # with /dev/pts, /dev/shm
mount -t tmpfs tmpfs "$ROOT/run"

# 6. A clone of the repository, and the test command as root with a clean environment.
if [ -d "$ROOT/root/scalpels" ]; then
    git -C "$ROOT/root/scalpels" fetch -q "$REPO" HEAD
    git -C "$ROOT/root/scalpels" reset -q --hard FETCH_HEAD
else
    git clone -q "$REPO" "$ROOT/root/scalpels"
fi
echo "commit: $(git -C "$ROOT/root/scalpels" rev-parse HEAD)" | tee "$DIR/test.log"
status=0
time chroot "$ROOT" /usr/bin/env -i HOME=/root \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb \
    /bin/bash -c 'cd /root/scalpels && cargo xtask test' </dev/null 2>&1 |
    tee -a "$DIR/test.log" || status=$?
echo "cargo xtask test: exit $status" | tee -a "$DIR/test.log"
exit "$status"
