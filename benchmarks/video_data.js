#!/usr/bin/env node
// The streaming video dataset (lib/data/video_dataset.ts) on files made by ffmpeg:
//   memory  RSS of reading 17-frame windows across a long 1080p H.264 file: the peak of
//           the reading process plus its ffmpeg children (PSS summed), sampled every 20 ms
//           (default a 10-minute file; test/js/video_memory.test.ts runs 1 minute).
//   decode  clips per second decoding 17x256x256 windows from 720p H.264 (x264 defaults:
//           keyframes every 250 frames), through the batch iterator with its workers.
//   train   the VAE training step (trainVAE) fed by the dataset (windows anywhere, and at
//           keyframes) against the same step on clips held in memory; interleaved rounds.
//   node benchmarks/video_data.js [memory|decode|train|all] [--minutes 10] [--windows 64]
//        [--seconds 30] [--steps 8] [--rounds 3] [--threads N] [--nice 10] [--file F] [--json]
// (needs dist/ from `npm run build:ts`, and ffmpeg; files go to $TMPDIR/tessera-video-bench.)
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);
const lib = () => require(path.join(__dirname, '..', 'dist'));
const work = path.join(os.tmpdir(), 'tessera-video-bench');

function ffmpeg(a) {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...a], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${a.join(' ')}: ${r.stderr}`);
}

/** A testsrc2 H.264 file (kept between runs). */
function makeFile(name, size, rate, seconds, extra) {
  fs.mkdirSync(work, { recursive: true });
  const f = path.join(work, name);
  if (!fs.existsSync(f)) {
    const t0 = Date.now();
    ffmpeg(['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}:duration=${seconds}`, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', ...extra, f]);
    process.stderr.write(`made ${f} (${(fs.statSync(f).size / 2 ** 20).toFixed(0)} MB) in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  return f;
}

/**
 * kB of memory of a process and all its descendants (Linux /proc): the sum of each one's
 * PSS (resident pages, shared ones split between their sharers), so a child caught between
 * fork and exec (a copy of its parent's pages) is not counted twice; VmRSS where
 * smaps_rollup is missing.
 */
function treeRssKb(root) {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch {} // gone meanwhile
  }
  let kb = 0;
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
        if (m) kb += Number(m[1]);
      } catch {} // gone meanwhile
    }
    stack.push(...(kids.get(p) ?? []));
  }
  return kb;
}

// --- memory -----------------------------------------------------------------------

/** Child: reads `windows` 17x256x256 windows spread over the file (batches, then the synchronous view). */
async function memoryChild(file, windows) {
  const ts = lib();
  const ds = await ts.openVideoDataset([file], { buckets: { sizes: [[256, 256]], frames: [17] }, clipsPerVideo: windows, index: false, workers: 2 });
  const t0 = Date.now();
  let clips = 0;
  for await (const b of ds.batches({ batchSize: 4 })) clips += b.shape[0];
  const view = ds.bucketDataset('17x256x256', { epoch: 1 });
  for (let i = 0; i < view.length; i++) view.get(i), clips++;
  await ds.close();
  process.stdout.write(JSON.stringify({ clips, seconds: (Date.now() - t0) / 1000, frames: ds.entries[0].frames, nodeMaxRssKb: process.resourceUsage().maxRSS }) + '\n');
}

async function memory(file, windows) {
  const child = spawn(process.execPath, [__filename, '--memory-child', file, String(windows)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '', peak = 0;
  child.stdout.on('data', (d) => (out += d));
  const timer = setInterval(() => (peak = Math.max(peak, treeRssKb(child.pid))), 20);
  const code = await new Promise((r) => child.on('exit', r));
  clearInterval(timer);
  if (code !== 0) throw new Error(`memory child exited with ${code}`);
  const r = JSON.parse(out.trim().split('\n').pop());
  return { file: path.basename(file), windows: r.clips, seconds: r.seconds, frames: r.frames, peakTreeMB: peak / 1024, nodeMaxRssMB: r.nodeMaxRssKb / 1024 };
}

// --- decode -----------------------------------------------------------------------

async function decode(file, seconds, workers, maxPreroll) {
  const ts = lib();
  const ds = await ts.openVideoDataset([file], { buckets: { sizes: [[256, 256]], frames: [17] }, clipsPerVideo: 64, index: false, workers, prefetch: 16, maxPreroll });
  let clips = 0;
  const t0 = Date.now();
  outer: for (let e = 0; ; e++) {
    ds.setEpoch(e);
    for await (const b of ds.batches({ batchSize: 4 })) {
      clips += b.shape[0];
      if (Date.now() - t0 > seconds * 1000) break outer;
    }
  }
  const s = (Date.now() - t0) / 1000;
  await ds.close();
  return { workers, starts: maxPreroll === 0 ? 'keyframes' : 'anywhere', clips, seconds: s, clipsPerSecond: clips / s };
}

// --- train ------------------------------------------------------------------------

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function train(file, steps, rounds) {
  const ts = lib();
  if (opt('threads')) ts.setNumThreads(Number(opt('threads')));
  const open = (maxPreroll) =>
    ts.openVideoDataset([file], {
      buckets: { sizes: [[256, 256]], frames: [17] }, clipsPerVideo: 48, index: false, workers: 2, decodeNice: Number(opt('nice', 10)), maxPreroll,
    });
  const any = await open(undefined), key = await open(0);
  const views = { anywhere: any.fixedDataset({ frames: 17, size: 256 }), keyframes: key.fixedDataset({ frames: 17, size: 256 }) };
  // The same clips (those starting anywhere) in memory: decoded once, up front.
  const mem = Array.from({ length: views.anywhere.length }, (_, i) => views.anywhere.get(i));
  const inMemory = { length: mem.length, shape: views.anywhere.shape, get: (i) => mem[i] };
  const config = {
    inChannels: 3, latentChannels: 4, baseChannels: 16, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 4, numGroups: 8,
  };
  const B = 2, crop = { frames: 17, size: 128 };
  const run = async (data, seed) => {
    ts.manualSeed(0);
    const vae = new ts.VideoVAE(config);
    const times = [];
    let last = process.hrtime.bigint();
    await ts.trainVAE({
      model: vae, data, steps, batchSize: B, lr: 1e-4, crop, seed, initOutputBias: false,
      onStep: () => {
        const now = process.hrtime.bigint();
        times.push(Number(now - last) / 1e9);
        last = now;
      },
    });
    vae.dispose();
    return median(times.slice(2)); // steps 1-2 warm caches
  };
  const res = { memory: [], anywhere: [], keyframes: [] };
  for (let r = 0; r < rounds; r++) {
    // A new seed per round: the dataset sides never find their clips decoded already.
    res.memory.push(await run(inMemory, 100 + r));
    res.anywhere.push(await run(views.anywhere, 200 + r));
    res.keyframes.push(await run(views.keyframes, 300 + r));
  }
  await any.close();
  await key.close();
  const ratio = (side) => median(res[side].map((t, r) => t / res.memory[r])); // per round: the load changes between rounds
  return {
    batch: B, clip: views.anywhere.shape, crop, steps, rounds, threads: ts.getNumThreads(), raw: res,
    inMemorySec: median(res.memory), anywhereSec: median(res.anywhere), keyframesSec: median(res.keyframes),
    anywhereRatio: ratio('anywhere'), keyframesRatio: ratio('keyframes'),
  };
}

async function main() {
  if (args[0] === '--memory-child') return memoryChild(args[1], Number(args[2]));
  const what = args[0] && !args[0].startsWith('--') ? args[0] : 'all';
  const ts = lib();
  const cpu = (spawnSync('lscpu', { encoding: 'utf8' }).stdout.match(/Model name:\s*(.*)/) ?? [])[1] ?? os.cpus()[0].model;
  const out = { date: new Date().toISOString(), cpu, cores: os.cpus().length, threads: ts.getNumThreads(), ffmpeg: ts.findFfmpeg().version };
  if (what === 'memory' || what === 'all') {
    const minutes = Number(opt('minutes', 10));
    const file = opt('file') ?? makeFile(`1080p-${minutes}min.mp4`, '1920x1080', 25, Math.round(minutes * 60), ['-preset', 'ultrafast', '-crf', '40', '-g', '50']);
    out.memory = await memory(file, Number(opt('windows', 64)));
  }
  const file720 = () => opt('file') ?? makeFile('720p-2min.mp4', '1280x720', 30, 120, ['-preset', 'veryfast']);
  if (what === 'decode' || what === 'all') {
    const seconds = Number(opt('seconds', 30));
    out.decode = [];
    for (const w of [1, 2]) for (const p of [undefined, 0]) out.decode.push(await decode(file720(), seconds, w, p));
  }
  if (what === 'train' || what === 'all') out.train = await train(file720(), Number(opt('steps', 8)), Number(opt('rounds', 3)));
  if (flag('json')) return console.log(JSON.stringify(out));
  console.log(`${out.date} | ${out.cpu} | ${out.cores} cores, ${out.threads} threads | ${out.ffmpeg}`);
  if (out.memory) {
    const m = out.memory;
    console.log(`\nmemory: ${m.windows} windows of 17x256x256 across ${m.file} (${m.frames} frames) in ${m.seconds.toFixed(1)} s`);
    console.log(`| peak RSS, node + ffmpeg children (PSS sum) | peak RSS, node alone (maxRSS) |\n|---|---|\n| ${m.peakTreeMB.toFixed(0)} MB | ${m.nodeMaxRssMB.toFixed(0)} MB |`);
  }
  if (out.decode) {
    console.log('\ndecode: 17x256x256 windows from 720p H.264 (30 fps, keyframe every 250 frames)\n| workers | windows start | clips | seconds | clips/s |\n|---|---|---|---|---|');
    for (const d of out.decode) console.log(`| ${d.workers} | ${d.starts} | ${d.clips} | ${d.seconds.toFixed(1)} | ${d.clipsPerSecond.toFixed(2)} |`);
  }
  if (out.train) {
    const t = out.train;
    console.log(`\ntrain: trainVAE step, batch ${t.batch} of [${t.clip.join(', ')}] clips cropped to ${t.crop.frames}x${t.crop.size}x${t.crop.size}; median step of steps 3-${t.steps}, ${t.rounds} interleaved rounds, ${t.threads} compute thread${t.threads > 1 ? 's' : ''}`);
    console.log('| data | s/step (median of rounds) | / in memory (median of per-round ratios) |\n|---|---|---|');
    console.log(`| in memory | ${t.inMemorySec.toFixed(3)} | 1 |`);
    console.log(`| dataset, windows start anywhere (2 workers) | ${t.anywhereSec.toFixed(3)} | ${t.anywhereRatio.toFixed(3)}x |`);
    console.log(`| dataset, windows start at keyframes (maxPreroll 0) | ${t.keyframesSec.toFixed(3)} | ${t.keyframesRatio.toFixed(3)}x |`);
    console.log(`rounds (s/step): ${JSON.stringify(t.raw)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
