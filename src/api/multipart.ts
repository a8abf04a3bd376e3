import type { Readable } from 'node:stream';
import busboy from 'busboy';
import type { Request } from 'express';
import { AppError } from '../domain/errors';
import {
  addTextPart,
  checkFileCount,
  checkFilePart,
  completeMultipart,
  fileStreamCheck,
  parseMultipartText,
  type IssuanceLimits,
  type IssuanceRequest,
  type StagedFile,
} from '../domain/issuance-request';
import { FIELDS_ITEM_KIND } from '../domain/issuance';
import type { StagingSink, Upload } from './issuance-intake';

/**
 * The multipart/form-data issuance, read as it streams (busboy) and never held whole. Text parts
 * come first; at the first file part they must make a valid request, and everything that can be
 * refused without the files is refused then (tenancy, program, items allowed, key, record owner).
 * Each file part is checked as it streams (kind, type and count from its headers, its magic bytes
 * from the first bytes, the size limits the moment they are passed) and sealed into staging chunk
 * by chunk. Parts are handled one at a time, in order. On the first refusal the body is no longer
 * read and the promise rejects once the part in hand has stopped, so the caller can discard what
 * was staged (`Upload.discard`).
 */

const MAX_PARTS = 48;
/** a text part: `fields` holds up to 64 values of up to 10,000 characters */
const MAX_TEXT_PART_BYTES = 1024 * 1024;

const malformed = (why: string) => new AppError('MALFORMED_MULTIPART', `multipart body: ${why}`, 400);

function busboyError(err: unknown): AppError {
  const message = err instanceof Error ? err.message : '';
  if (/unexpected end/i.test(message)) return malformed('ended before its closing boundary');
  if (/boundary/i.test(message)) return malformed('no boundary in Content-Type');
  return malformed('not well-formed');
}

export function readIssuanceMultipart(req: Request, limits: IssuanceLimits, upload: Upload): Promise<IssuanceRequest> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { parts: MAX_PARTS, fieldSize: MAX_TEXT_PART_BYTES, headerPairs: 16 },
      });
    } catch (err) {
      reject(busboyError(err));
      return;
    }
    const text: Record<string, unknown> = {};
    let request: IssuanceRequest | undefined;
    const staged: StagedFile[] = [];
    let total = 0;

    let queue = Promise.resolve();
    let failed = false;
    let reading: Readable | undefined; // the file part in hand
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      reading?.destroy(); // a body that stopped (the client went) would leave it waiting
      // settle once the part in hand has stopped: nothing is written after the caller discards
      void queue.then(() => reject(err instanceof Error ? err : new Error(String(err))));
    };
    const enqueue = (work: () => Promise<void> | void) => {
      queue = queue.then(() => (failed ? undefined : work())).catch(fail);
    };

    const textRequest = (): IssuanceRequest => {
      try {
        return parseMultipartText(text);
      } catch (err) {
        if (err instanceof AppError && err.code === 'MISSING_FIELD') {
          throw new AppError(err.code, `${err.message} (text parts go before file parts)`, err.status, err.details);
        }
        throw err;
      }
    };

    async function readFile(name: string, file: Readable, declaredType: string): Promise<void> {
      const part = checkFilePart(name, declaredType);
      request ??= textRequest();
      const kinds = staged.map((f) => f.kind);
      checkFileCount(kinds, part.kind, limits);
      const textKinds = request.fields && Object.keys(request.fields).length > 0 ? [FIELDS_ITEM_KIND] : [];
      await upload.precheck(request, [...textKinds, ...kinds, part.kind]);
      const check = fileStreamCheck(part, `files[${staged.length}]`, limits, total);
      let sink: StagingSink | undefined;
      reading = file;
      for await (const chunk of file as AsyncIterable<Buffer>) {
        check.push(chunk); // throws at a limit, or when the first bytes are not the declared type
        sink ??= await upload.open(part.kind);
        await sink.write(chunk);
      }
      reading = undefined;
      if (failed) return;
      const { size, sha256 } = check.end();
      if (!sink) throw new Error('a non-empty file part without a sink');
      staged.push({ ...part, size, sha256, sealed: await sink.finish() });
      total += size;
    }

    parser.on('field', (name, value, info) => {
      if (info.nameTruncated) return fail(malformed('part name too long'));
      if (info.valueTruncated) {
        return fail(
          new AppError('BODY_TOO_LARGE', `part "${name}" exceeds the limit of ${MAX_TEXT_PART_BYTES} bytes`, 413, {
            field: name,
            limitBytes: MAX_TEXT_PART_BYTES,
          }),
        );
      }
      enqueue(() => {
        if (request) {
          const message = `part "${name}" comes after a file part; send text parts first`;
          throw new AppError('TEXT_PART_AFTER_FILE', message, 400, { field: name });
        }
        addTextPart(text, name, value);
      });
    });
    parser.on('file', (name, file, info) => enqueue(() => readFile(name, file, info.mimeType)));
    parser.on('partsLimit', () => fail(malformed(`more than ${MAX_PARTS} parts`)));
    parser.on('error', (err) => fail(busboyError(err)));
    parser.on('close', () =>
      enqueue(() => {
        resolve(completeMultipart(request ?? textRequest(), staged, limits));
      }),
    );
    req.on('error', () => fail(new AppError('REQUEST_ABORTED', 'the request body could not be read', 400)));
    req.on('close', () => {
      if (!req.complete)
        fail(new AppError('REQUEST_ABORTED', 'the client closed the request before its body ended', 400));
    });
    req.pipe(parser);
  });
}
