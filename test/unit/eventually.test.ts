import { eventually } from '../support/eventually';

describe('eventually', () => {
  it('resolves with the first value the predicate accepts, polling until then', async () => {
    let n = 0;
    expect(
      await eventually(
        () => ++n,
        (v) => v === 3,
        { intervalMs: 1 },
      ),
    ).toBe(3);
    expect(n).toBe(3);
  });

  it('polls once even with no time to spare', async () => {
    expect(
      await eventually(
        () => Promise.resolve('ready'),
        (v) => v === 'ready',
        0,
      ),
    ).toBe('ready');
  });

  it('at the deadline, throws naming what it awaited and the last value seen', async () => {
    let n = 0;
    const started = Date.now();
    await expect(
      eventually(
        () => ({ seen: ++n }),
        () => false,
        { what: 'the moon', timeoutMs: 30, intervalMs: 5 },
      ),
    ).rejects.toThrow(/^timed out after 30 ms waiting for the moon; last value seen: \{"seen":\d+\}$/);
    expect(n).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('without `what`, names the predicate', async () => {
    await expect(
      eventually(
        () => 1,
        (v) => v > 1,
        0,
      ),
    ).rejects.toThrow(/waiting for \(v\) ?=> ?v > 1; last value seen: 1$/);
  });

  it('lets a probe error through', async () => {
    await expect(
      eventually(
        () => {
          throw new Error('probe broke');
        },
        () => true,
      ),
    ).rejects.toThrow('probe broke');
  });
});
