#!/usr/bin/env bash
# bench/imap-backfill.sh [RUNS] [MESSAGES] [SIZE]
#
# IMAP backfill benchmark: `replydesk serve` takes in a Dovecot mailbox of MESSAGES
# messages of about SIZE bytes (threaded support mail from ../shared/peers/gen-maildir.py)
# on its first sync: fetched, stored, moved to a processed mailbox, and threaded into
# tickets. The rate counts from serve's start until the last message is filed. In the same
# run, on the same mailbox, Python's imaplib fetches every message raw (BODY.PEEK[] in
# chunks of 500, one connection: ../shared/peers/imap-check.py --fetch-all), the server's
# own ceiling; and imaplib doing the server's part of the work (fetch, then UID MOVE per
# chunk), the ceiling of any client that moves what it takes. Every run gets a fresh
# Dovecot and a fresh store. Defaults: 3 runs of
# 20,000 messages of 4 KiB. Prints every run and the medians.
#
# BENCH_LOGS=DIR keeps each serve's log there (REPLYDESK_LOG=debug adds per-batch timings).
# Also run in flag mode (no processed_mailbox: \Seen + $Replydesk instead of a move) with
# MODES="move flag".
#
# Needs: root (Dovecot's private instance as the peers run it), dovecot-core and
# dovecot-imapd, /usr/bin/python3, bc, ../shared/peers beside the repo.
set -euo pipefail
RUNS=${1:-3} N=${2:-20000} SIZE=${3:-4096}
MODES=${MODES:-move}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
peers="$repo/../shared/peers"
py=/usr/bin/python3
[ -x "$peers/dovecot-start.sh" ] || { echo "needs $peers (dovecot-start.sh)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (private Dovecot)" >&2; exit 1; }
work=$(mktemp -d); chmod 755 "$work"
serve_pid=""
dovecot_dir=""
cleanup() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  [ -n "$dovecot_dir" ] && "$peers/dovecot-stop.sh" "$dovecot_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building..." >&2
(cd "$repo" && go build -o "$work/replydesk" ./cmd/replydesk)
port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# One mailbox, generated once, copied into every run's Dovecot.
body=$(( SIZE > 900 ? SIZE - 420 : 500 ))   # gen-maildir's headers are about 420 bytes
echo "generating $N messages of ~$SIZE bytes..." >&2
$py "$peers/gen-maildir.py" --out "$work/template" --count "$N" --body-bytes "$body" >/dev/null
avg=$(du -sb "$work/template/new" | awk -v n="$N" '{printf "%d", $1 / n}')
echo "average message: $avg bytes" >&2

results="$work/results.tsv"; : > "$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$results"; printf '%-10s %s\n' "$1" "$3" >&2; }

start_dovecot() {
  dovecot_dir=$(mktemp -d "$work/dovecot.XXXXXX"); chmod 755 "$dovecot_dir"
  eval "$(IMAP_PORT=$(port) LMTP_PORT=$(port) "$peers/dovecot-start.sh" "$dovecot_dir")"
  mkdir -p "$MAILDIR"
  cp -r "$work/template/." "$MAILDIR/"
  chown -R --reference="$MAIL_ROOT" "$MAIL_ROOT"
  # Dovecot indexes 20k new files at the first SELECT: do it before anything is timed.
  $py - "$IMAP_PORT" "$IMAP_USER" "$IMAP_PASS" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); m.login(sys.argv[2], sys.argv[3])
m.select("INBOX", readonly=True); m.uid("SEARCH", None, "ALL"); m.logout()
PY
}

stop_dovecot() { "$peers/dovecot-stop.sh" "$dovecot_dir" >/dev/null 2>&1 || true; dovecot_dir=""; }

imaplib_rate() {
  IMAP_PORT=$IMAP_PORT IMAP_USER=$IMAP_USER IMAP_PASS=$IMAP_PASS $py "$peers/imap-check.py" --no-append --fetch-all --chunk 500 |
    $py -c 'import json,sys; d=json.load(sys.stdin)["fetch_all"]; print(int(d["msgs_per_s"]), d["messages"])'
}

# imaplib_take MODE: the same server work as replydesk's, without a store: fetch every
# message raw in chunks of 500 and move (UID MOVE) or flag (UID STORE) each chunk.
# Prints msg/s. It changes the mailbox: run it on a Dovecot of its own.
imaplib_take() {
  $py - "$IMAP_PORT" "$IMAP_USER" "$IMAP_PASS" "$1" <<'PY'
import imaplib, sys, time
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); m.login(sys.argv[2], sys.argv[3])
t0 = time.monotonic()
m.select("INBOX")
uids = m.uid("SEARCH", None, "ALL")[1][0].split()
if sys.argv[4] == "move":
    m.create("Processed")
