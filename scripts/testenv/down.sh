#!/usr/bin/env bash
# down.sh [--quiet]: stop what up.sh started and undo its changes. Idempotent;
# up.sh runs it first to clean anything an earlier run left behind.
#  - kills the processes recorded in $STATE/pid (by PID + start time, never by
#    name), every process in a kubepods cgroup, and the containerd shims of
#    our containerd state dir;
#  - unmounts everything under $DATA and $RUNDIR, removes the pod cgroups,
#    the bridge kgbr0, our iptables chains and the CNI/IPAM state;
#  - restores the sysctls saved by up.sh.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QUIET=0
[[ ${1:-} == --quiet ]] && QUIET=1
say() { ((QUIET)) || log "$@"; }
is_root() { [[ $(id -u) == 0 ]]; }

# stop NAME...: TERM the processes recorded for NAMEs (all at once), wait up
# to 10 s, then KILL what is left
stop() {
  local name pid st i live=()
  for name in "$@"; do
    local f=$STATE/pid/$name
    [[ -f $f ]] || continue
    read -r pid st <"$f"
    if [[ -n $pid && $(proc_start "$pid") == "$st" ]]; then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      live+=("$pid:$st")
    fi
    rm -f "$f"
  done
  for ((i = 0; i < 100 && ${#live[@]} > 0; i++)); do
    local still=()
    for p in "${live[@]}"; do
      [[ $(proc_start "${p%%:*}") == "${p#*:}" ]] && still+=("$p")
    done
    live=("${still[@]}")
    ((${#live[@]} > 0)) && sleep 0.1
  done
  for p in "${live[@]}"; do
    say "killing pid ${p%%:*}"
    kill -KILL "${p%%:*}" 2>/dev/null
  done
  ((${#live[@]} > 0)) && sleep 0.2
  return 0
}

# kill_pod_processes: SIGKILL every process in a kubepods cgroup (v1 hierarchies and unified)
pod_cgroup_dirs() {
  local root
  for root in /sys/fs/cgroup/*/; do
    [[ -d ${root}kubepods || -d ${root}kubepods.slice ]] || continue
    find "${root}kubepods" "${root}kubepods.slice" -depth -type d 2>/dev/null
  done
}
kill_pod_processes() {
  local d pids n=0 i
  for ((i = 0; i < 20; i++)); do
    pids=$(pod_cgroup_dirs | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done | sort -u)
    [[ -z $pids ]] && break
    n=1
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.2
  done
  ((n)) && say "killed processes left in kubepods cgroups"
}

# our_shims: PIDs of containerd shims started for OUR containerd (their
# command line names our socket; shims outlive their task dirs)
our_shims() {
  local p sock="$RUNDIR/containerd/containerd.sock"
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "-address $sock " && echo "${p#/proc/}"
  done
  return 0
}
# kill_shims: SIGKILL our shims and container init processes
kill_shims() {
  local pids f
  pids=$(
    our_shims
    for f in "$RUNDIR"/containerd/io.containerd.runtime.v2.task/*/*/init.pid; do
      [[ -f $f ]] && cat "$f" && echo
    done
  )
  pids=$(grep -E '^[0-9]+$' <<<"$pids" | sort -u)
  [[ -z $pids ]] && return 0
  say "killing containerd shims/containers: $(echo $pids)"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.3
}
# remove_tasks: while our containerd still runs, kill and delete every task
# and container it has, so the shims exit cleanly (and remove their sockets)
remove_tasks() {
  local sock=$RUNDIR/containerd/containerd.sock id
  alive containerd && [[ -S $sock ]] && command -v ctr >/dev/null || return 0
  local ctr=(timeout 20 ctr -a "$sock" -n k8s.io)
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1
  done
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1
  done
  for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
    "${ctr[@]}" containers delete "$id" >/dev/null 2>&1
  done
}

# 1. processes: kubelet first (so it stops restarting pods), then the control plane
stop kubelet kube-proxy kube-scheduler kube-controller-manager
if is_root; then
  remove_tasks
  kill_pod_processes
  kill_shims
fi
stop containerd kube-apiserver
stop etcd
if is_root; then
  kill_pod_processes
  kill_shims
  # shim sockets nobody listens on any more (a killed shim cannot remove its own)
  for f in /run/containerd/s/*; do
    [[ -S $f ]] || continue
    grep -qF " $f" /proc/net/unix || rm -f "$f"
  done

  # 2. mounts under our data/run dirs (deepest first), then the dirs
  for i in 1 2 3; do
    mnts=$(findmnt -rno TARGET | grep -E "^($DATA|$RUNDIR)(/|$)" | sort -r)
    [[ -z $mnts ]] && break
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<<"$mnts"
  done
  [[ -n $(findmnt -rno TARGET | grep -E "^($DATA|$RUNDIR)(/|$)") ]] && log "WARNING: mounts left under $DATA or $RUNDIR"
  rm -rf "$DATA" "$RUNDIR"
  # files the kubelet / containerd / libcni write outside their configured
  # dirs: /var/log/containers symlinks into our pod logs, libcni's result
  # cache for our network "kgtest", the kubelet's device-plugin socket, and
  # directories that are left empty by that
  for l in /var/log/containers/*.log; do
    [[ -L $l && $(readlink "$l") == "$DATA"/* ]] && rm -f "$l"
  done
  for r in /var/lib/cni/results/kgtest-*; do
    [[ -e $r ]] || continue
    id=${r#/var/lib/cni/results/kgtest-}; id=${id%-*}
    rm -f "$r" /var/lib/cni/results/cni-loopback-"$id"-*
  done
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  for d in /var/log/containers /var/lib/cni/results /var/lib/cni /var/lib/kubelet/device-plugins \
    /var/lib/kubelet /run/containerd/s /run/containerd; do
    [[ -d $d ]] && rmdir "$d" 2>/dev/null
  done

  # 3. pod cgroups (bottom-up)
  pod_cgroup_dirs | while read -r d; do rmdir "$d" 2>/dev/null; done
  [[ -n $(pod_cgroup_dirs) ]] && log "WARNING: kubepods cgroups left: $(pod_cgroup_dirs | head -3)"

  # 4. network: bridge and our iptables chains; the CNI netns live under $RUNDIR (gone above)
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "deleting bridge $BRIDGE"
    ip link del "$BRIDGE"
  fi
  # veths of pods whose netns vanished are deleted with the netns by the kernel
  if command -v iptables >/dev/null; then
    while iptables -w -t nat -D PREROUTING -j KGTEST-PREROUTING 2>/dev/null; do :; done
    iptables -w -t nat -F KGTEST-PREROUTING 2>/dev/null && iptables -w -t nat -X KGTEST-PREROUTING
    while iptables -w -D FORWARD -j KGTEST-FORWARD 2>/dev/null; do :; done
    iptables -w -F KGTEST-FORWARD 2>/dev/null && iptables -w -X KGTEST-FORWARD
    # chains the kubelet may create (KUBE-*, IPv4 and IPv6) if they did not exist before up.sh
    if [[ -f $STATE/iptables.before ]]; then
      for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        for t in filter nat mangle; do
          for c in $("$ipt" -w -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}'); do
            grep -qx "$ipt $t $c" "$STATE/iptables.before" && continue
            "$ipt" -w -t "$t" -S | awk -v c="$c" '$1=="-A" && $0 ~ ("-j " c "( |$)") {sub("^-A","-D"); print}' |
              while read -r rule; do eval "$ipt -w -t $t $rule"; done
            "$ipt" -w -t "$t" -F "$c" 2>/dev/null; "$ipt" -w -t "$t" -X "$c" 2>/dev/null
          done
        done
      done
    fi
  fi
fi

# 5. sysctls
if [[ -f $STATE/sysctl.saved ]]; then
  while IFS='=' read -r k v; do
    cur=$(sysctl -n "$k" 2>/dev/null) || continue
    if [[ $cur != "$v" ]]; then
      say "restoring sysctl $k=$v (was $cur)"
      sysctl -q -w "$k=$v" >/dev/null || log "WARNING: could not restore $k=$v"
    fi
  done <"$STATE/sysctl.saved"
fi

# 6. state dir (logs are kept in $STATE.last-logs for post-mortems)
if [[ -d $STATE ]]; then
  if [[ -d $STATE/log ]]; then
    rm -rf "$STATE.last-logs"; cp -r "$STATE/log" "$STATE.last-logs" 2>/dev/null
  fi
  rm -rf "$STATE"
fi
say "down: done"
exit 0
