// End to end on a folder of MP4s made by ffmpeg: `tessera train-vae --data DIR` trains
// and writes the VAE, `tessera train-dit --data DIR` encodes the buckets, trains and
// samples a GIF, and `tessera sample` uses the result; a broken file is reported,
// --strict fails on it, and a missing ffmpeg is one clear line. Short budgets here; the
// same run with --minutes 1 is scripts/video-e2e.sh.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadVideo } from '../../lib';
import { ffmpeg, hasFfmpeg } from './video_fixtures';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vcli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const data = path.join(tmp, 'clips'), out = path.join(tmp, 'run');

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--threads', '2'], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const d = hasFfmpeg ? describe : describe.skip;
d('tessera train-vae / train-dit --data', () => {
  beforeAll(() => {
    fs.mkdirSync(data);
    const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
    for (let i = 0; i < 3; i++) {
      ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=3', '-vf', `hue=h=${120 * i}`, ...x264, path.join(data, `pattern${i}.mp4`)]);
      fs.writeFileSync(path.join(data, `pattern${i}.txt`), `a test pattern tinted ${['red', 'green', 'blue'][i]}`);
    }
    ffmpeg(['-f', 'lavfi', '-i', 'mandelbrot=size=160x120:rate=25', '-t', '3', ...x264, path.join(data, 'zoom.mp4')]);
    fs.writeFileSync(path.join(data, 'captions.jsonl'), `${JSON.stringify({ file: 'zoom.mp4', caption: 'a zoom into a fractal' })}\n`);
    fs.writeFileSync(path.join(data, 'broken.mp4'), '');
  }, 60000);

  test('train-vae then train-dit on the folder: weights, a reconstruction, latents per bucket, samples', () => {
    const vae = cli(['train-vae', '--data', data, '--quick', '--minutes', '0.25', '--out', out]);
    expect([vae.status, vae.stderr.split('\n').filter((l) => l.startsWith('tessera:'))]).toEqual([0, []]);
    expect(vae.stdout).toMatch(/warning: openVideoDataset: skipped 1 of 5 files: broken\.mp4 \(empty file \(0 bytes\)\)/);
    expect(vae.stdout).toMatch(/data: 4 videos and 0 images in .*: 16 clips in buckets 9x48x80: 16/);
    expect(vae.stdout).toMatch(/VAE: \d+ steps .*PSNR [\d.]+ dB/);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'vae-metrics.json'), 'utf8'));
    expect(metrics.steps).toBeGreaterThan(5);
    expect(metrics.clip).toEqual([3, 9, 64, 64]);
    expect(Number.isFinite(metrics.psnr)).toBe(true);
    const recon = loadVideo(path.join(out, 'vae-recon.gif'));
    expect(recon.shape.slice(0, 2)).toEqual([3, 9]);
    recon.dispose();

    const dit = cli(['train-dit', '--data', data, '--quick', '--minutes', '0.25', '--out', out]);
    expect([dit.status, dit.stderr.split('\n').filter((l) => l.startsWith('tessera:'))]).toEqual([0, []]);
    expect(dit.stdout).toMatch(/DiT: 4 latents in 1 buckets \(9x48x80: 4\); 4 distinct captions/);
    expect(dit.stdout).toMatch(/DiT: \d+ steps in \d+ s; wrote .*samples\.gif \(4 clips of 9x48x80\)/);
    const buckets = JSON.parse(fs.readFileSync(path.join(out, 'latents-data', 'buckets.json'), 'utf8'));
    expect(buckets.buckets.map((b: { key: string; count: number }) => [b.key, b.count])).toEqual([['9x48x80', 4]]);
    const gif = loadVideo(path.join(out, 'samples.gif'));
    expect(gif.shape[1]).toBe(9);
    expect(gif.shape[2]).toBeGreaterThan(48); // a 2x2 grid of 48x80 clips
    gif.dispose();

    // The result samples like a demo output; a prompt with a word no caption had is refused, naming it (issue 23: one rule with eval).
    const file = path.join(tmp, 'fractal.gif');
    const s = cli(['sample', '--checkpoint', out, '--prompt', 'a zoom into a fractal', '--size', '48x80', '--frames', '9', '--steps', '2', '--out', file]);
    expect(s.status).toBe(0);
    expect(fs.statSync(file).size).toBeGreaterThan(0);
    const purple = cli(['sample', '--checkpoint', out, '--prompt', 'a zoom into a purple fractal', '--size', '48x80', '--frames', '9', '--steps', '2', '--out', path.join(tmp, 'purple.gif')]);
    expect(purple.status).toBe(1);
    expect(purple.stderr).toMatch(/^tessera: --prompt 'a zoom into a purple fractal': the model does not know 'purple' \(it would read it as <unk>\); it knows \d+ words: /);
    expect(fs.existsSync(path.join(tmp, 'purple.gif'))).toBe(false);
  }, 150000);

  test('--strict, a missing ffmpeg and a bad folder: one line and exit 1', () => {
    const strict = cli(['train-vae', '--data', data, '--quick', '--strict', '--minutes', '0.1', '--out', path.join(tmp, 'strict')]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toMatch(/^tessera: --data .*: openVideoDataset: 1 of 5 files cannot be used \(strict\): broken\.mp4 \(empty file \(0 bytes\)\)\n$/);
    const noff = cli(['train-dit', '--data', data, '--quick', '--out', out], { TESSERA_FFMPEG: path.join(tmp, 'no-ffmpeg') });
    expect(noff.status).toBe(1);
    expect(noff.stderr).toMatch(/^tessera: --data reads videos with ffmpeg and ffprobe, a system dependency: .*no-ffmpeg not found \(Debian\/Ubuntu: apt-get install ffmpeg\)\n$/);
    const info = cli(['info'], { TESSERA_FFMPEG: path.join(tmp, 'no-ffmpeg') });
    expect(info.stdout).toMatch(/^ffmpeg: not found \(ffmpeg missing\): --data and \.mp4\/\.webm files need it/m);
    expect(cli(['info']).stdout).toMatch(/^ffmpeg: ffmpeg version \S+ \(with ffprobe\)/m);
    const none = cli(['train-vae', '--data', path.join(tmp, 'nowhere'), '--quick', '--out', path.join(tmp, 'x')]);
    expect([none.status, none.stderr]).toEqual([1, `tessera: --data ${path.join(tmp, 'nowhere')}: openVideoDataset: no such folder: ${path.join(tmp, 'nowhere')}\n`]);
  }, 60000);
});