n = 0
for i in range(0, len(uids), 500):
    part = b",".join(uids[i:i + 500])
    typ, fd = m.uid("FETCH", part, "(BODY.PEEK[])")
    n += sum(1 for x in fd if isinstance(x, tuple))
    if sys.argv[4] == "move":
        assert m.uid("MOVE", part, "Processed")[0] == "OK"
    else:
        assert m.uid("STORE", part, "+FLAGS.SILENT", r"(\Seen $Replydesk)")[0] == "OK"
print(int(n / (time.monotonic() - t0))); m.logout()
PY
}

# replydesk_backfill MODE: prints "<msg/s filed> <s to stored> <s to filed> <peak RSS KiB> <in INBOX after>"
replydesk_backfill() {
  local mode=$1 d="$work/rd-$RANDOM$RANDOM" processed=""
  mkdir -p "$d"
  [ "$mode" = move ] && processed='processed_mailbox = "Processed"'
  cat > "$d/replydesk.toml" <<TOML
[helpdesk]
data_dir = "$d/data"
[[address]]
email = "support@example.test"
queue = "support"
[smtp]
listen = "127.0.0.1:$(port)"
[[imap]]
server = "127.0.0.1:$IMAP_PORT"
tls = "none"
address = "support@example.test"
username = "$IMAP_USER"
password = "$IMAP_PASS"
$processed
TOML
  local t0 t_stored="" t_filed="" acc unf
  t0=$(now)
  REPLYDESK_LOG=${REPLYDESK_LOG:-warn} "$work/replydesk" serve -config "$d/replydesk.toml" ${SERVE_FLAGS:-} 2>"$d/serve.log" &
  serve_pid=$!
  for _ in $(seq 6000); do
    read -r acc unf < <("$work/replydesk" status -config "$d/replydesk.toml" -json 2>/dev/null |
      $py -c 'import json,sys; s=json.load(sys.stdin); print(s["accepted"], s["unprocessed"])' 2>/dev/null || echo "0 1")
    [ -z "$t_stored" ] && [ "$acc" -ge "$N" ] && t_stored=$(now)
    if [ "$acc" -ge "$N" ] && [ "$unf" = 0 ]; then t_filed=$(now); break; fi
    sleep 0.25
  done
  [ -n "$t_filed" ] || { echo "backfill did not finish; log:" >&2; tail -20 "$d/serve.log" >&2; exit 1; }
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$serve_pid/status)
  kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""
  [ -n "${BENCH_LOGS:-}" ] && cp "$d/serve.log" "$BENCH_LOGS/serve-$mode-$(date +%s).log"
  local left
  left=$($py - "$IMAP_PORT" "$IMAP_USER" "$IMAP_PASS" "$mode" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); m.login(sys.argv[2], sys.argv[3])
m.select("INBOX", readonly=True)
crit = "ALL" if sys.argv[4] == "move" else "UNKEYWORD $Replydesk"
print(len(m.uid("SEARCH", None, crit)[1][0].split())); m.logout()
PY
)
  echo "$(echo "$N / ($t_filed - $t0)" | bc) $(echo "$t_stored - $t0" | bc) $(echo "$t_filed - $t0" | bc) $rss $left"
}

for run in $(seq "$RUNS"); do
  echo "== run $run" >&2
  for mode in $MODES; do
    start_dovecot
    read -r irate inum < <(imaplib_rate)
    record "imaplib-$mode" "$irate" "$irate msg/s ($inum messages, raw BODY.PEEK[] fetch, chunks of 500)"
    read -r rate stored filed rss left < <(replydesk_backfill "$mode")
    record "$mode" "$rate" "$rate msg/s filed; all stored after ${stored}s, all filed after ${filed}s; peak RSS ${rss} KiB; $left left untaken in INBOX"
    stop_dovecot
    start_dovecot
    trate=$(imaplib_take "$mode")
    record "take-$mode" "$trate" "$trate msg/s (imaplib: raw fetch + UID $( [ "$mode" = move ] && echo MOVE || echo STORE ) per 500, no store)"
    stop_dovecot
  done
done

median() { awk -F'\t' -v c="$1" '$1==c {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
echo
echo "medians of $RUNS runs, $N messages of ~$avg bytes (Dovecot maildir, one mailbox):"
for mode in $MODES; do
  printf '  replydesk backfill (%s): %6s msg/s stored and threaded\n' "$mode" "$(median "$mode")"
  printf '  imaplib raw fetch:        %6s msg/s (the server'"'"'s ceiling)\n' "$(median "imaplib-$mode")"
  printf '  imaplib fetch + %-5s     %6s msg/s (the same server work, no store)\n' "$( [ "$mode" = move ] && echo MOVE: || echo STORE: )" "$(median "take-$mode")"
done
echo
echo "every run:"; cut -f1,3 "$results"
