import { Client, Connection } from '@temporalio/client';
import type { Keyring } from '../crypto/keyring';
import { dataConverterFor } from '../crypto/payload-codec';

/** The Temporal client used by the API and the CLI; every payload it sends is encrypted with the codec keyring. */
export async function connectTemporalClient(
  address: string,
  namespace: string,
  codecKeyring: Keyring,
): Promise<Client> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  return new Client({ connection, namespace, dataConverter: dataConverterFor(codecKeyring) });
}

/** The same client over a lazy connection: it connects on first use (the API starts while Temporal is down). */
export function lazyTemporalClient(address: string, namespace: string, codecKeyring: Keyring): Client {
  const connection = Connection.lazy({ address, connectTimeout: 2_000 });
  return new Client({ connection, namespace, dataConverter: dataConverterFor(codecKeyring) });
}

export async function pingTemporal(client: Client, timeoutMs = 2_000): Promise<void> {
  await client.connection.withDeadline(Date.now() + timeoutMs, () =>
    client.connection.workflowService.describeNamespace({ namespace: client.options.namespace }),
  );
}
