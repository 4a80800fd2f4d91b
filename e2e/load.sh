# shellcheck shell=bash
# Load generators and checks shared by the suites that run nginx and redis
# (sourced; the caller defines `note TEXT` for its figures). Each load
# generator drives real load and checks every answer: zero errors or the
# test fails.

# test_network_only IP: fails (and says so) unless this host reaches IP over
# an interface of its own other than the default route's (the bridges the
# suites make): traffic for a pod or server never leaves the machine, even
# when a cluster's pods are not routed here.
test_network_only() {
  local dev default
  dev=$(ip -o route get "$1" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  default=$(ip -o route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)
  [[ -n $dev && $dev != "$default" ]] && return 0
  echo "$1 is reached only through the default route (${default:-none}): nothing is sent to it"
  return 1
}

# nginx_load IP LABEL [ROUNDS]: HTTP load (wrk) and ROUNDS x 3 checked
# requests (curl; ROUNDS 30 by default).
nginx_load() {
  local ip=$1 rounds=${3:-30} out i errors=0 want got
  test_network_only "$ip" || return 1
  out=$(wrk -t2 -c16 -d4s --timeout 2s "http://$ip/index.html" 2>&1) || { echo "wrk failed: $out"; return 1; }
  if grep -qE "Socket errors|Non-2xx" <<< "$out" || ! grep -q "requests in" <<< "$out"; then echo "wrk: $out"; return 1; fi
  note "nginx $ip ($2): wrk $(grep -o '[0-9]* requests in [^,]*' <<< "$out") (index.html)"
  out=$(wrk -t2 -c8 -d3s --timeout 2s "http://$ip/big.txt" 2>&1) || { echo "wrk failed: $out"; return 1; }
  if grep -qE "Socket errors|Non-2xx" <<< "$out" || ! grep -q "requests in" <<< "$out"; then echo "wrk: $out"; return 1; fi
  note "nginx $ip ($2): wrk $(grep -o '[0-9]* requests in [^,]*' <<< "$out") (big.txt, 256 KiB), $((rounds * 3)) checked curl requests"
  want=$(head -c 262144 /dev/zero | tr '\0' x | sha256sum)
  for ((i = 0; i < rounds; i++)); do
    got=$(curl -fsS --max-time 3 "http://$ip/big.txt" | sha256sum) || { errors=$((errors + 1)); continue; }
    [[ $got == "$want" ]] || errors=$((errors + 1))
    curl -fsS --max-time 3 -o /dev/null "http://$ip/" || errors=$((errors + 1))
    curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://$ip/missing" | grep -qx 404 || errors=$((errors + 1))
  done
  [[ $errors == 0 ]] || { echo "nginx $ip: $errors of $((rounds * 3)) checked requests failed"; return 1; }
}

# redis_load IP LABEL: redis-benchmark and checked commands (redis-cli).
redis_load() {
  local ip=$1 out
  test_network_only "$ip" || return 1
  out=$(timeout 60 redis-benchmark -h "$ip" -p 6379 -n 20000 -c 16 -P 4 -t set,get,incr,lpush,lpop,sadd,hset,lrange_100 --csv 2>&1) ||
    { echo "redis-benchmark failed: $out"; return 1; }
  if grep -qiE "error|could not" <<< "$out"; then echo "redis-benchmark: $out"; return 1; fi
  note "redis $ip ($2): redis-benchmark $(grep -c '^"' <<< "$out") tests x 20000 requests, 0 errors"
  out=$(timeout 10 redis-cli -h "$ip" set imprint-key imprint-value 2>&1)
  [[ $out == OK ]] || { echo "redis SET: $out"; return 1; }
  out=$(timeout 10 redis-cli -h "$ip" get imprint-key 2>&1)
  [[ $out == imprint-value ]] || { echo "redis GET: $out"; return 1; }
  out=$(timeout 10 redis-cli -h "$ip" dbsize 2>&1)
  [[ $out =~ ^[1-9][0-9]*$ ]] || { echo "redis DBSIZE: $out"; return 1; }
}

# --- checks on servers and on the profiles they run under ----------------------

# wait_http IP / wait_redis IP: until the server answers (at most 20 s).
wait_http() {
  local t0=$SECONDS
  test_network_only "$1" || return 1
  until curl -fsS --max-time 1 -o /dev/null "http://$1/"; do (( SECONDS - t0 < 20 )) || return 1; sleep 0.2; done
}
wait_redis() {
  local t0=$SECONDS
  test_network_only "$1" || return 1
  until [[ $(timeout 2 redis-cli -h "$1" ping 2>/dev/null) == PONG ]]; do (( SECONDS - t0 < 20 )) || return 1; sleep 0.2; done
}
# nginx_answers IP / redis_answers IP: a few requests, all answered.
nginx_answers() { local i; test_network_only "$1" || return 1; for ((i = 0; i < 3; i++)); do curl -fsS --max-time 2 -o /dev/null "http://$1/" || return 1; done; }
redis_answers() { test_network_only "$1" || return 1; [[ $(timeout 3 redis-cli -h "$1" set k v 2>/dev/null) == OK ]] && [[ $(timeout 3 redis-cli -h "$1" get k 2>/dev/null) == v ]]; }

CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
  NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT
  SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
  AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
  PERFMON BPF CHECKPOINT_RESTORE)
