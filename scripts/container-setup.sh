#!/usr/bin/env bash
# Prepare buildah/podman so container images can be built and run without a Docker engine
# or registry access (see /work/shared/containers/README.md for why each flag is needed).
#
#   bash scripts/container-setup.sh          # idempotent; prints `export ...` lines on stdout
#   eval "$(bash scripts/container-setup.sh)" # use the private image store in this shell
#   bash scripts/container-setup.sh clean    # drop the image store (keeps the cached base tar)
#
# Steps: 1. apt-install the tools if missing; 2. write a private storage.conf/containers.conf
# under $MLPACK_CONTAINERS_DIR; 3. build a Debian bookworm + python3/pip/venv rootfs with
# mmdebstrap once (cached tar) and tag it docker.io/library/python:3.11-slim, the stand-in
# for the real image, so unmodified Dockerfiles build with `--pull=never`.
# The same lines are written to $DIR/env.sh. Progress goes to $DIR/setup.log, one summary
# line to stderr. Exit code 77 means the tools cannot be installed here (not root, no sudo,
# no apt), so callers can skip rather than fail.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then
  DIR=${MLPACK_CONTAINERS_DIR:-/tmp/mlpack-containers}
else  # rootless podman needs a store its user owns
  DIR=${MLPACK_CONTAINERS_DIR:-/tmp/mlpack-containers-$(id -u)}
fi
BASE_TAR=${MLPACK_BASE_TAR:-$DIR/base-bookworm-py311.tar}
BASE_IMAGE=localhost/mlpack-base:bookworm-py311
PYTHON_TAG=docker.io/library/python:3.11-slim
PACKAGES=(buildah podman runc skopeo mmdebstrap catatonit netavark aardvark-dns uidmap iptables)
# the Debian mirror apt already uses on this machine (first "URIs:" / "deb" line)
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\?\([^ ]*\).*/\2/p' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mkdir -p "$DIR"
LOG=$DIR/setup.log
: >"$LOG"
export CONTAINERS_STORAGE_CONF=$DIR/storage.conf CONTAINERS_CONF=$DIR/containers.conf

if [ "${1:-}" = clean ]; then  # the store must be reset/unmounted before rm -rf
  podman system reset -f >/dev/null 2>&1 || true
  grep -o " $DIR/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount 2>/dev/null || true
  rm -rf "$DIR/storage" "$DIR/run"
  exit 0
fi

t0=${EPOCHREALTIME//[.,]/}  # microseconds, no external tools
elapsed() { local us=$((${EPOCHREALTIME//[.,]/} - t0)); printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10)); }
fail() {  # $1 = exit code, $2 = message; show the end of the log so CI output explains itself
  echo "container-setup: $2" >&2
  [ -s "$LOG" ] && tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  exit "$1"
}

# Serialise concurrent runs (parallel test sessions, CI + developer) on the same directory.
exec 9>"$DIR/setup.lock"
flock -w 900 9 || fail 1 "timed out waiting for $DIR/setup.lock"

# 1. tools. runc, not crun: crun refuses cgroup v1 "hybrid" mode.
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail 77 "apt-get not found: install ${missing[*]} by hand"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail 77 "not root and no sudo: cannot install ${missing[*]}"
    SUDO=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  APT_OPTS=(-qq -o DPkg::Lock::Timeout=600)
  { "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update &&
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"; } >>"$LOG" 2>&1 ||
    fail 77 "could not install ${missing[*]} with apt-get"
fi
t_tools=$(elapsed)

# 2. private, self-contained config: no flags needed afterwards, nothing in /var/lib/containers.
cat >"$DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "$DIR/run"
EOF
# podman's default rlimits (nofile/nproc 1048576) exceed what this kind of VM allows -> EPERM
cat >"$DIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$DIR/env.sh" <<EOF
export CONTAINERS_STORAGE_CONF=$DIR/storage.conf
export CONTAINERS_CONF=$DIR/containers.conf
EOF

# 3. base image = Debian bookworm minbase + python3 (3.11) + pip + venv, built once.
if [ ! -s "$BASE_TAR" ]; then
  MODE=root
  [ "$(id -u)" = 0 ] || MODE=unshare
  rm -f "$BASE_TAR.tmp"
  mmdebstrap --mode=$MODE --format=tar --variant=minbase \
    --include=python3-venv,python3-pip,python-is-python3,ca-certificates \
    --aptopt='APT::Install-Recommends "false"' --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED; rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*' \
    bookworm "$BASE_TAR.tmp" "$MIRROR" >>"$LOG" 2>&1 || fail 1 "mmdebstrap failed (mirror $MIRROR)"
  mv "$BASE_TAR.tmp" "$BASE_TAR"
fi
t_tar=$(elapsed)
if ! podman image exists "$BASE_IMAGE" 2>>"$LOG"; then
  podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$BASE_TAR" "$BASE_IMAGE" >>"$LOG" 2>&1 ||
    fail 1 "podman import of $BASE_TAR failed"
fi
if ! podman image exists "$PYTHON_TAG" 2>>"$LOG"; then
  podman tag "$BASE_IMAGE" "$PYTHON_TAG" >>"$LOG" 2>&1 || fail 1 "podman tag $PYTHON_TAG failed"
fi

cat "$DIR/env.sh"
echo "container-setup: ready in $(elapsed)s (tools done at ${t_tools}s, base tar at ${t_tar}s); store $DIR" >&2
