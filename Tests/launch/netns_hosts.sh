#!/usr/bin/env bash
# Test hosts for the launcher tests: N Linux network namespaces on one bridge, each with its
# own address (10.213.S.1…N) and its own sshd (key login as root), so processes started in
# different "hosts" can reach each other only over that network, never over loopback.
# Needs root, iproute2 and openssh-server (NETNS_NO_SSHD=1: no sshd, for hosts that run other
# daemons). Each namespace gets /etc/netns/NAME/hosts (ip netns exec shows it as /etc/hosts)
# naming the hosts node1…N and the launching host.
#   bash Tests/launch/netns_hosts.sh up DIR N   → DIR/hosts (one address per line), DIR/ssh_config,
#                                                 DIR/netns (namespace names), DIR/id (client key)
#   bash Tests/launch/netns_hosts.sh down DIR
set -euo pipefail
action=$1; dir=$(realpath -m "$2")
if [ "$action" = down ]; then
  for pid in "$dir"/sshd-*.pid; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true; done
  if [ -f "$dir/netns" ]; then
    while read -r ns; do
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
      rm -rf "/etc/netns/$ns"
    done < "$dir/netns"
  fi
  [ -f "$dir/bridge" ] && ip link del "$(cat "$dir/bridge")" 2>/dev/null || true
  exit 0
fi
[ "$action" = up ] || { echo "usage: netns_hosts.sh up DIR N | down DIR" >&2; exit 2; }
count=$3
[ "$(id -u)" -eq 0 ] || { echo "netns_hosts.sh: needs root (ip netns)" >&2; exit 1; }
sshd=$([ "${NETNS_NO_SSHD:-0}" = 1 ] && echo no || echo yes)
[ "$sshd" = no ] || [ -x /usr/sbin/sshd ] || { echo "netns_hosts.sh: sshd is missing (apt-get install openssh-server)" >&2; exit 1; }
mkdir -p "$dir" /run/sshd
tag=$(printf '%04x' $((RANDOM % 65536)))
subnet=$((RANDOM % 200 + 20))
bridge="rpsbr$tag"
echo "$bridge" > "$dir/bridge"
: > "$dir/netns"; : > "$dir/hosts"
ip link add "$bridge" type bridge
ip link set "$bridge" up
ip addr add "10.213.$subnet.254/24" dev "$bridge"   # the launching host's address on this network
ssh-keygen -q -t ed25519 -N "" -f "$dir/hostkey" <<< y >/dev/null
ssh-keygen -q -t ed25519 -N "" -f "$dir/id" <<< y >/dev/null
cp "$dir/id.pub" "$dir/authorized_keys"
for i in $(seq "$count"); do
  ns="rps-$tag-$i"; address="10.213.$subnet.$i"
  ip netns add "$ns"; echo "$ns" >> "$dir/netns"
  ip link add "rv$tag$i" type veth peer name eth0 netns "$ns"
  ip link set "rv$tag$i" master "$bridge"
  ip link set "rv$tag$i" up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  echo "$address" >> "$dir/hosts"
  [ "$sshd" = yes ] || continue
  cat > "$dir/sshd-$i.conf" <<CONF
ListenAddress $address
HostKey $dir/hostkey
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd-$i.pid
CONF
  ip netns exec "$ns" /usr/sbin/sshd -f "$dir/sshd-$i.conf" -E "$dir/sshd-$i.log"
done
{ echo "127.0.0.1 localhost"; echo "10.213.$subnet.254 $(hostname -s)"
  i=0; while read -r address; do i=$((i + 1)); echo "$address node$i"; done < "$dir/hosts"; } > "$dir/etc-hosts"
while read -r ns; do mkdir -p "/etc/netns/$ns"; cp "$dir/etc-hosts" "/etc/netns/$ns/hosts"; done < "$dir/netns"
[ "$sshd" = yes ] || exit 0
cat > "$dir/ssh_config" <<CONF
Host 10.213.$subnet.*
  User root
  IdentityFile $dir/id
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 10
CONF
# Every sshd answers before this returns.
for address in $(cat "$dir/hosts"); do
  for attempt in $(seq 50); do
    ssh -F "$dir/ssh_config" "$address" true 2>/dev/null && break
    [ "$attempt" -lt 50 ] || { echo "netns_hosts.sh: sshd at $address does not answer" >&2; cat "$dir"/sshd-*.log >&2; exit 1; }
    sleep 0.2
  done
done
