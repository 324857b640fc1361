// One quick conv3d timing (not a benchmark suite): B=1, C=64->64, T=8, H=W=32, k=3,
// padding 1, through the native addon. Prints ms and GFLOP/s for forward and for
// forward+backward (dinp, dweight, dbias). Flops: 2*B*Cout*T'*H'*W'*Cin*27 forward,
// 3x that for forward+backward. Usage: node benchmarks/conv3d_quick.js [B C T H W]
const path = require('path');
const native = require(process.env.TESSERA_ADDON || path.join(__dirname, '..', 'build', 'Release', 'tessera.node'));

const [B, C, T, H, W] = process.argv.slice(2).map(Number).concat([1, 64, 8, 32, 32].slice(process.argv.length - 2));
const x = native.randn([B, C, T, H, W], 'float32', 'cpu');
const w = native.randn([C, C, 3, 3, 3], 'float32', 'cpu');
const b = native.randn([C], 'float32', 'cpu');
const args = [[1, 1, 1], [1, 1, 1], false, 'zeros'];
const fwdFlops = 2 * B * C * T * H * W * C * 27;

function time(fn, reps) {
  fn(); // warm up
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((p, q) => p - q);
  return times[0]; // best of reps: the least disturbed by other work on the machine
}

const fwd = time(() => native.dispose(native.conv3d(x, w, b, ...args)), 10);
const both = time(() => {
  const y = native.conv3d(x, w, b, ...args);
  for (const g of native.conv3dBackward(y, x, w, ...args, [true, true, true])) native.dispose(g);
  native.dispose(y);
}, 10);
console.log(`conv3d B=${B} C=${C}->${C} T=${T} H=${H} W=${W} k=3 pad=1, ${native.getNumThreads()} threads`);
console.log(`forward:          ${fwd.toFixed(2)} ms  ${(fwdFlops / fwd / 1e6).toFixed(1)} GFLOP/s`);
console.log(`forward+backward: ${both.toFixed(2)} ms  ${((3 * fwdFlops) / both / 1e6).toFixed(1)} GFLOP/s`);
