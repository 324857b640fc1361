#!/usr/bin/env bash
# The path of the README's "Training on your own videos", by hand, on a folder of MP4s
# made by ffmpeg: train-vae --data for a minute, train-dit --data for a minute, then a
# sample. (test/js/video_cli.test.ts runs the same with shorter budgets in CI.)
#   scripts/video-e2e.sh [work dir, default /tmp/tessera-video-e2e] [minutes, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/tessera-video-e2e}
minutes=${2:-1}
rm -rf "$work" && mkdir -p "$work/clips"
x264=(-c:v libx264 -preset ultrafast -pix_fmt yuv420p)
for i in 0 1 2; do
  ffmpeg -nostdin -v error -f lavfi -i "testsrc2=size=320x240:rate=25:duration=4" -vf "hue=h=$((120 * i))" "${x264[@]}" "$work/clips/pattern$i.mp4"
  echo "a test pattern tinted $(echo red green blue | cut -d' ' -f$((i + 1)))" > "$work/clips/pattern$i.txt"
done
ffmpeg -nostdin -v error -f lavfi -i "mandelbrot=size=240x320:rate=25" -t 4 "${x264[@]}" "$work/clips/zoom.mp4"
echo "a zoom into a fractal" > "$work/clips/zoom.txt"
npx tsc -p tsconfig.json
cli=(node dist/cli/main.js)
time "${cli[@]}" train-vae --data "$work/clips" --quick --minutes "$minutes" --out "$work/run"
time "${cli[@]}" train-dit --data "$work/clips" --quick --minutes "$minutes" --out "$work/run"
"${cli[@]}" sample --checkpoint "$work/run" --prompt "a test pattern tinted green" --size 48x80 --frames 9 --steps 8 --out "$work/sample.gif"
ls -l "$work/run" "$work/sample.gif"
