#!/usr/bin/env bash
# bench/realistic.sh [RUNS] [MESSAGES] [SESSIONS]
#
# Acceptance and end-to-end handling under a real helpdesk's traffic: every new message
# from its own customer, 30% replies to earlier messages of the run (In-Reply-To and
# References), three agents on the queue, a new connection per message, 4 KiB messages.
# serve delivers through its smtp transport to replydesk-load's capture server, which
# counts every confirmation and notification and times each confirmation against the
# start of the SMTP transaction it answers.
#
# In each run, on the same machine and with the same client:
#   probe       bench/probe: go-smtp -> one writer -> SQLite group commit, nothing else
#   agents      serve, three agents, no DKIM
#   agents+dkim serve, three agents, DKIM RSA-2048
#   signbound   RSA-2048 signatures/s on all cores (replydesk-load -sign-bound)
# then, once, the customer-visible latency at a sustained 100 msg/s for 30 s with DKIM,
# with a fifth of the notifications answered by an agent (agent reply -> customer).
# Prints every run, medians of RUNS, and the ratios the README quotes.
set -euo pipefail
RUNS=${1:-3} N=${2:-20000} SESSIONS=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "building..." >&2
(cd "$repo" && go build -o "$work/replydesk" ./cmd/replydesk && go build -o "$work/replydesk-load" ./cmd/replydesk-load && go build -o "$work/probe" ./bench/probe)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/dkim.pem" 2>/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
LOAD=(-n "$N" -c "$SESSIONS" -s 4096 -customers -replies 0.3 -to support@example.test)

# start_serve DKIM(yes|no) CAPTURE_PORT: sets PID, SMTP
start_serve() {
  local d="$work/run-$RANDOM$RANDOM"; mkdir -p "$d"
  SMTP=$(port); local cfg="$d/replydesk.toml" dkim=""
  [ "$1" = yes ] && dkim="dkim_key = \"$work/dkim.pem\"
dkim_selector = \"bench\""
  cat > "$cfg" <<TOML
[helpdesk]
data_dir = "$d/data"
[[address]]
email = "support@example.test"
queue = "support"
[smtp]
listen = "127.0.0.1:$SMTP"
[outbound]
transport = "smtp"
smarthost = "127.0.0.1:$2"
tls = "none"
max_connections = 8
$dkim
[[agent]]
email = "ana@example.test"
queues = ["support"]
[[agent]]
email = "bo@example.test"
queues = ["support"]
[[agent]]
email = "cy@example.test"
queues = ["support"]
TOML
  REPLYDESK_LOG=warn "$work/replydesk" serve -config "$cfg" 2>"$d/serve.log" &
  PID=$!
  wait_port "$SMTP"
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

results="$work/results.tsv"; : > "$results"
record() { printf '%s\t%s\n' "$1" "$2" >> "$results"; printf '%-14s %s\n' "$1" "$3" >&2; }
field() { sed -nE "s|.*$1.*|\\1|p" | head -1; }

for run in $(seq "$RUNS"); do
  echo "== run $run" >&2
  P=$(port); mkdir -p "$work/probe-$run"
  "$work/probe" -addr "127.0.0.1:$P" -dir "$work/probe-$run" 2>/dev/null & PPID_=$!
  wait_port "$P"
  out=$("$work/replydesk-load" -addr "127.0.0.1:$P" "${LOAD[@]}")
  stop $PPID_; rm -rf "$work/probe-$run"
  record probe "$(echo "$out" | field ': ([0-9]+) msg/s')" "$out"
  for c in agents agents+dkim; do
    dk=no; [ $c = agents+dkim ] && dk=yes
    CAP=$(port); start_serve $dk "$CAP"
    out=$("$work/replydesk-load" -addr "127.0.0.1:$SMTP" -capture "127.0.0.1:$CAP" -agents "${LOAD[@]}")
    stop $PID
    record "$c" "$(echo "$out" | field ': ([0-9]+) msg/s;')" "$out"
    record "$c-p99" "$(echo "$out" | field 'DATA-to-reply p50 [^ ]+ p90 [^ ]+ p99 ([^;]+);')" ""
    record "$c-e2e" "$(echo "$out" | field ': ([0-9]+) msg/s filed and answered')" ""
    record "$c-mails" "$(echo "$out" | field 'confirmations ([0-9]+)/')+$(echo "$out" | field 'notifications ([0-9]+)/')" ""
  done
  out=$("$work/replydesk-load" -sign-bound)
  record signbound "$(echo "$out" | field ': ([0-9]+)/s')" "$out"
done

echo "== latency at a sustained 100 msg/s for 30 s, three agents, DKIM" >&2
CAP=$(port); start_serve yes "$CAP"
lat=$("$work/replydesk-load" -addr "127.0.0.1:$SMTP" -capture "127.0.0.1:$CAP" -agents -agent-replies 0.2 -n 3000 -rate 100 -c "$SESSIONS" -s 4096 -customers -replies 0.3 -to support@example.test)
stop $PID
echo "$lat" >&2

median() { awk -F'\t' -v c="$1" '$1==c {print $2}' "$results" | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
echo
echo "medians of $RUNS runs, $N messages of 4 KiB, $SESSIONS sessions, new connection per message:"
probe=$(median probe); sb=$(median signbound)
printf '  %-26s %6s msg/s\n' "bare probe" "$probe"
for c in agents agents+dkim; do
  a=$(median $c); e=$(median $c-e2e); p=$(median $c-p99)
  printf '  %-26s %6s msg/s accepted (%.2f x probe), SMTP p99 %s, %s msg/s filed and answered end to end\n' \
    "serve, $c" "$a" "$(echo "scale=2; $a / $probe" | bc)" "$p" "$e"
done
mails=$(awk -F'\t' '$1=="agents+dkim-mails" {print $2}' "$results" | head -1)
sigs=$(echo "scale=3; ($mails) / $N" | bc)
bound=$(echo "scale=0; $sb / $sigs" | bc)
printf '  RSA-2048 signatures: %s/s on all cores; %s signatures per message -> signing bound %s msg/s; DKIM end to end is %.2f x the bound\n' \
  "$sb" "$sigs" "$bound" "$(echo "scale=2; $(median agents+dkim-e2e) / $bound" | bc)"
echo "  latency (100 msg/s, 30 s, DKIM): $(echo "$lat" | sed -nE 's/.*(mail in -> confirmation.*)/\1/p')"
echo "  agent replies in that run (20% of notifications answered): $(echo "$lat" | sed -nE 's/^agent replies: (.*)/\1/p')"
echo
echo "every run:"; cut -f1,2 "$results"
