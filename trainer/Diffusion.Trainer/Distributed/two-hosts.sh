#!/usr/bin/env bash
# Two machines without a cluster: runs COMMAND as 2 MPI ranks in two network namespaces of this machine, joined by a
# veth pair with one address each (10.77.N.1 and 10.77.N.2). mpirun runs in the first namespace and starts the second
# rank through `ip netns exec` — its remote launch agent in place of ssh; MPI's out-of-band and data traffic are
# confined to that subnet (oob_tcp_if_include, btl_tcp_if_include; btl tcp,self: no shared memory between the
# "machines"). Prints each side's veth byte counters at the end. Needs openmpi-bin, and root or unprivileged user
# namespaces (then everything runs inside a user + mount + network namespace of its own).
#   trainer/Diffusion.Trainer/Distributed/two-hosts.sh dotnet path/to/diffusion.dll train --out run --steps 20 ...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND..." >&2; exit 2; }
command -v mpirun >/dev/null || { echo "error: mpirun is not installed: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ] && [ -z "${TWO_HOSTS_IN_NAMESPACE:-}" ]; then
    # Not root: become root of a user namespace with its own mounts and network, and keep /run/netns there.
    TWO_HOSTS_IN_NAMESPACE=1 exec unshare --user --map-root-user --mount --net bash "$0" "$@"
fi
if [ -n "${TWO_HOSTS_IN_NAMESPACE:-}" ]; then mount -t tmpfs tmpfs /run && mkdir -p /run/netns; fi
a="dfxa$$" b="dfxb$$" subnet="10.77.$(( $$ % 200 + 20 ))"
agent="$(mktemp /tmp/two-hosts-agent.XXXXXX)"
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -f "$agent"; }
trap cleanup EXIT
ip netns add "$a" && ip netns add "$b" || { echo "error: cannot create network namespaces here (needs root or user namespaces)" >&2; exit 1; }
ip link add "v$a" type veth peer name "v$b"
ip link set "v$a" netns "$a" && ip link set "v$b" netns "$b"
ip -n "$a" addr add "$subnet.1/24" dev "v$a" && ip -n "$b" addr add "$subnet.2/24" dev "v$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "v$a" up && ip -n "$b" link set "v$b" up
cat > "$agent" <<AGENT
#!/bin/sh
# ssh HOST COMMAND, for the two namespaces: ip netns exec NAMESPACE sh -c COMMAND
while [ "\${1#-}" != "\$1" ]; do shift; done
case "\$1" in $subnet.1) ns=$a ;; $subnet.2) ns=$b ;; *) echo "two-hosts agent: unknown host \$1" >&2; exit 1 ;; esac
shift
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$agent"
status=0
ip netns exec "$a" mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 --host "$subnet.1:1,$subnet.2:1" \
    --mca plm_rsh_agent "$agent" --mca oob_tcp_if_include "$subnet.0/24" --mca btl tcp,self --mca btl_tcp_if_include "$subnet.0/24" \
    "$@" </dev/null || status=$?
echo "veth bytes: $subnet.1 sent $(ip netns exec "$a" cat /sys/class/net/v$a/statistics/tx_bytes), $subnet.2 sent $(ip netns exec "$b" cat /sys/class/net/v$b/statistics/tx_bytes)"
exit $status
