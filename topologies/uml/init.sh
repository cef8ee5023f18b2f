#!/bin/busybox sh
# init of the UML nodes in topologies/*.yaml. The node boots the host's / read-only
# through hostfs (root: /) and runs this file with busybox. Kernel arguments of the form
# KEY=VALUE (the node's `args:`) arrive here as environment variables:
#   VB_ADDR0=10.0.0.3/24   address of vec0 (VB_ADDR1 for vec1, ... up to vec7)
#   VB_GW=10.0.0.1         default gateway
# When the interfaces are configured it prints VECBOX-UML-READY (the nodes' `ready:`).
# An interface that appears later (`vecbox apply` adding a link, console
# `config vecN:...`) is configured as soon as it shows up, if VB_ADDRn names it.
bb=/bin/busybox
export PATH=/nonexistent
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t tmpfs tmp /tmp
$bb ip link set lo up
# Configure every vecN that exists and has an address; return 1 while one is missing.
configure() {
  missing=0
  i=0
  while [ $i -lt 8 ]; do
    eval addr=\$VB_ADDR$i
    if [ -n "$addr" ] && [ ! -e /tmp/vb-up-$i ]; then
      if [ -e /sys/class/net/vec$i ]; then
        $bb ip addr add "$addr" dev vec$i
        $bb ip link set vec$i up
        : > /tmp/vb-up-$i
      else
        missing=1
      fi
    fi
    i=$((i + 1))
  done
  return $missing
}
configure
if [ -n "$VB_GW" ]; then $bb ip route add default via "$VB_GW"; fi
echo VECBOX-UML-READY
if ! configure; then
  while ! configure; do $bb sleep 0.2; done &
fi
exec $bb sleep 2147483647
