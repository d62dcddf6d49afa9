// Small shared hooks: a clock that ticks for "seen 5s ago", and a value computed by a promise.
import { useEffect, useState } from 'preact/hooks';

export function useNow(intervalMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

/** The latest result of `compute` for `deps`; undefined until the first one resolves. Stale results are dropped. */
export function useAsync<T>(compute: () => Promise<T>, deps: readonly unknown[]): T | undefined {
  const [value, setValue] = useState<T | undefined>(undefined);
  useEffect(() => {
    let current = true;
    compute().then(
      (result) => {
        if (current) setValue(() => result);
      },
      () => {
        if (current) setValue(undefined);
      },
    );
    return () => {
      current = false;
    };
  }, deps);
  return value;
}
