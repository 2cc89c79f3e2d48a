#!/usr/bin/env bash
# The cgroup-enforced sandbox limits, proven in a VM: these machines have a
# hybrid cgroup layout (memory and pids on v1), so the hub can only say
# "limits not enforced" on the host. Here Debian's kernel boots under QEMU
# (software emulation) with a pure cgroup v2 hierarchy, the host's root shared
# read-only over 9p and entered with switch_root, and the hub runs as root in a
# cgroup delegated to it by hand, as systemd's Delegate=yes would. guest.py
# then drives the hub over HTTP and prints one `CGVM ok|FAIL` line per check.
#
# Needs root and qemu-system-x86 (scripts/test installs it). The kernel and
# busybox-static packages are downloaded with apt, not installed, and cached.
# Usage: tests/cgroup-vm/run.sh path/to/mcp-hub path/to/mcp-fixture
set -uo pipefail

HUB=$(realpath "$1")
FIXTURE=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${MCP_HUB_E2E_CACHE:-/var/cache/mcp-hub-test}/cgroup-vm
# Loaded in this order from the kernel package: virtio PCI, then 9p over virtio.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p"
# Whole-run limit: a hung guest must fail, not stall CI.
LIMIT=${MCP_HUB_CGVM_TIMEOUT:-300}

die() { echo "cgroup-vm: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (qemu shares the host's root read-only over 9p)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio is missing"

mkdir -p "$CACHE"
# The kernel the linux-image-amd64 metapackage points at, and a static busybox.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { apt-get update -qq && kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 with apt"
KDIR=$CACHE/$kpkg
if [ ! -d "$KDIR/boot" ]; then
  (cd "$CACHE" && rm -f ./*.deb && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
    { apt-get update -qq && (cd "$CACHE" && apt-get download -q "$kpkg" >/dev/null); } ||
    die "apt-get download $kpkg"
  rm -rf "$KDIR.tmp" && dpkg-deb -x "$CACHE"/"$kpkg"_*.deb "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR" || die "unpack $kpkg"
  rm -f "$CACHE"/*.deb
fi
BB=$CACHE/busybox-static
if [ ! -x "$BB/bin/busybox" ]; then
  (cd "$CACHE" && apt-get download -q busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static"
  rm -rf "$BB.tmp" && dpkg-deb -x "$CACHE"/busybox-static_*.deb "$BB.tmp" && mv "$BB.tmp" "$BB" || die "unpack busybox-static"
  rm -f "$CACHE"/*.deb
fi
VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$VMLINUZ" ] || die "no vmlinuz in $kpkg"

# The initramfs: busybox, the modules, and an /init that mounts the host's root
# and switch_roots into it to run guest.py.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
I=$WORK/initramfs
mkdir -p "$I"/bin "$I"/modules "$I"/host "$I"/proc "$I"/sys "$I"/dev
cp "$BB/bin/busybox" "$I/bin/"
for a in sh mount insmod mkdir ip switch_root echo cat; do ln -s busybox "$I/bin/$a"; done
for m in $MODULES; do
  f=$(find "$KDIR/lib/modules" -name "$m.ko*" | head -1)
  [ -n "$f" ] || die "module $m is not in $kpkg"
  case "$f" in
    *.ko) cp "$f" "$I/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$I/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$I/modules/$m.ko" ;;
    *) die "module $f: unknown compression" ;;
  esac
done
cat >"$I/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $MODULES; do insmod /modules/\$m.ko || echo "CGVM FAIL insmod \$m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || echo "CGVM FAIL mount the host root over 9p"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t cgroup2 none /host/sys/fs/cgroup
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
ip link set lo up
# switch_root, not chroot: a chrooted process may not create user namespaces.
exec switch_root /host /bin/sh -c 'python3 $HERE/guest.py $HUB $FIXTURE; echo o > /proc/sysrq-trigger; sleep 60'
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1 >"$WORK/initrd.gz") || die "cpio"

echo "cgroup-vm: booting $kpkg under qemu (TCG) with the host's root over 9p"
start=$(date +%s)
OUT=$WORK/console.log
# TCG, not KVM: a KVM guest hangs at boot on these machines.
timeout "$LIMIT" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot -nic none \
  -kernel "$VMLINUZ" -initrd "$WORK/initrd.gz" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on \
  -append "console=ttyS0 quiet panic=-1" </dev/null >"$OUT" 2>&1
rc=$?
secs=$(($(date +%s) - start))
tr -d '\r' <"$OUT" | grep '^CGVM' | sed 's/^CGVM //'
passed=$(tr -d '\r' <"$OUT" | grep -c '^CGVM ok ')
failed=$(tr -d '\r' <"$OUT" | grep -c '^CGVM FAIL')
if ! tr -d '\r' <"$OUT" | grep -q '^CGVM DONE'; then
  echo "cgroup-vm: the guest did not finish (qemu exit $rc after ${secs}s); console:"
  tr -d '\r' <"$OUT" | tail -40
  failed=$((failed + 1))
fi
echo "cgroup-vm: $passed passed, $failed failed (${secs}s)"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
