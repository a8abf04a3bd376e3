import type { Db } from 'mongodb';
import { probesRepository } from '../storage/probes';
import { createAuthorizationActivities, type AuthorizationActivityDeps } from './authorization';
import { createIssuanceActivities, type IssuanceActivityDeps } from './issuance';

export interface ActivityDeps {
  db: Db;
  /** the issuance pipeline's dependencies (keyring, platform client, Partner JWTs, settings) */
  issuance: Omit<IssuanceActivityDeps, 'db'>;
  /** the authorization pipeline's dependencies (schema registry, notify target) */
  authorization: Omit<AuthorizationActivityDeps, 'db'>;
}

/** Activities are built from their dependencies: the worker passes real ones, tests may pass others. */
export function createActivities(deps: ActivityDeps) {
  const probes = probesRepository(deps.db);
  return {
    ...createIssuanceActivities({ db: deps.db, ...deps.issuance }),
    ...createAuthorizationActivities({ db: deps.db, ...deps.authorization }),
    async writeAndReadProbe(probeId: string): Promise<string | undefined> {
      await probes.write(probeId);
      return probes.read(probeId);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