# cap_names HEX: the names of the bits set in a /proc/PID/status capability mask, sorted.
cap_names() {
  local mask=$((16#$1)) i
  for ((i = 0; i < ${#CAP_NAMES[@]}; i++)); do (( mask >> i & 1 )) && echo "${CAP_NAMES[i]}"; done | sort
}
# caps_add FILE: the capabilities imprint's caps YAML adds (drop: [ALL], add: [...]).
caps_add() { awk '/^add:/ { f = 1; next } /^[a-z]/ { f = 0 } f && /^- / { print $2 }' "$1"; }

# confined PID CAPS: process PID runs under a seccomp filter, with exactly
# the capabilities the caps YAML CAPS adds as its bounding set.
confined() {
  local pid=$1 status want got
  status=$(cat "/proc/$pid/status") || return 1
  [[ $(awk '/^Seccomp:/ { print $2 }' <<< "$status") == 2 ]] || { echo "process $pid runs without a seccomp filter"; return 1; }
  want=$(caps_add "$2" | sort)
  got=$(cap_names "$(awk '/^CapBnd:/ { print $2 }' <<< "$status")")
  [[ $got == "$want" ]] || { echo "bounding set of $pid: $(echo "$got" | tr '\n' ' '), expected $(echo "$want" | tr '\n' ' ')"; return 1; }
}

# without_syscall PROFILE OUT_PATTERN: writes PROFILE minus the first syscall
# of a list a server certainly makes while serving (its event loop,
# accepting connections) to OUT_PATTERN with %s as that syscall; prints it.
without_syscall() {
  local s out
  for s in epoll_wait accept4 epoll_pwait accept; do
    if jq -e --arg s "$s" '[.syscalls[].names[]] | index($s) != null' "$1" > /dev/null; then
      # shellcheck disable=SC2059 # the pattern is the caller's format
      out=$(printf "$2" "$s")
      jq --arg s "$s" '.syscalls |= map(.names -= [$s])' "$1" > "$out"
      echo "$s"; return 0
    fi
  done
  echo "$1 has none of epoll_wait, accept4, epoll_pwait, accept" >&2
  return 1
}

# argument_rules PROFILE: the syscalls an OCI profile allows only on some
# arguments, with their number of rules ("socket 2, clone 1"), or "none".
argument_rules() {
  jq -r '[.syscalls[] | select(.args != null and .action == "SCMP_ACT_ALLOW") | .names[0]] | group_by(.)
    | map("\(.[0]) \(length)") | if length == 0 then "none" else join(", ") end' "$1"
}

# looser_than_default PROFILE DEFAULT: prints, for each syscall both OCI
# profiles allow, where PROFILE's rules are looser than DEFAULT's rules for
# it (a runtime default profile such as containers-common's
# /usr/share/containers/seccomp.json); nothing when every rule is at least
# as strict. DEFAULT's rules that need a capability (includes.caps) are left
# out, its rules that a capability lifts (excludes.caps) kept, as for a
# container without them. A call of PROFILE meets a DEFAULT rule when each
# of the rule's conditions follows from the call's own (EQ, or MASKED_EQ
# whose mask covers the compared bits).
looser_than_default() {
  jq -r --slurpfile d "$2" '
    def default_rules($s): [$d[0].syscalls[] | select(.action == "SCMP_ACT_ALLOW" and (.names | index($s))
      and ((.includes.caps // []) | length) == 0)];
    def fixed($call; $i): [$call[] | select(.index == $i)
      | if .op == "SCMP_CMP_EQ" then .value
        elif .op == "SCMP_CMP_MASKED_EQ" and .value >= 4294967295 then .valueTwo
        else null end] | map(select(. != null)) | first;
    def holds($call; $c): fixed($call; $c.index) as $v
      | if $v == null then false
        elif $c.op == "SCMP_CMP_EQ" then $v == $c.value
        elif $c.op == "SCMP_CMP_NE" then $v != $c.value
        else false end;
    . as $p
    | [$p.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | unique[] as $s
    | default_rules($s) as $rules
    | select(($rules | length) > 0 and ($rules | all((.args // []) | length > 0)))
    | [$p.syscalls[] | select(.action == "SCMP_ACT_ALLOW" and (.names | index($s)))] as $ours
    | if ($ours | any((.args // []) | length == 0)) then "\($s): allowed by name, the default only on its arguments"
      else ($ours[] | .args as $call
        | select(($rules | any(.args as $cs | $cs | all(. as $c | holds($call; $c)))) | not)
        | "\($s): \($call | map("arg\(.index) \(.op) \(.value) \(.valueTwo // "")") | join(" && ")) meets none of the default rules")
      end' "$1"
}
