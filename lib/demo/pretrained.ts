// The pretrained Moving MNIST model shipped in assets/pretrained/: the demo VAE and the
// text encoder + DiT, weights in 8-bit rows (lib/io/quantize.ts) to stay small, with
// their configs and the sampling info in the safetensors metadata, and the metrics of
// the run that produced them in metrics.json.
import * as fs from 'fs';
import * as path from 'path';
import { writeAll, writeFileAtomic } from '../io/atomic';
import { dequantizeStateDict, quantizeStateDict } from '../io/quantize';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { DiT, DiTConfig } from '../models/dit';
import { VideoVAE, VideoVAEConfig } from '../models/vae';
import { Module } from '../nn/module';
import { Tensor, tidy } from '../tensor';
import { SamplingInfo } from './dit_stage';

export const PRETRAINED_DIR = path.resolve(__dirname, '..', '..', 'assets', 'pretrained');
const CONFIG = 'tessera.pretrained.config';
const INFO = 'tessera.pretrained.sampling';

export interface Pretrained {
  vae: VideoVAE;
  dit: DiT;
  info: SamplingInfo;
  metrics: unknown;
  dir: string;
}

function saveModule(file: string, m: Module, config: unknown, extra: Record<string, string> = {}): void {
  tidy(() => saveSafetensors(file, quantizeStateDict(m.stateDict()), { ...extra, [CONFIG]: JSON.stringify(config), format: 'tessera-q8-rows' }));
}

function loadModule<M extends Module>(file: string, make: (config: unknown) => M): { model: M; metadata: Record<string, string> } {
  if (!fs.existsSync(file)) throw new Error(`loadPretrained: ${file} does not exist`);
  const st = loadSafetensors(file);
  try {
    const json = st.metadata[CONFIG];
    if (!json) throw new Error(`loadPretrained: ${file} has no '${CONFIG}' metadata (was it written by savePretrained?)`);
    const model = make(JSON.parse(json));
    tidy(() => {
      const sd: Record<string, Tensor> = dequantizeStateDict(st.tensors);
      model.loadStateDict(sd);
    });
    model.eval();
    return { model, metadata: st.metadata };
  } finally {
    for (const t of Object.values(st.tensors)) t.dispose();
  }
}

/** Writes vae.safetensors, dit.safetensors and metrics.json into dir (each atomically). */
export function savePretrained(dir: string, p: { vae: VideoVAE; dit: DiT; info: SamplingInfo; metrics: unknown }): void {
  fs.mkdirSync(dir, { recursive: true });
  saveModule(path.join(dir, 'vae.safetensors'), p.vae, p.vae.config);
  saveModule(path.join(dir, 'dit.safetensors'), p.dit, p.dit.config, { [INFO]: JSON.stringify(p.info) });
  const buf = Buffer.from(`${JSON.stringify(p.metrics, null, 2)}\n`, 'utf8');
  writeFileAtomic(path.join(dir, 'metrics.json'), (fd) => writeAll(fd, buf));
}

/** Loads a model written by savePretrained (default: the one shipped with the package). */
export function loadPretrained(dir: string = PRETRAINED_DIR): Pretrained {
  const vae = loadModule(path.join(dir, 'vae.safetensors'), (c) => new VideoVAE(c as VideoVAEConfig)).model;
  try {
    const { model: dit, metadata } = loadModule(path.join(dir, 'dit.safetensors'), (c) => new DiT(c as DiTConfig));
    const info = JSON.parse(metadata[INFO] ?? 'null') as SamplingInfo | null;
    if (!info) throw new Error(`loadPretrained: ${path.join(dir, 'dit.safetensors')} has no sampling info ('${INFO}')`);
    const mf = path.join(dir, 'metrics.json');
    const metrics = fs.existsSync(mf) ? (JSON.parse(fs.readFileSync(mf, 'utf8')) as unknown) : null;
    return { vae, dit, info, metrics, dir };
  } catch (e) {
    vae.dispose();
    throw e;
  }
}
