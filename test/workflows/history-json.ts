/**
 * Workflow histories as JSON files: the proto3 JSON that `temporal workflow show --output json`
 * writes and the SDK's `historyToJSON` / `historyFromJSON` (@temporalio/common/lib/proto-utils)
 * read and write.
 *
 * Why not those two: in this install they throw "type must be a Type". @temporalio/common and
 * @temporalio/proto each get their own nested copy of protobufjs 8 (the top-level protobufjs is 7,
 * for @grpc/proto-loader), and proto-utils checks a type built by one copy with the other copy's
 * `instanceof`. `Worker.runReplayHistories` calls `historyFromJSON` on any history whose event ids
 * are strings, so it cannot read these files either. The same conversion is done here with the
 * protobufjs that @temporalio/proto itself uses; the files are the same either way.
 */
import { dirname } from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

export type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const protojson = require(
  require.resolve('protobufjs/ext/protojson', { paths: [dirname(require.resolve('@temporalio/proto'))] }),
) as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

/** A history (e.g. from `handle.fetchHistory()`) as proto3 JSON text. */
export function historyToJSON(history: History): string {
  return JSON.stringify(
    protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)),
    null,
    2,
  );
}

/** A parsed history JSON file as the History `Worker.runReplayHistories` takes. */
export function historyFromJSON(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a history: expected an object with an array of events');
  }
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (history === null) throw new TypeError('not a history');
  return history as History;
}
