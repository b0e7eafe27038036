#!/usr/bin/env bash
# Install the Debian packages the test environment needs (containerd, runc,
# CNI plugins, iptables, conntrack, openssl, ...). Quiet no-op when all are
# already installed; otherwise `apt-get update` once, then install.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
pkgs=(containerd runc containernetworking-plugins iptables conntrack openssl curl
  iproute2 util-linux procps gcc libc6-dev python3 ca-certificates busybox-static
  dnsmasq-base shellcheck) # dnsmasq-base: the real DNS server of the engine's resolver tests
missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $st == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi
[[ $(id -u) == 0 ]] || die "need root to install: ${missing[*]}"
log "installing from Debian: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# do not let package scripts start a system containerd: ours runs with its own config
policy=/usr/sbin/policy-rc.d created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
net_retry apt-get -o Acquire::Retries=3 update -qq </dev/null
net_retry apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
