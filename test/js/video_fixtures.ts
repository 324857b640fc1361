// Test videos made with the system ffmpeg (no downloads): lavfi sources (testsrc2,
// mandelbrot) in H.264 and VP9, an odd size, rotation metadata, a variable frame rate,
// an audio track, a single frame, an image, and broken files (empty, truncated).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0 && spawnSync('ffprobe', ['-version']).status === 0;

export function encoders(): string {
  return spawnSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8' }).stdout ?? '';
}

export function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr}`);
}

const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
const vp9 = ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k'];

/** What each generated file is and how the dataset should take it. */
export interface Fixture {
  name: string;
  /** null: usable; else a pattern of the reason it is skipped. */
  skip: RegExp | null;
}

/** Writes the edge-case folder into dir; returns what is in it. */
export function makeEdgeFolder(dir: string): Fixture[] {
  fs.mkdirSync(dir, { recursive: true });
  const src = (kind: 'testsrc2' | 'mandelbrot', size: string, rate: number, seconds: number): string[] =>
    kind === 'testsrc2' ? ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}:duration=${seconds}`] : ['-f', 'lavfi', '-i', `mandelbrot=size=${size}:rate=${rate}`, '-t', String(seconds)];
  const p = (f: string): string => path.join(dir, f);
  const hasVp9 = encoders().includes('libvpx-vp9');
  const out: Fixture[] = [];
  ffmpeg([...src('testsrc2', '320x240', 25, 3), ...x264, p('h264.mp4')]);
  out.push({ name: 'h264.mp4', skip: null });
  ffmpeg([...src('mandelbrot', '320x240', 25, 2), ...x264, p('mandel.mp4')]);
  out.push({ name: 'mandel.mp4', skip: null });
  if (hasVp9) {
    ffmpeg([...src('testsrc2', '240x320', 25, 2), ...vp9, p('portrait.webm')]);
    ffmpeg([...src('mandelbrot', '320x240', 25, 2), '-vf', 'scale=317:239', ...vp9, p('odd.webm')]);
    out.push({ name: 'portrait.webm', skip: null }, { name: 'odd.webm', skip: null });
  }
  // H.264 4:2:0 needs even sizes; 4:4:4 takes odd ones.
  ffmpeg([...src('testsrc2', '320x240', 25, 2), '-vf', 'scale=317:239', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv444p', p('odd.mp4')]);
  out.push({ name: 'odd.mp4', skip: null });
  // Rotation: a display matrix of 90 degrees (stream copy keeps the encoded 320x240).
  ffmpeg([...src('testsrc2', '320x240', 25, 2), ...x264, p('.rot-src.mp4')]);
  ffmpeg(['-i', p('.rot-src.mp4'), '-c', 'copy', '-metadata:s:v:0', 'rotate=90', p('rotated.mp4')]);
  fs.rmSync(p('.rot-src.mp4'));
  out.push({ name: 'rotated.mp4', skip: null });
  // Variable frame rate: 25 frames at 25 fps, then 50 at 10 fps.
  ffmpeg([...src('testsrc2', '320x240', 25, 3), '-vf', "setpts='if(lt(N,25),N/25,1+(N-25)/10)/TB'", '-fps_mode', 'vfr', ...x264, p('vfr.mp4')]);
  out.push({ name: 'vfr.mp4', skip: null });
  ffmpeg([...src('testsrc2', '320x240', 25, 2), '-f', 'lavfi', '-i', 'sine=frequency=440:duration=2', ...x264, '-c:a', 'aac', '-shortest', p('audio.mp4')]);
  out.push({ name: 'audio.mp4', skip: null });
  ffmpeg([...src('testsrc2', '320x240', 25, 1), '-frames:v', '1', ...x264, p('one-frame.mp4')]);
  out.push({ name: 'one-frame.mp4', skip: null });
  ffmpeg([...src('mandelbrot', '200x200', 25, 1), '-frames:v', '1', p('still.png')]);
  out.push({ name: 'still.png', skip: null });
  // Keyframes every 12 frames: windows can start at one (maxPreroll) and seek there.
  ffmpeg([...src('testsrc2', '320x240', 25, 3), ...x264, '-g', '12', p('gop12.mp4')]);
  out.push({ name: 'gop12.mp4', skip: null });
  if (hasVp9) {
    ffmpeg([...src('mandelbrot', '320x240', 25, 3), ...vp9, '-g', '12', p('gop12.webm')]);
    out.push({ name: 'gop12.webm', skip: null });
  }
  fs.writeFileSync(p('empty.mp4'), '');
  out.push({ name: 'empty.mp4', skip: /empty file \(0 bytes\)/ });
  // Truncated: without its moov atom (at the end) an MP4 cannot be opened; with it in
  // front (faststart) it opens but its frames stop halfway.
  const whole = fs.readFileSync(p('h264.mp4'));
  fs.writeFileSync(p('cut.mp4'), whole.subarray(0, Math.floor(whole.length / 2)));
  out.push({ name: 'cut.mp4', skip: /ffprobe cannot read it/ });
  ffmpeg(['-i', p('h264.mp4'), '-c', 'copy', '-movflags', '+faststart', p('.fs.mp4')]);
  const fsBytes = fs.readFileSync(p('.fs.mp4'));
  fs.writeFileSync(p('cut-faststart.mp4'), fsBytes.subarray(0, Math.floor(fsBytes.length / 2)));
  fs.rmSync(p('.fs.mp4'));
  out.push({ name: 'cut-faststart.mp4', skip: /truncated/ });
  fs.writeFileSync(p('h264.txt'), 'a colorful test pattern with a moving ball\n');
  fs.writeFileSync(p('captions.jsonl'), `${JSON.stringify({ file: 'mandel.mp4', caption: 'a zoom into the mandelbrot set' })}\n${JSON.stringify({ file: 'rotated.mp4', caption: 'a rotated test pattern' })}\n`);
  return out;
}

/** Every frame of a file, decoded whole, scaled to cover [h, w] and center-cropped by the same filter: RGB24 [T, h, w, 3]. */
export function fullDecode(file: string, filter: string): Buffer {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-map', '0:v:0', '-vf', filter, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`full decode of ${file} failed: ${r.stderr}`);
  return r.stdout;
}
