/** One printed figure: a measured ratio against a baseline run in the same process, and its target. */
export interface BenchResult {
  name: string;
  /** What was measured and what it was compared with, for the reader. */
  detail: string;
  ratio: number;
  target: number;
  /** 'min': ratio must be at least target; 'max': at most. */
  kind: 'min' | 'max';
}

export function passes(result: BenchResult): boolean {
  return result.kind === 'min' ? result.ratio >= result.target : result.ratio <= result.target;
}

/**
 * Runs `subject` and `baseline` in alternating rounds and keeps each one's best round, so that a
 * noisy neighbour slowing one round does not decide the ratio. Returns operations per second.
 */
export function interleaved(
  subject: () => void,
  baseline: () => void,
  options: { rounds?: number; roundMs?: number } = {},
): { subject: number; baseline: number } {
  const rounds = options.rounds ?? 6;
  const roundMs = options.roundMs ?? 250;
  const best = { subject: 0, baseline: 0 };
  for (let r = 0; r < rounds; r++) {
    for (const [key, fn] of [
      ['subject', subject],
      ['baseline', baseline],
    ] as const) {
      let ops = 0;
      const start = performance.now();
      let elapsed = 0;
      while (elapsed < roundMs) {
        fn();
        ops++;
        elapsed = performance.now() - start;
      }
      best[key] = Math.max(best[key], (ops / elapsed) * 1000);
    }
  }
  return best;
}
