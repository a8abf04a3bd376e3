import { deliveryLog } from '../../src/api/delivery-log';
import { createLogger } from '../../src/observability/logger';
import { authorizationsRepository, type DeliveryDoc } from '../../src/storage/authorizations';
import { eventually } from './callbacks-harness';
import { callbackConfig, openDb } from '../support/system';

describe('delivery log (counts of deliveries per authorization)', () => {
  it('a batch written twice counts each delivery once', async () => {
    const store = await openDb(await callbackConfig());
    const { db } = store;
    try {
      const repo = authorizationsRepository(db);
      const at = new Date();
      const batch: DeliveryDoc[] = ['a', 'b', 'c'].map((n) => ({
        _id: `d-${n}`,
        authorizationId: 'auth-1',
        path: 'duplicate',
        at,
      }));
      await repo.logDeliveries(batch.slice(0, 2)); // a partial write...
      await repo.logDeliveries(batch); // ...then the whole batch again
      expect(await repo.countDeliveries('auth-1')).toBe(3);
    } finally {
      await db.dropDatabase();
      await store.close();
    }
  });

  it('keeps a batch the database refused and writes it once the database answers again', async () => {
    const store = await openDb(await callbackConfig());
    const { db } = store;
    try {
      const repo = authorizationsRepository(db);
      let outage = true;
      const flaky = {
        logDeliveries: (batch: DeliveryDoc[]) =>
          outage ? Promise.reject(new Error('database unavailable')) : repo.logDeliveries(batch),
        logFirstDelivery: (id: string, messageId: string | undefined, at: Date) =>
          repo.logFirstDelivery(id, messageId, at),
      };
      const log = deliveryLog(flaky, createLogger({ level: 'silent', name: 'test' }), {
        intervalMs: 10,
        maxBatch: 1_000,
        maxBuffered: 100_000,
        retryMs: 50,
      });
      for (let i = 0; i < 25; i += 1) log.record({ authorizationId: 'auth-2', path: 'duplicate', at: new Date() });
      await log.flush();
      expect(await repo.countDeliveries('auth-2')).toBe(0);
      outage = false;
      expect(
        await eventually(
          () => repo.countDeliveries('auth-2'),
          (n) => n === 25,
        ),
      ).toBe(25);
      await log.close();
    } finally {
      await db.dropDatabase();
      await store.close();
    }
  });
});
