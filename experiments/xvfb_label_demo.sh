#!/usr/bin/env bash
# Label pairs end to end in a real window: Xvfb for the display, xdotool for the keys.
# Needs Debian's xvfb, xdotool, x11-apps (xwd) and ImageMagick (convert).
#
#   bash experiments/xvfb_label_demo.sh RUN_DIR [SCREENSHOT.png]
#
# Copies RUN_DIR's store to a temporary run, opens `prefrl label` on it (new pairs of its clips),
# presses Left, Right, Down, Space, A, D, U (undo the D), Left, takes a screenshot and quits with Q;
# then prints what the store holds from the session.
set -euo pipefail
run=${1:?usage: xvfb_label_demo.sh RUN_DIR [SCREENSHOT.png]}
shot=${2:-runs/labeling_ui.png}
prefrl=${PREFRL:-prefrl}
python=${PYTHON:-python}
demo=$(mktemp -d)
cp "$run/store.sqlite" "$demo/"
Xvfb :99 -screen 0 1100x560x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$demo"' EXIT
sleep 1
export DISPLAY=:99
"$prefrl" label "$demo" --labeler xdotool --new-pairs &
app=$!
wid=""
for _ in $(seq 1 80); do
  wid=$(xdotool search --class "prefrl" 2>/dev/null | head -1 || true)
  [ -n "$wid" ] && break
  sleep 0.25
done
[ -n "$wid" ] || { echo "the labeling window did not open" >&2; exit 1; }
xdotool windowfocus --sync "$wid"
sleep 1
for key in Left Right Down space a d u Left; do xdotool key "$key"; sleep 0.4; done
sleep 0.7
mkdir -p "$(dirname "$shot")"
xwd -root -display :99 | convert xwd:- png:"$shot"
xdotool key q
wait $app
"$python" - "$demo/store.sqlite" <<'EOF'
import sys
from prefrl.store import PreferenceStore
with PreferenceStore(sys.argv[1]) as store:
    for c in store.comparisons():
        if c.source == "ui":
            print(c.id, c.status, c.preference, c.labeler)
EOF
echo "screenshot: $shot"
