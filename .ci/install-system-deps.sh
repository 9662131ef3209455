#!/usr/bin/env bash
# Installs Debian's prometheus (promtool), chromium, libvulkan1 and iproute2 (ip, tc: the multi-host
# tests' network namespaces) when missing. Chromium ships SwiftShader's Vulkan driver and libvulkan1
# is the Vulkan loader: together they are the software GPU the webgpu tests run on. Needs root (CI
# runs as root).
set -u
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || need+=(libvulkan1)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-system-deps: not root, cannot install ${need[*]}"; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
