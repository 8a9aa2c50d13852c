#!/usr/bin/env bash
# bench/outbound.sh [RUNS] — delivery benchmark: 20,000 queued confirmations delivered
# with connection reuse to Postfix's smtp-sink, and the sink's own ceiling measured in
# the same run (smtp-source -d -s 8 -m 20000 straight into it). Needs postfix (for
# smtp-sink and smtp-source) and ../shared/peers/sink-start.sh beside the repo.
set -euo pipefail
RUNS=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
peers="$repo/../shared/peers"
PATH="$PATH:/usr/sbin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
eval "$(SINK_PORT=$port "$peers/sink-start.sh")"
trap '"$peers/sink-stop.sh" >/dev/null 2>&1 || true' EXIT
for run in $(seq "$RUNS"); do
  t0=$(date +%s.%N)
  smtp-source -d -s 8 -m 20000 -l 2048 -f support@example.test -t c@example.com "127.0.0.1:$SINK_PORT" >/dev/null
  t1=$(date +%s.%N)
  echo "sink ceiling (smtp-source -d -s 8): $(echo "20000 / ($t1 - $t0)" | bc) mails/s"
done
cd "$repo" && REPLYDESK_SINK="127.0.0.1:$SINK_PORT" go test -run XXX -bench Delivery -benchtime 1x -count "$RUNS" ./mailout | grep -E "mails/s"
