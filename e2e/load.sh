# shellcheck shell=bash
# Load generators shared by the suites that run nginx and redis (sourced;
# the caller defines `note TEXT` for its figures). Each drives real load
# and checks every answer: zero errors or the test fails.

# nginx_load IP LABEL [ROUNDS]: HTTP load (wrk) and ROUNDS x 3 checked
# requests (curl; ROUNDS 30 by default).
nginx_load() {
  local ip=$1 rounds=${3:-30} out i errors=0 want got
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
