import type { Db } from 'mongodb';

interface ProbeDoc {
  _id: string;
  writtenAt: Date;
}

/** Queries for the `probes` collection: connectivity checks write here and read back. */
export function probesRepository(db: Db) {
  const probes = db.collection<ProbeDoc>('probes');
  return {
    async write(probeId: string): Promise<void> {
      await probes.updateOne({ _id: probeId }, { $set: { writtenAt: new Date() } }, { upsert: true });
    },
    async read(probeId: string): Promise<string | undefined> {
      return (await probes.findOne({ _id: probeId }))?._id;
    },
  };
}
