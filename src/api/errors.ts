import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '../domain/errors';
import type { Logger } from '../observability/logger';

/** The one place errors become HTTP responses: `{ error: { code, message, details? } }`. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    const send = (status: number, code: string, message: string, details?: Record<string, unknown>) => {
      res.locals.errorCode = code; // for metrics (refusals counted by code)
      res.status(status).json({ error: { code, message, ...(details ? { details } : {}) } });
    };
    if (err instanceof AppError) return send(err.status, err.code, err.message, err.details);
    // body-parser errors carry `type` and `status`
    const parserError = err as { type?: string; status?: number };
    if (parserError.type === 'entity.too.large')
      return send(413, 'BODY_TOO_LARGE', 'request body exceeds the size limit');
    if (parserError.type === 'entity.parse.failed')
      return send(400, 'MALFORMED_JSON', 'request body is not valid JSON');
    log.error({ err }, 'unhandled error');
    send(500, 'INTERNAL', 'internal error');
  };
}

export const notFound: RequestHandler = (_req, res) => {
  res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such route' } });
};
