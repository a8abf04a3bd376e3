import type { Db } from 'mongodb';

/**
 * Verifiers allowed to fetch data (`verifiers`): per verifierDid, the public keys (EC P-256 JWKs)
 * their access tokens are signed with. Registered by an operator through the admin API.
 */
interface VerifierKey {
  kid: string;
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  addedAt: Date;
}

interface VerifierDoc {
  _id: string;
  keys: VerifierKey[];
  createdAt: Date;
  updatedAt: Date;
}

export function verifiersRepository(db: Db) {
  const collection = db.collection<VerifierDoc>('verifiers');
  return {
    collection,

    /** Adds (or replaces, by kid) a key for the Verifier. */
    async putKey(verifierDid: string, key: Omit<VerifierKey, 'addedAt'>, now = new Date()): Promise<void> {
      await collection.updateOne(
        { _id: verifierDid },
        { $setOnInsert: { keys: [], createdAt: now }, $set: { updatedAt: now } },
        { upsert: true },
      );
      await collection.updateOne({ _id: verifierDid }, { $pull: { keys: { kid: key.kid } } });
      await collection.updateOne({ _id: verifierDid }, { $push: { keys: { ...key, addedAt: now } } });
    },

    async removeKey(verifierDid: string, kid: string): Promise<boolean> {
      const res = await collection.updateOne(
        { _id: verifierDid },
        { $pull: { keys: { kid } }, $set: { updatedAt: new Date() } },
      );
      return res.modifiedCount === 1;
    },

    get: (verifierDid: string) => collection.findOne({ _id: verifierDid }),
  };
}

export type VerifiersRepository = ReturnType<typeof verifiersRepository>;
