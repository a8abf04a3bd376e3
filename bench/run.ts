import { passes, type BenchResult } from './types';

/** Each bench module exports `run(): Promise<BenchResult[]>`; add new ones to this list. */
const benches: { name: string; load: () => Promise<{ run: () => Promise<BenchResult[]> }> }[] = [
  { name: 'crypto', load: () => import('./crypto') },
  { name: 'issuance', load: () => import('./issuance') },
  { name: 'callbacks', load: () => import('./callbacks') },
  { name: 'round trips', load: () => import('./round-trips') },
  { name: 'audit', load: () => import('./audit') },
  { name: 'upload', load: () => import('./upload') },
];

async function main(): Promise<void> {
  let failed = 0;
  for (const bench of benches) {
    process.stdout.write(`\n== ${bench.name}\n`);
    const results = await (await bench.load()).run();
    for (const r of results) {
      const ok = passes(r);
      if (!ok) failed++;
      const target = `${r.kind === 'min' ? '>=' : '<='} ${r.target}`;
      process.stdout.write(
        `${ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(44)} ratio ${r.ratio.toFixed(3).padStart(7)}  target ${target.padEnd(7)}  ${r.detail}\n`,
      );
    }
  }
  process.stdout.write(
    failed === 0 ? '\nall benchmarks met their targets\n' : `\n${failed} benchmark(s) missed their target\n`,
  );
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
