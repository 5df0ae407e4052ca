#!/usr/bin/env bash
# Power loss on a real file system. Runs a writer on a loop-mounted ext4
# image, SIGKILLs it, copies the image (which holds only what ext4 wrote to
# the device, not its page cache), mounts the copy and checks that every
# acknowledged record is there. Root only.
#
# usage: power_loss.sh WRITER ITERATIONS
#   WRITER is the power_loss test binary; it runs as the writer with
#   TASTYPOD_POWER_WRITE=DIR and as the checker with TASTYPOD_POWER_CHECK=DIR.
set -euo pipefail
writer=$1
iterations=${2:-50}

work=$(mktemp -d)
img=$work/fs.img
copy=$work/copy.img
mnt=$work/mnt
cmnt=$work/cmnt
mkdir -p "$mnt" "$cmnt"
cleanup() {
    umount "$cmnt" 2>/dev/null || true
    umount "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

truncate -s 128M "$img"
mkfs.ext4 -q -F "$img"
mount -o loop "$img" "$mnt"
: > "$work/acks"

for i in $(seq 1 "$iterations"); do
    TASTYPOD_POWER_WRITE="$mnt/store.pod" "$writer" power_writer --exact --ignored --nocapture --test-threads=1 \
        > "$work/out" 2>/dev/null &
    pid=$!
    sleep "0.$(( RANDOM % 25 + 5 ))"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    grep -o 'ack [^ ]* [0-9]*' "$work/out" >> "$work/acks" || true
    # The power goes out: keep only what reached the device.
    cp --sparse=always "$img" "$copy"
    if ! mount -o loop "$copy" "$cmnt"; then
        echo "iteration $i: the copied file system does not mount" >&2
        exit 1
    fi
    if ! TASTYPOD_POWER_CHECK="$cmnt/store.pod" TASTYPOD_POWER_ACKS="$work/acks" \
        "$writer" power_checker --exact --ignored --nocapture --test-threads=1 > "$work/check" 2>&1; then
        echo "iteration $i: acknowledged data lost after power loss" >&2
        cat "$work/check" >&2
        exit 1
    fi
    umount "$cmnt"
done
echo "power loss: $iterations iterations, $(wc -l < "$work/acks") acknowledgements checked"
