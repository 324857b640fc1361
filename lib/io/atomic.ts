// Crash-safe file writing: write a temp file in the target's directory, fsync it,
// rename it over the target, fsync the directory. A process killed at any moment
// leaves either the old file or the new one, never a torn mix (POSIX rename is
// atomic within one file system; the directory fsync makes the rename durable).
import * as fs from 'fs';
import * as path from 'path';

/** Writes all of buf at the fd's current position (writeSync may write less than asked). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/** Reads exactly `length` bytes at `position` into a fresh buffer; throws if the file ends first. */
export function readExactly(fd: number, position: number, length: number, what: string): Buffer {
  const buf = Buffer.allocUnsafeSlow(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) throw new Error(`${what}: the file ended after ${position + got} bytes (expected ${position + length})`);
    got += n;
  }
  return buf;
}

/** fsyncs a directory so renames and creations inside it survive a power cut. */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch (e) {
    if (process.platform === 'win32') return; // directories cannot be opened for fsync there
    throw e;
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!(code === 'EINVAL' || code === 'EPERM' || code === 'EISDIR' || code === 'EBADF')) throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** A name for a temp sibling of `file`: hidden, unique, and tagged with our pid. */
export function tempSibling(file: string): string {
  const rand = Math.floor(Math.random() * 0x7fffffff).toString(16);
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${rand}`);
}

/**
 * Creates `file` atomically: `write(fd)` fills a temp file, which is then fsynced and
 * renamed over `file`. On any error the temp file is removed and the error rethrown.
 */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const tmp = tempSibling(file);
  let fd: number | null = fs.openSync(tmp, 'wx', 0o644);
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(path.resolve(file)));
}

/** Writes text (UTF-8) to `file` atomically, creating its directory. */
export function writeTextAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const buf = Buffer.from(text, 'utf8');
  writeFileAtomic(file, (fd) => writeAll(fd, buf));
}

/** Writes a value as JSON (indented, newline-terminated) to `file` atomically. */
export function writeJsonAtomic(file: string, value: unknown, indent = 2): void {
  writeTextAtomic(file, `${JSON.stringify(value, null, indent)}\n`);
}

/** Copies src to dst atomically (dst's directory is created). */
export function copyFileAtomic(src: string, dst: string): void {
  fs.mkdirSync(path.dirname(path.resolve(dst)), { recursive: true });
  const buf = fs.readFileSync(src);
  writeFileAtomic(dst, (fd) => writeAll(fd, buf));
}
