#!/usr/bin/env bash
# Makes assets/demo_loop.mp4: the stand-in camera for shows without one. A figure sways in
# front of a warm wall while a band of window light sweeps across: enough shape and motion
# for img2img to restyle, and a seamless loop (every motion is periodic over the clip length,
# so frame 0 follows the last frame without a jump).
#
#   scripts/make_demo_video.sh [OUTPUT]   (default: assets/demo_loop.mp4; needs ffmpeg with libx264)
#
# Rendering takes ~40 s on two cores (geq evaluates the expressions per pixel); the result is
# committed, so only run this to change the clip.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-assets/demo_loop.mp4}
command -v ffmpeg >/dev/null || { echo "make_demo_video: ffmpeg not found (apt-get install ffmpeg)" >&2; exit 1; }

D=5        # seconds; the loop period of every motion below
W=640; H=360; FPS=30

P="2*PI*T/$D"                       # loop phase, 0..2pi over the clip
CX="(W/2+70*sin($P))"               # the figure sways left and right...
CY="(H*0.40+8*sin(2*$P))"           # ...and bobs a little
HEAD="lt(pow((X-$CX)/48,2)+pow((Y-$CY)/58,2),1)"
BODY="lt(pow((X-$CX)/120,2)+pow((Y-$CY-190)/130,2),1)"
PERSON="max($HEAD,$BODY)"
LIGHT="(40*exp(-pow((X-W*(0.5+0.45*sin($P+1)))/90,2)))"   # window light on the wall
R="if($PERSON,40+10*sin($P),180-50*Y/H+$LIGHT)"
G="if($PERSON,35,150-40*Y/H+$LIGHT*0.9)"
B="if($PERSON,45,110+20*Y/H+$LIGHT*0.6)"

mkdir -p "$(dirname "$OUT")"
# noise: a little sensor grain, changing every frame, so it reads as a camera, not a drawing.
ffmpeg -y -loglevel error -f lavfi -i "color=black:size=${W}x${H}:rate=${FPS}:duration=${D}" \
  -vf "geq=r='$R':g='$G':b='$B',noise=alls=5:allf=t,format=yuv420p" \
  -c:v libx264 -preset slow -crf 26 -pix_fmt yuv420p -g $FPS -movflags +faststart \
  -metadata title="Jadong demo camera loop" "$OUT"
echo "make_demo_video: wrote $OUT ($(stat -c %s "$OUT") bytes)"
