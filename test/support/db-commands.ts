import { MongoClient, type CommandStartedEvent } from 'mongodb';

/** A command sent by a client of this process that has an appName (the system's own clients do). */
export interface SeenCommand {
  app: string;
  name: string;
  collection: string;
}

/** Driver handshakes, session housekeeping and index creation (run at start): not the data path. */
const HOUSEKEEPING = new Set(['hello', 'ismaster', 'isMaster', 'ping', 'endSessions', 'buildInfo', 'createIndexes']);

let listener: ((command: SeenCommand) => void) | undefined;
let installed = false;

function collectionOf(event: CommandStartedEvent): string {
  const target = event.command[event.commandName] as unknown;
  return typeof target === 'string' ? target : '';
}

/**
 * From now on every MongoClient of this process reports its commands from its first connection on
 * (driver command monitoring), tagged with its appName. Call it before the system under test connects.
 */
export function watchDatabaseCommands(): void {
  if (installed) return;
  installed = true;
  const connect = MongoClient.prototype.connect; // eslint-disable-line @typescript-eslint/unbound-method
  const monitored = new WeakSet<MongoClient>();
  MongoClient.prototype.connect = function (this: MongoClient) {
    if (!monitored.has(this)) {
      monitored.add(this);
      (this as unknown as { monitorCommands: boolean }).monitorCommands = true; // the driver's setter, untyped
      const app = this.options.appName;
      this.on('commandStarted', (event) => {
        if (app && !HOUSEKEEPING.has(event.commandName)) {
          listener?.({ app, name: event.commandName, collection: collectionOf(event) });
        }
      });
    }
    return connect.call(this);
  };
}

/** The commands sent while `during` runs, and for `trailingMs` after (anything trailing the last step). */
export async function commandsDuring(during: () => Promise<void>, trailingMs = 500): Promise<SeenCommand[]> {
  const seen: SeenCommand[] = [];
  listener = (command) => seen.push(command);
  try {
    await during();
    await new Promise((r) => setTimeout(r, trailingMs));
  } finally {
    listener = undefined;
  }
  return seen;
}
