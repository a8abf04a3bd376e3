import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '../domain/errors';
import type { Logger } from '../observability/logger';
import { isDatabaseUnavailable } from '../storage/mongo';

/** What a body reader (body-parser / raw-body, or a zlib stream under them) attaches to its errors. */
interface FramingError {
  type?: unknown;
  status?: unknown;
  code?: unknown;
  limit?: unknown;
  encoding?: unknown;
}

/**
 * Every way a request body can fail to be read, as a 4xx with a stable code. body-parser and
 * raw-body mark their errors with `type`; a body whose Content-Encoding does not decode fails in
 * zlib (a `Z_*` or brotli `ERR__ERROR_*` code) and arrives as a bare 400. Messages are ours, never the library's.
 */
export function framingError(err: unknown): AppError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as FramingError;
  const limit = typeof e.limit === 'number' ? e.limit : undefined;
  switch (e.type) {
    case 'encoding.unsupported':
      return new AppError(
        'UNSUPPORTED_ENCODING',
        typeof e.encoding === 'string'
          ? `Content-Encoding "${e.encoding.slice(0, 32)}" is not accepted here`
          : 'this Content-Encoding is not accepted here',
        415,
      );
    case 'charset.unsupported':
      return new AppError('UNSUPPORTED_CHARSET', 'the body must be UTF-8 (charset=utf-8, or no charset)', 415);
    case 'entity.parse.failed':
      return new AppError('MALFORMED_JSON', 'request body is not valid JSON', 400);
    case 'entity.too.large':
      return new AppError(
        'BODY_TOO_LARGE',
        limit === undefined
          ? 'request body exceeds the size limit'
          : `request body exceeds the limit of ${limit} bytes`,
        413,
        limit === undefined ? undefined : { limit },
      );
    case 'parameters.too.many':
      return new AppError('TOO_MANY_PARAMETERS', 'the form has too many fields', 413);
    case 'querystring.parse.rangeError':
      return new AppError('MALFORMED_FORM', 'the form is nested too deeply', 400);
    case 'request.aborted':
      return new AppError('REQUEST_ABORTED', 'the client closed the request before its body was complete', 400);
    case 'request.size.invalid':
      return new AppError('BODY_LENGTH_MISMATCH', 'the body is shorter or longer than its Content-Length', 400);
  }
  // zlib (gzip, deflate) says Z_DATA_ERROR and the like; its brotli decoder ERR__ERROR_FORMAT_...
  if (e.status === 400 && typeof e.code === 'string' && /^(Z_|ERR__ERROR_)/.test(e.code)) {
    return new AppError('MALFORMED_ENCODING', 'the body does not decode under its Content-Encoding', 400);
  }
  return undefined;
}

/** The one place errors become HTTP responses: `{ error: { code, message, details? } }`. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    const send = (status: number, code: string, message: string, details?: Record<string, unknown>) => {
      res.locals.errorCode = code; // for metrics (refusals counted by code)
      res.status(status).json({ error: { code, message, ...(details ? { details } : {}) } });
    };
    if (res.headersSent) {
      // a stream failed mid-response: nothing left to say but to end the connection
      log.warn({ err }, 'error after the response started');
      res.destroy();
      return;
    }
    if (err instanceof AppError) return send(err.status, err.code, err.message, err.details);
    const framing = framingError(err);
    if (framing) return send(framing.status, framing.code, framing.message, framing.details);
    if (isDatabaseUnavailable(err)) {
      log.warn({ err: (err as Error).message }, 'database unavailable');
      res.setHeader('Retry-After', '5');
      return send(503, 'UNAVAILABLE', 'the database is unavailable; retry shortly');
    }
    log.error({ err }, 'unhandled error');
    send(500, 'INTERNAL', 'internal error');
  };
}

export const notFound: RequestHandler = (_req, res) => {
  res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such route' } });
};

/**
 * What Node's HTTP parser refuses before Express sees a request (a body cut short of its
 * Content-Length and then closed, broken chunking, oversized headers, a request too slow to
 * arrive), answered in the same shape as every other error instead of Node's bare 400.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'request headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request did not arrive in time']
          : err.code === 'HPE_INVALID_EOF_STATE'
            ? [400, 'Bad Request', 'REQUEST_ABORTED', 'the connection ended before the body was complete']
            : [400, 'Bad Request', 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1'];
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
}
