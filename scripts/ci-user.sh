#!/usr/bin/env bash
# Creates the unprivileged user the rootless tests run as, with its own
# /etc/subuid and /etc/subgid ranges. Idempotent.
set -eu
user=${USERNS_TEST_USER:-usernstest}
start=${USERNS_TEST_SUBID_START:-300000}
count=${USERNS_TEST_SUBID_COUNT:-65536}
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh "$user"
fi
# useradd may have allocated ranges of its own (SUB_UID_MIN): replace them so
# the tests' ranges are known and never collide with other users'.
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  uid=$(id -u "$user")
  grep -v -e "^$user:" -e "^$uid:" "$f" >"$f.userns-tmp" || true
  echo "$user:$start:$count" >>"$f.userns-tmp"
  cat "$f.userns-tmp" >"$f" && rm -f "$f.userns-tmp"
done
echo "$user uid=$(id -u "$user") gid=$(id -g "$user"); subuid: $(grep "^$user:" /etc/subuid); subgid: $(grep "^$user:" /etc/subgid)"
