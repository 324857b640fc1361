// Bad input never crashes the process: every call below raises a JS Error whose
// message names the op and says what was expected and what came.
import { execFileSync } from 'child_process';
import * as path from 'path';
import * as ts from '../../lib';

const a = ts.keep(ts.ones([2, 3]));
const c = ts.keep(ts.ones([4, 5]));
const i32 = ts.keep(ts.tensor([1, 2], { dtype: 'int32' }));
const gone = ts.ones([2]);
gone.dispose();
const any = (v: unknown): any => v;

// [what, call, pattern the message must match]
const cases: [string, () => unknown, RegExp][] = [
  ['tensor of a string', () => ts.tensor(any('abc')), /^tensor: expected a number, nested array or typed array, got string/],
  ['ragged nested array', () => ts.tensor([[1, 2], [3]] as any), /^tensor: ragged nested array: expected 2 elements at \[1\], got 1/],
  ['shape vs data length', () => ts.tensor([1, 2, 3], { shape: [2, 2] }), /^tensor: shape \[2, 2\] needs 4 values, got 3/],
  ['unknown dtype', () => ts.tensor([1], { dtype: any('float8') }), /^tensor: unknown dtype 'float8'/],
  ['unknown device', () => ts.tensor([1], { device: any('tpu') }), /^tensor: unknown device 'tpu'/],
  ['non-number in array', () => ts.tensor([1, any('x')]), /^tensor: expected a number at \[1\], got string/],
  ['unsupported typed array', () => ts.tensor(any(new Int16Array(2))), /^tensor: unsupported typed array Int16Array/],
  ['options not an object', () => ts.zeros([2], any(5)), /^full: expected an options object, got number/],
  ['negative size', () => ts.zeros([-1, 2]), /^full: expected a shape of non-negative integers, got \[-1, 2\]/],
  ['fractional size', () => ts.zeros([2.5]), /^full: expected a shape of non-negative integers/],
  ['shape not an array', () => ts.zeros(any('3')), /^full: expected a shape \(array of sizes\), got string/],
  ['fill value not a number', () => ts.full([2], any('x')), /^full: expected a number fill value, got string/],
  ['arange step 0', () => ts.arange(0, 10, 0), /^arange: step must not be 0/],
  ['arange NaN', () => ts.arange(NaN), /^arange: expected a finite end, got NaN/],
  ['requiresGrad not boolean', () => ts.randn([2], { requiresGrad: any('yes') }), /^randn: expected requiresGrad to be a boolean, got string/],
  ['requiresGrad on ints', () => ts.zeros([2], { dtype: 'int32', requiresGrad: true }), /^full: requiresGrad needs a floating dtype, got int32/],
  ['negative seed', () => ts.manualSeed(-1), /^manualSeed: expected an integer seed in \[0, 2\^53\), got -1/],
  ['fractional seed', () => ts.manualSeed(1.5), /^manualSeed: expected an integer seed/],
  ['non-broadcastable add', () => a.add(c), /^add: shapes \[2, 3\] and \[4, 5\] are not broadcastable/],
  ['add a string', () => a.add(any('x')), /^add: expected the second argument to be a Tensor, got string/],
  ['mul null', () => a.mul(any(null)), /^mul: expected the second argument to be a Tensor, got null/],
  ['two numbers', () => ts.add(any(1), any(2)), /^add: expected at least one Tensor, got two numbers/],
  ['matmul inner mismatch', () => a.matmul(c), /^matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\] \(3 vs 4\)/],
  ['matmul of a scalar', () => ts.tensor(1).matmul(a), /^matmul: expected inputs of rank >= 1/],
  ['reshape to wrong size', () => a.reshape([7]), /^reshape: cannot reshape a tensor of shape \[2, 3\] \(6 elements\) into \[7\]/],
  ['reshape two -1', () => a.reshape([-1, -1]), /^reshape: only one dimension can be -1/],
  ['reshape non-integers', () => a.reshape(any([2, 'x'])), /^reshape: expected shape to be an array of integers/],
  ['permute repeats', () => a.permute([0, 0]), /^permute: dims \[0, 0\] repeat an axis/],
  ['permute wrong length', () => a.permute([0]), /^permute: expected 2 dims for a tensor of shape \[2, 3\], got \[0\]/],
  ['transpose axis out of range', () => a.transpose(0, 3), /^transpose: axis 3 is out of range for a tensor of rank 2/],
  ['sum axis out of range', () => a.sum(5), /^sum: axis 5 is out of range for a tensor of rank 2/],
  ['sum repeated axes', () => a.sum([0, 0]), /^sum: axes \[0, 0\] repeat/],
  ['mean non-integer axis', () => a.mean(any(0.5)), /^mean: expected an integer axis, got number 0.5/],
  ['slice step 0', () => a.slice(0, 0, 2, 0), /^slice: expected a positive step, got 0/],
  ['slice bad axis', () => a.slice(9, 0, 1), /^slice: axis 9 is out of range/],
  ['chunk 0', () => a.chunk(0), /^chunk: expected a positive integer count, got 0/],
  ['cat of nothing', () => ts.cat([]), /^cat: expected a non-empty array of tensors, got an empty array/],
  ['cat mismatch', () => ts.cat([a, c], 0), /^cat: expected shapes equal except on axis 0, got \[2, 3\] and \[4, 5\]/],
  ['cat non-tensor', () => ts.cat([a, any(3)]), /^cat: expected tensor 1 to be a Tensor, got number/],
  ['stack different shapes', () => ts.stack([a, c]), /^stack: expected tensors of one shape, tensor 0 is \[2, 3\] and tensor 1 is \[4, 5\]/],
  ['expand incompatible', () => a.expand([4, 3]), /^expand: cannot expand shape \[2, 3\] to \[4, 3\]/],
  ['squeeze a non-1 axis', () => a.squeeze(0), /^squeeze: axis 0 has size 2, expected 1/],
  ['to an unknown dtype', () => a.to(any('float8')), /^to: unknown dtype or device 'float8'/],
  ['to cuda without a device', () => a.to('cuda'), /^to: device cuda:0 is not available/],
  ['disposed tensor in math', () => gone.add(1), /^add: the first argument is a disposed tensor/],
  ['disposed tensor read', () => gone.toArray(), /^(tensor|dataSync): got a disposed tensor/],
  ['exp of int32', () => i32.exp(), /^exp: expected input of dtype float32, got int32 \(convert with .to\('float32'\)\)/],
  ['item of many', () => a.item(), /^item: expected a tensor with one element, got shape \[2, 3\]/],
  ['backward of non-scalar', () => a.mul(ts.ones([2, 3], { requiresGrad: true })).backward(), /^backward: a gradient can be implied only for a one-element output, got shape \[2, 3\]/],
  ['backward without grad', () => a.sum().backward(), /^backward: the tensor does not require grad/],
  ['backward grad shape', () => ts.ones([3], { requiresGrad: true }).mul(2).backward(ts.ones([4])), /^backward: expected grad of shape \[3\], got \[4\]/],
  ['tidy of a number', () => ts.tidy(any(123)), /^tidy: expected a function, got number/],
  ['tidy returning a promise', () => ts.tidy(() => Promise.resolve(1)), /^tidy: fn returned a Promise/],
  ['setNumThreads 0', () => ts.setNumThreads(0), /^setNumThreads: expected a positive integer, got 0/],
  ['requiresGrad_ on ints', () => i32.requiresGrad_(), /^requiresGrad_: expected a floating tensor, got int32/],
  ['linear shape mismatch', () => ts.F.linear(a, c), /^linear: input's last dim must equal weight's in features 5, got input \[2, 3\]/],
  ['linear bias shape', () => ts.F.linear(a, ts.ones([4, 3]), ts.ones([3])), /^linear: expected bias of shape \[4\], got \[3\]/],
  ['gelu approximate', () => ts.F.gelu(a, any({ approximate: 'fast' })), /^gelu: expected approximate 'none' or 'tanh', got 'fast'/],
  ['checkpoint of a non-function', () => ts.checkpoint(any(1), a), /^checkpoint: expected a function, got number/],
];

