/**
 * Worker memory for the soak (`scripts/soak.ts`): RSS samples per worker incarnation (each process
 * the soak starts, until it is SIGKILLed or stopped) and the rule that says whether one grows
 * without bound.
 *
 * The rule (also in docs/operations.md, "Soak"): an incarnation is judged once it has lived
 * `warmupMs` (start-up: workflow bundling, first tasks, caches filling) plus at least `minJudgedMs`
 * more. Its baseline is the median of the first six samples after the warm-up, its end the median of
 * the last six. It passes when both hold:
 *   - end <= `maxGrowthFactor` x baseline (1.5x), and
 *   - the least-squares slope over the last third of its post-warm-up samples is at most
 *     `maxSlopePerMinute` of the baseline per minute (5 %/min): memory that keeps climbing at the end
 *     of a life is a leak even when the total is still small.
 * Shorter lives are reported but not judged. The soak fails if any judged incarnation fails.
 */
import { readFileSync } from 'node:fs';

export interface RssSample {
  /** ms since the epoch */
  t: number;
  kb: number;
}

export interface Incarnation {
  n: number;
  pid: number;
  startedAt: number;
  endedAt?: number;
  /** how it ended: `SIGKILL (fault)`, `exit 1`, `stopped` */
  end?: string;
  samples: RssSample[];
}

export const RSS_RULE = {
  warmupMs: 60_000,
  minJudgedMs: 120_000,
  maxGrowthFactor: 1.5,
  maxSlopePerMinute: 0.05,
} as const;

/** VmRSS of a process in kB, from /proc/<pid>/status; undefined when it is gone (or not Linux). */
export function readRssKb(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

function slopePerMs(samples: RssSample[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mt = samples.reduce((s, p) => s + p.t, 0) / n;
  const mk = samples.reduce((s, p) => s + p.kb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of samples) {
    num += (p.t - mt) * (p.kb - mk);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface RssVerdict {
  judged: boolean;
  ok: boolean;
  /** first sample, post-warm-up baseline, end and max, kB */
  firstKb: number;
  baselineKb: number;
  endKb: number;
  maxKb: number;
  /** growth of the last third, as a fraction of the baseline per minute */
  slopePerMinute: number;
  reason: string;
}

export function judgeIncarnation(inc: Incarnation, rule = RSS_RULE): RssVerdict {
  const samples = inc.samples;
  const firstKb = samples[0]?.kb ?? 0;
  const maxKb = samples.reduce((m, s) => Math.max(m, s.kb), 0);
  const after = samples.filter((s) => s.t - inc.startedAt >= rule.warmupMs);
  const lastKb = samples[samples.length - 1]?.kb ?? 0;
  const span = after.length > 1 ? after[after.length - 1]!.t - after[0]!.t : 0;
  if (after.length < 12 || span < rule.minJudgedMs) {
    return {
      judged: false,
      ok: true,
      firstKb,
      baselineKb: after.length > 0 ? median(after.slice(0, 6).map((s) => s.kb)) : firstKb,
      endKb: lastKb,
      maxKb,
      slopePerMinute: 0,
      reason: `lived ${Math.round(((inc.endedAt ?? samples[samples.length - 1]?.t ?? inc.startedAt) - inc.startedAt) / 1000)} s: too short to judge`,
    };
  }
  const baselineKb = median(after.slice(0, 6).map((s) => s.kb));
  const endKb = median(after.slice(-6).map((s) => s.kb));
  const lastThird = after.slice(Math.floor((after.length * 2) / 3));
  const slopePerMinute = (slopePerMs(lastThird) * 60_000) / baselineKb;
  const grewTooMuch = endKb > rule.maxGrowthFactor * baselineKb;
  const stillClimbing = slopePerMinute > rule.maxSlopePerMinute;
  return {
    judged: true,
    ok: !grewTooMuch && !stillClimbing,
    firstKb,
    baselineKb,
    endKb,
    maxKb,
    slopePerMinute,
    reason: grewTooMuch
      ? `end ${mb(endKb)} > ${rule.maxGrowthFactor} x baseline ${mb(baselineKb)}`
      : stillClimbing
        ? `last third still climbing ${(slopePerMinute * 100).toFixed(1)} %/min`
        : `end/baseline ${(endKb / baselineKb).toFixed(2)}, last third ${(slopePerMinute * 100).toFixed(1)} %/min`,
  };
}

export const mb = (kb: number) => `${Math.round(kb / 1024)}MB`;
