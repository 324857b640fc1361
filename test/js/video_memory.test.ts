// Bounded memory: 17-frame windows read across a 1-minute 1080p H.264 file (made here by
// ffmpeg) keep the reading process and its ffmpeg children under 500 MB. The benchmark
// script does the reading in a child process and samples its memory; the 10-minute case
// is `node benchmarks/video_data.js memory`.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ffmpeg, hasFfmpeg } from './video_fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vmem-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

(hasFfmpeg ? test : test.skip)('windows across a 1-minute 1080p file: under 500 MB', () => {
  const file = path.join(tmp, '1080p-1min.mp4');
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25:duration=60', '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '40', '-g', '50', '-pix_fmt', 'yuv420p', file]);
  const script = path.join(__dirname, '..', '..', 'benchmarks', 'video_data.js');
  const r = spawnSync(process.execPath, [script, 'memory', '--file', file, '--windows', '24', '--json'], { encoding: 'utf8', timeout: 110000 });
  if (r.status !== 0) throw new Error(`video_data.js memory failed (${r.status}): ${r.stderr}`);
  const m = JSON.parse(r.stdout.trim().split('\n').pop()!).memory;
  expect(m.frames).toBe(1500);
  expect(m.windows).toBe(48); // 24 windows through the batch iterator, 24 through the synchronous view
  expect(m.peakTreeMB).toBeGreaterThan(40); // the sampling saw the process
  expect(m.peakTreeMB).toBeLessThan(500);
}, 120000);