describe('bad input gives clear errors', () => {
  test('there are at least 40 distinct bad calls', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
  });
  test.each(cases)('%s', (_what, call, pattern) => {
    let err: unknown;
    try {
      call();
    } catch (e) {
      err = e;
    }
    // By tag: errors raised in the addon come from Node's main realm, not jest's.
    expect(Object.prototype.toString.call(err)).toBe('[object Error]');
    expect((err as Error).message).toMatch(pattern);
  });
  test('the process is still alive and computing after all of them', () => {
    expect(a.add(1).sum().item()).toBe(12);
  });
  test('a raw native call with garbage arguments is an Error, not a crash', () => {
    // Runs in a child so that even a crash could not take the test runner down.
    const script = `
      const { native } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist', 'native.js'))});
      const bad = [() => native.binary('add', {}, 3), () => native.reshape(null, [1]), () => native.unary('nope', native.full([1], 1, 'float32', 'cpu')),
                   () => native.full([1e10, 1e10], 0, 'float32', 'cpu'), () => native.slice(native.full([2], 1, 'float32', 'cpu'), 0, 0, 1, -1),
                   () => native.fromData(new Float32Array(3), [2], 'float32', 'cpu'), () => native.read(native.full([1], 1, 'float32', 'cpu'), 'int8')];
      let n = 0; for (const f of bad) { try { f(); } catch (e) { if (e instanceof Error && /: /.test(e.message)) n++; } }
      console.log(n);`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(out.trim()).toBe('7');
  });
});
