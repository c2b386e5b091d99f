# shellcheck shell=bash
# Installs what building and testing Bulkhead needs, when it is missing.
# Sourced by perf-lab/test.sh and perf-lab/demo.sh.

BULKHEAD_APT_PACKAGES=(libdpdk-dev dpdk pkg-config libclang-dev clang protobuf-compiler
    iproute2 iputils-ping ethtool python3)

bulkhead_missing_packages() {
    local p missing=()
    for p in "${BULKHEAD_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    echo "${missing[@]:-}"
}

bulkhead_ensure_deps() {
    local missing
    missing=$(bulkhead_missing_packages)
    if [ -n "$missing" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "error: missing packages: $missing (run as root, or: sudo apt-get install $missing)" >&2
            return 1
        fi
        echo "==> installing: $missing"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust (https://rustup.rs)" >&2; return 1; }
}
