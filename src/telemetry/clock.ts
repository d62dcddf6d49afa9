// The clock every timer-driven component takes, so that tests can drive time.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** A monotonic reading in milliseconds, for durations. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  setInterval(fn: () => void, ms: number): Timer;
}

export interface Timer {
  cancel(): void;
  /** Lets the process exit while the timer is pending. */
  unref(): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return wrap(() => clearTimeout(t), () => t.unref());
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    return wrap(() => clearInterval(t), () => t.unref());
  },
};

function wrap(cancel: () => void, unref: () => void): Timer {
  const timer: Timer = {
    cancel,
    unref() {
      unref();
      return timer;
    },
  };
  return timer;
}

/** A clock that only moves when told: `advance(ms)` runs every timer that falls due, in order. */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void; every?: number }>();
  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }
  now(): number {
    return this.current;
  }
  monotonic(): number {
    return this.current;
  }
  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms);
  }
  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void; every?: number }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= until && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      const [id, t] = next;
      this.current = Math.max(this.current, t.at);
      if (t.every) t.at += t.every;
      else this.timers.delete(id);
      t.fn();
    }
    this.current = until;
  }
  private add(fn: () => void, ms: number, every?: number): Timer {
    const id = ++this.seq;
    this.timers.set(id, every ? { at: this.current + ms, fn, every } : { at: this.current + ms, fn });
    const timer: Timer = {
      cancel: () => void this.timers.delete(id),
      unref: () => timer,
    };
    return timer;
  }
}
