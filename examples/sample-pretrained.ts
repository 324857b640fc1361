// Text to video with the shipped pretrained model (assets/pretrained/: the demo's VAE
// and DiT): one prompt -> one GIF.
//   npx tsc -p examples && node examples/sample-pretrained.js [out.gif] [steps] [prompt]
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '..';
import * as demo from '../dist/demo'; // 'tessera/demo' for an installed package

function main(): void {
  const out = process.argv[2] ?? 'seven.gif';
  const steps = Number(process.argv[3] ?? 30);
  const prompt = process.argv[4] ?? 'the digit 7 moves right';
  if (!fs.existsSync(path.join(demo.PRETRAINED_DIR, 'dit.safetensors'))) {
    console.error(`sample-pretrained: no pretrained model in ${demo.PRETRAINED_DIR} (not shipped in this copy); train one with 'npx tessera demo'`);
    process.exitCode = 1;
    return;
  }
  const { vae, dit, info } = demo.loadPretrained();
  const video = demo.sampleVideos({ vae, dit, info, prompts: [prompt], frames: 17, height: 64, width: 64, steps, cfgScale: 4, seed: 0 });
  ts.saveVideo(video, out, { fps: 8 }); // [1, 1, 17, 64, 64] in [0, 1]
  console.log(`'${prompt}' (${steps} steps): ${out}`);
  [video, vae, dit].forEach((x) => x.dispose());
}

main();
