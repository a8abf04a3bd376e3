import { AppError } from '../domain/errors';
import type { MultipartPart } from '../domain/issuance-request';

/**
 * A strict multipart/form-data parser over a body already bounded in size by the raw body parser.
 * Only what browsers send: `Content-Disposition: form-data; name=...; [filename=...]` and an
 * optional `Content-Type` per part. Anything else is a 400 MALFORMED_MULTIPART.
 */

const MAX_PARTS = 48;
const MAX_HEADER_BYTES = 2048;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

const malformed = (why: string) => new AppError('MALFORMED_MULTIPART', `multipart body: ${why}`, 400);

export function boundaryOf(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw malformed('no boundary in Content-Type');
  return boundary;
}

function parseHeaders(raw: string): { name: string; filename?: string; contentType?: string } {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of raw.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed('bad part header');
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') disposition = value;
    else if (key === 'content-type') contentType = value;
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw malformed('part without form-data disposition');
  const name = /;\s*name="([^"]{1,64})"/i.exec(disposition)?.[1];
  if (!name) throw malformed('part without a name');
  const filename = /;\s*filename="([^"]{0,255})"/i.exec(disposition)?.[1];
  return { name, ...(filename !== undefined ? { filename } : {}), ...(contentType ? { contentType } : {}) };
}

export function parseMultipart(body: Buffer, contentType: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundaryOf(contentType)}`);
  const next = Buffer.concat([CRLF, delimiter]);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw malformed('boundary not found');
  const parts: MultipartPart[] = [];
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // closing delimiter
    if (!body.subarray(pos, pos + 2).equals(CRLF)) throw malformed('boundary not followed by CRLF');
    const headerStart = pos + 2;
    const headerEnd = body.indexOf(HEADER_END, headerStart);
    if (headerEnd < 0 || headerEnd - headerStart > MAX_HEADER_BYTES)
      throw malformed('part headers missing or too long');
    const headers = parseHeaders(body.subarray(headerStart, headerEnd).toString('latin1'));
    const dataStart = headerEnd + HEADER_END.length;
    const dataEnd = body.indexOf(next, dataStart);
    if (dataEnd < 0) throw malformed('unterminated part');
    parts.push({ ...headers, data: body.subarray(dataStart, dataEnd) });
    if (parts.length > MAX_PARTS) throw malformed(`more than ${MAX_PARTS} parts`);
    pos = dataEnd + CRLF.length;
  }
}
