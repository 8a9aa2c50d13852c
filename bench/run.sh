#!/usr/bin/env bash
# bench/run.sh [RUNS] [MESSAGES] [SIZE] [SESSIONS]
#
# Acceptance benchmark: how fast `replydesk serve` durably accepts mail, measured
# against a peer (Dovecot's LMTP) in the same run, because the machine is shared and noisy.
# Every case gets a fresh server and an empty store each run. Defaults: 3 runs of 20,000
# messages of 4 KiB over 10 sessions. Prints every run and the medians.
#
#   smtp      Postfix's smtp-source -> replydesk SMTP (a new connection per message)
#   smtp-d    same, smtp-source -d (connections reused)
#   load      cmd/replydesk-load -> replydesk SMTP, new connection per message; prints
#             p50/p90/p99 latency from DATA to the final reply
#   load-d    same, -reuse
#   lmtp      smtp-source -L -> replydesk LMTP (new connection per message)
#   dovecot   smtp-source -L -> Dovecot LMTP -> maildir (started with
#             ../shared/peers/dovecot-start.sh; skipped if that is absent)
#
# For every replydesk case it also reports how long after the load the last message was
# filed into its ticket, and the server's peak RSS (VmHWM).
# Needs: smtp-source (apt-get install postfix), and for the peer, dovecot-core and
# dovecot-lmtpd. Run as root for the Dovecot peer.
set -euo pipefail
RUNS=${1:-3} N=${2:-20000} SIZE=${3:-4096} SESSIONS=${4:-10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
peers="$repo/../shared/peers"
work=$(mktemp -d)
trap 'pkill -f "$work/replydesk serve" 2>/dev/null || true; rm -rf "$work"' EXIT
command -v smtp-source >/dev/null || PATH="$PATH:/usr/sbin"
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }

echo "building..." >&2
(cd "$repo" && go build -o "$work/replydesk" ./cmd/replydesk && go build -o "$work/replydesk-load" ./cmd/replydesk-load)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# start_replydesk: fresh store, SMTP and LMTP listeners; sets PID, SMTP, LMTP, CFG
start_replydesk() {
  local d="$work/run-$RANDOM$RANDOM"; mkdir -p "$d"
  SMTP=127.0.0.1:$(port); LMTP=127.0.0.1:$(port); CFG="$d/replydesk.toml"
  cat > "$CFG" <<TOML
[helpdesk]
data_dir = "$d/data"
[[address]]
email = "support@example.test"
queue = "support"
[smtp]
listen = "$SMTP"
lmtp = "$LMTP"
TOML
  REPLYDESK_LOG=warn "$work/replydesk" serve -config "$CFG" 2>"$d/serve.log" &
  PID=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/${SMTP%:*}/${SMTP#*:}) 2>/dev/null && return; sleep 0.05; done
  echo "serve did not start" >&2; cat "$d/serve.log" >&2; exit 1
}

# stop_replydesk: waits until every message is filed; prints "<seconds after load> <peak RSS KiB>"
stop_replydesk() {
  local load_end=$1 rss unfiled
  for _ in $(seq 600); do
    unfiled=$("$work/replydesk" status -config "$CFG" -json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["unprocessed"])')
    [ "$unfiled" = 0 ] && break
    sleep 0.05
  done
  local filed_after; filed_after=$(echo "$(now) - $load_end" | bc)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
  kill -TERM $PID; wait $PID 2>/dev/null || true
  echo "$filed_after $rss"
}

results="$work/results.tsv"
: > "$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$results"; printf '%-8s %s\n' "$1" "$3" >&2; }

run_source() { # case, smtp-source flags, target
  local t0 t1 rate extra
  t0=$(now)
  smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" $2 -f load@example.test -t support@example.test "$3" >/dev/null
  t1=$(now)
  rate=$(echo "$N / ($t1 - $t0)" | bc)
  echo "$rate $t1"
}

for run in $(seq "$RUNS"); do
  echo "== run $run" >&2
  for c in smtp smtp-d lmtp; do
    start_replydesk
    case $c in
      smtp)   read -r rate end < <(run_source $c "" "$SMTP") ;;
      smtp-d) read -r rate end < <(run_source $c "-d" "$SMTP") ;;
      lmtp)   read -r rate end < <(run_source $c "-L" "$LMTP") ;;
    esac
    read -r after rss < <(stop_replydesk "$end")
    record "$c" "$rate" "$rate msg/s; all filed ${after}s after the load; peak RSS ${rss} KiB"
  done
  for c in load load-d; do
    start_replydesk
    flag=""; [ $c = load-d ] && flag=-reuse
    out=$("$work/replydesk-load" -addr "$SMTP" -n "$N" -s "$SIZE" -c "$SESSIONS" -to support@example.test $flag)
    end=$(now)
    read -r after rss < <(stop_replydesk "$end")
    rate=$(echo "$out" | sed -E 's/.*: ([0-9]+) msg\/s.*/\1/')
    record "$c" "$rate" "$out; all filed ${after}s after; peak RSS ${rss} KiB"
  done
  if [ -x "$peers/dovecot-start.sh" ] && [ "$(id -u)" = 0 ]; then
    ddir=$(mktemp -d); chmod 755 "$ddir"
    eval "$(LMTP_PORT=$(port) IMAP_PORT=$(port) "$peers/dovecot-start.sh" "$ddir")"
    read -r rate end < <(run_source dovecot "-L" "127.0.0.1:$LMTP_PORT")
    "$peers/dovecot-stop.sh" "$ddir" >/dev/null 2>&1 || true
    rm -rf "$ddir"
    record dovecot "$rate" "$rate msg/s (Dovecot LMTP, maildir, fsync optimized)"
  fi
done

echo
echo "medians of $RUNS runs, $N messages of $SIZE bytes over $SESSIONS sessions:"
for c in smtp smtp-d load load-d lmtp dovecot; do
  m=$(awk -F'\t' -v c=$c '$1==c {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
  [ -n "$m" ] && printf '  %-8s %6s msg/s\n' "$c" "$m"
done
rd=$(awk -F'\t' '$1=="lmtp" {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
dv=$(awk -F'\t' '$1=="dovecot" {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
[ -n "$dv" ] && [ -n "$rd" ] && echo "  replydesk LMTP / Dovecot LMTP: $(echo "scale=1; $rd / $dv" | bc)x"
echo
echo "every run:"; cat "$results" | cut -f1,3
