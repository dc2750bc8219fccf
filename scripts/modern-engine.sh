#!/usr/bin/env bash
# A modern Docker engine (Docker 26 + buildx 0.13 + containerd 1.7, from Debian 13's
# packages) beside the system's own, for tests, the demo and the benchmark.
#
#   scripts/modern-engine.sh up   modern|modern-classic ENGINE_DIR PREFIX
#   scripts/modern-engine.sh stop modern|modern-classic ENGINE_DIR PREFIX
#   scripts/modern-engine.sh fresh modern|modern-classic ENGINE_DIR PREFIX   restart with no images,
#       no build cache and no containerd content: a fresh setup_remote_docker (on the containerd
#       store, removing images and build cache leaves blobs and snapshots behind, so a "fresh"
#       engine would pull nothing)
#
# On Debian 12 the packages are fetched with apt-get download through a source list of
# their own for the trixie suite (mirror read from this machine's apt sources) and
# unpacked into PREFIX, never installed over the system. trixie's runc needs glibc 2.38:
# Debian 12's runc is used. Each engine has its own containerd, socket, data and bridge,
# and no iptables rules (builds need no network beyond the engine's own pulls).
set -euo pipefail
action="$1" engine="$2" dir="$3" prefix="$4"
log() { printf 'modern-engine(%s): %s\n' "$engine" "$*" >&2; }
PKGS=(docker.io docker-cli docker-buildx containerd tini)

mirror_uri() {
  # deb822 sources first (Debian 12's default), then one-line sources.
  local uri
  uri="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
  printf '%s' "$uri"
}

install_prefix() {
  [ -x "$prefix/usr/sbin/dockerd" ] && [ -x "$prefix/usr/libexec/docker/cli-plugins/docker-buildx" ] && return 0
  command -v runc >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null; }
  local work uri
  work="$(mktemp -d)"
  chmod 755 "$work"
  if grep -qs '^VERSION_CODENAME=trixie' /etc/os-release; then
    log "Debian 13: downloading ${PKGS[*]} from the machine's own sources"
    (cd "$work" && apt-get download -qq "${PKGS[@]}" >/dev/null 2>&1) || { apt-get update -qq; (cd "$work" && apt-get download -qq "${PKGS[@]}" >/dev/null); }
  else
    uri="$(mirror_uri)"
    [ -n "$uri" ] || { log "no Debian mirror found in /etc/apt/sources*: cannot fetch the modern engine"; exit 1; }
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    echo "deb $uri trixie main" >"$work/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Get::List-Cleanup=0)
    log "fetching ${PKGS[*]} from the trixie suite"
    apt-get "${opts[@]}" update -qq >/dev/null
    (cd "$work/debs" && apt-get "${opts[@]}" download -qq "${PKGS[@]}" >/dev/null 2>&1)
    mv "$work/debs"/*.deb "$work/"
  fi
  mkdir -p "$prefix"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$prefix"; done
  # dockerd looks for docker-init on PATH; the dynamic tini needs a newer glibc.
  ln -sf tini-static "$prefix/usr/bin/docker-init"
  rm -rf "$work"
  log "unpacked into $prefix ($("$prefix/usr/sbin/dockerd" --version))"
}

answers() { DOCKER_HOST="unix://$dir/docker.sock" timeout 10 "$prefix/usr/bin/docker" info >/dev/null 2>&1; }
alive() { [ -f "$dir/$1.pid" ] && ! gone "$(cat "$dir/$1.pid")"; }
# Exited, or a zombie nobody reaps (this sandbox's init may not): kill -0 still answers for those.
gone() { [ ! -d "/proc/$1" ] || grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

bridge_of() { case "$engine" in modern) echo "drc-br-modern 172.30.1.1/24" ;; *) echo "drc-br-classic 172.30.2.1/24" ;; esac; }

up() {
  install_prefix
  mkdir -p "$dir/docker-config/cli-plugins"
  ln -sf "$prefix/usr/libexec/docker/cli-plugins/docker-buildx" "$dir/docker-config/cli-plugins/docker-buildx"
  if answers; then log "reusing the one that answers"; return 0; fi
  stop_processes
  local bridge cidr
  read -r bridge cidr < <(bridge_of)
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  ip addr show dev "$bridge" | grep -q "${cidr%/*}" || ip addr add "$cidr" dev "$bridge"
  ip link set "$bridge" up
  cat >"$dir/containerd.toml" <<CONF
version = 2
root = "$dir/containerd-root"
state = "$dir/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = "$dir/containerd-debug.sock"
CONF
  if [ "$engine" = modern ]; then
    echo '{"features":{"containerd-snapshotter":true}}' >"$dir/daemon.json"
  else
    echo '{"features":{"containerd-snapshotter":false},"storage-driver":"overlay2"}' >"$dir/daemon.json"
  fi
  export PATH="$prefix/usr/bin:$prefix/usr/sbin:$PATH"
  # Stale sockets would look ready; a pid file naming a dead (or zombie) process makes dockerd refuse to start.
  rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc" "$dir/docker.sock" "$dir/dockerd.pid" "$dir/containerd.pid"
  nohup containerd --config "$dir/containerd.toml" >>"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  for _ in $(seq 1 200); do [ -S "$dir/containerd.sock" ] && break; sleep 0.05; done
  nohup dockerd --config-file "$dir/daemon.json" --containerd "$dir/containerd.sock" \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" --bridge "$bridge" --iptables=false --ip-masq=false \
    >>"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 300); do
    if answers; then log "up"; return 0; fi
    sleep 0.1
  done
  log "did not answer in 30 s; see $dir/dockerd.log"
  tail -20 "$dir/dockerd.log" >&2 || true
  exit 1
}

stop_processes() {
  for name in dockerd containerd; do
    if alive "$name"; then
      local pid
      pid="$(cat "$dir/$name.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do gone "$pid" && break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped $name ($pid)"
    fi
  done
}

case "$action" in
  up) mkdir -p "$dir"; up ;;
  stop) stop_processes ;;
  fresh)
    # Its state is thrown away: no need to wait for a clean shutdown.
    for name in dockerd containerd; do
      if alive "$name"; then
        pid="$(cat "$dir/$name.pid")"
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do gone "$pid" && break; sleep 0.02; done
      fi
    done
    # dockerd leaves its mounts (overlay snapshots, the exec root) behind when killed.
    grep -o " $dir/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf "$dir/data" "$dir/exec" "$dir/containerd-root" "$dir/containerd-state"
    mkdir -p "$dir"
    up >/dev/null 2>&1 || up
    ;;
  *) log "usage: $0 up|stop|fresh ENGINE DIR PREFIX"; exit 2 ;;
esac
