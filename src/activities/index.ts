import type { Db } from 'mongodb';
import { probesRepository } from '../storage/probes';

export interface ActivityDeps {
  db: Db;
}

/** Activities are built from their dependencies: the worker passes real ones, tests may pass others. */
export function createActivities(deps: ActivityDeps) {
  const probes = probesRepository(deps.db);
  return {
    async writeAndReadProbe(probeId: string): Promise<string | undefined> {
      await probes.write(probeId);
      return probes.read(probeId);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
