// Ctrl-C for long CLI commands: an AbortSignal that fires on SIGINT, also noticed by
// poll() inside synchronous work (latent encoding, sampling) that holds the event loop.
// The native handler only records the signal (interrupt_napi.cc); poll() (called between
// steps) and a 100 ms timer turn the record into an abort. A second Ctrl-C terminates
// at once, even in synchronous work.
import { native } from '../native';

export interface Interrupt {
  readonly signal: AbortSignal;
  /** Aborts the signal if SIGINT arrived; cheap enough to call every step. */
  poll(): void;
  /** Whether SIGINT arrived (polls first). */
  readonly interrupted: boolean;
  /** Stops the timer (the handler stays: a later Ctrl-C is recorded, a second one kills). */
  dispose(): void;
}

export function onInterrupt(): Interrupt {
  native.interruptInstall();
  const ac = new AbortController();
  const poll = (): void => {
    if (!ac.signal.aborted && native.interruptPending()) ac.abort(new Error('interrupted (SIGINT)'));
  };
  const timer = setInterval(poll, 100);
  timer.unref();
  return {
    signal: ac.signal,
    poll,
    get interrupted() {
      poll();
      return ac.signal.aborted;
    },
    dispose: () => clearInterval(timer),
  };
}
