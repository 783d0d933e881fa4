#!/bin/sh
# An emulated aarch64 Debian "board" reachable over SSH on 127.0.0.1, for the remote-device tests.
#   sh tests/board/board.sh up   DIR   # best effort: on failure writes DIR/unavailable with the reason
#   sh tests/board/board.sh down DIR   # stops sshd (by its PidFile) and unmounts proc
# Needs root (apt, mount, chroot). The root filesystem and wheels are cached in DIR between runs.
set -u
ACTION=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
ROOTFS=$DIR/rootfs
PY=${PYTHON:-python3}

fail() { echo "$*" > "$DIR/unavailable"; echo "board: unavailable: $*" >&2; exit 0; }

stop_sshd() {
    if [ -f "$DIR/sshd.pid" ]; then kill "$(cat "$DIR/sshd.pid")" 2>/dev/null; rm -f "$DIR/sshd.pid"; fi
}

down() {
    stop_sshd
    if mountpoint -q "$ROOTFS/proc" 2>/dev/null; then umount "$ROOTFS/proc"; fi
}

if [ "$ACTION" = down ]; then down; exit 0; fi
rm -f "$DIR/unavailable" "$DIR/ssh_config"
[ "$(id -u)" = 0 ] || fail "setting up the emulated board needs root"

need=""
for pkg in qemu-user-static binfmt-support mmdebstrap openssh-server openssh-client; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >"$DIR/apt.log" 2>&1 || {
        apt-get update -q >>"$DIR/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >>"$DIR/apt.log" 2>&1
    } || fail "could not install$need (see $DIR/apt.log)"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>"$DIR/mount.log" \
        || fail "binfmt_misc cannot be mounted: $(cat "$DIR/mount.log")"
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "qemu-aarch64 is not registered with binfmt_misc"

# grep and sed: the stand-in adb runs a phone's shell commands here (a phone's toybox has both)
if [ ! -x "$ROOTFS/usr/bin/python3" ] || [ ! -x "$ROOTFS/bin/grep" ] || [ ! -x "$ROOTFS/bin/sed" ]; then
    down
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
    mmdebstrap --mode=root --arch=arm64 --variant=extract \
        --include=python3,dash,bash,coreutils,grep,sed,libc-bin,libstdc++6,openssh-sftp-server \
        bookworm "$ROOTFS" "${mirror:-http://deb.debian.org/debian}" >"$DIR/mmdebstrap.log" 2>&1 \
        || fail "mmdebstrap failed (see $DIR/mmdebstrap.log)"
    grep -q '^root:' "$ROOTFS/etc/passwd" 2>/dev/null || echo 'root:x:0:0:root:/root:/bin/sh' >> "$ROOTFS/etc/passwd"
    grep -q '^root:' "$ROOTFS/etc/group" 2>/dev/null || echo 'root:x:0:' >> "$ROOTFS/etc/group"
    mkdir -p "$ROOTFS/root" "$ROOTFS/tmp" && chmod 1777 "$ROOTFS/tmp"
fi
SITE=$ROOTFS/usr/local/lib/python3.11/dist-packages
if [ ! -d "$SITE/ai_edge_litert" ]; then
    # aarch64 wheels fetched and unpacked by the host's pip, at native speed
    "$PY" -m pip install -q --no-compile --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
        --target "$SITE" "ai-edge-litert==2.3.0" "numpy>=2,<3" "pillow" >"$DIR/pip.log" 2>&1 \
        || fail "could not install aarch64 wheels into the board (see $DIR/pip.log)"
fi
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc" || fail "cannot mount proc in the board"
# never bind /sys: LiteRT segfaults under qemu when it reads the host's x86 CPU information there

[ -f "$DIR/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/host_key"
[ -f "$DIR/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/client_key"
cp "$DIR/client_key.pub" "$DIR/authorized_keys"
cat > "$DIR/enter.sh" <<WRAP
#!/bin/sh
export QEMU_CPU=cortex-a72
exec /usr/sbin/chroot "$ROOTFS" /usr/bin/env HOME=/root /bin/sh -c "cd /root; \$SSH_ORIGINAL_COMMAND"
WRAP
chmod +x "$DIR/enter.sh"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$DIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
ForceCommand $DIR/enter.sh
CONF
stop_sshd
mkdir -p /run/sshd
/usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log" || fail "sshd did not start (see $DIR/sshd.log)"
cat > "$DIR/ssh_config" <<CONF
Host board
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $DIR/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking accept-new
    LogLevel ERROR
Host *
    IdentityFile $DIR/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking accept-new
    LogLevel ERROR
CONF
i=0
until ssh -F "$DIR/ssh_config" -o BatchMode=yes board uname -m 2>"$DIR/ssh.log" | grep -q aarch64; do
    i=$((i + 1)); [ $i -lt 20 ] || fail "the board does not answer over ssh (see $DIR/ssh.log)"
    sleep 0.5
done
echo "board: aarch64 Debian on ssh://root@127.0.0.1:$PORT (config $DIR/ssh_config)" >&2
