import type { RequestHandler, Response, Router } from 'express';
import { z } from 'zod';

/**
 * A route declared once: its method and path, what it asks (zod schemas of its path, query, header
 * parameters and body), what it answers per status (zod schemas), and the error codes it refuses
 * with. `on` registers the handler at that method and path; `send` answers with a body typed by the
 * declared schema; src/api/openapi.ts turns the declarations into the OpenAPI document.
 */

export type Auth = 'apiKey' | 'adminBearer' | 'verifierJwt' | 'codec' | 'public';
type Headers = Record<string, { description: string; schema: Record<string, unknown> }>;

export interface Answer {
  description: string;
  /** the body's zod schema; a named one is a component (`#/components/schemas/<name>`) */
  schema?: z.ZodType;
  name?: string;
  /** application/json unless given (binary: `application/octet-stream`) */
  mediaType?: string;
  headers?: Headers;
}

/** An error status: `{error: {code, message, details?}}` with one of `codes`. */
export interface Refusal {
  description: string;
  codes: readonly string[];
  headers?: Headers;
}

interface BodyContent {
  name: string;
  /** what the route validates the body with (the examples are checked against it) */
  schema: z.ZodType;
  examples: Record<string, { summary: string; value: unknown }>;
  encoding?: Record<string, { contentType: string }>;
}

interface RouteDecl<A extends Record<number, Answer> = Record<number, Answer>> {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI form: `/v1/issuances/{id}` */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  auth: Auth;
  /** zod objects, one parameter per key (`.meta({description})` on a key describes it) */
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  /** one example per parameter (path, query and header names) */
  examples?: Record<string, unknown>;
  /** per media type */
  body?: { description?: string; content: Record<string, BodyContent> };
  responses: A;
  /** what the route refuses with, beside what its `auth` adds (`AUTH_ERRORS`) and 500 `INTERNAL` */
  errors?: Record<number, Refusal>;
}

export interface Route<A extends Record<number, Answer> = Record<number, Answer>> extends RouteDecl<A> {
  on(router: Router, ...handlers: RequestHandler[]): void;
  /** `res.status(status).json(body)`, the body typed by the declared schema */
  send<S extends keyof A & number>(res: Response, status: S, body: BodyOf<A[S]>): void;
}

/** What `res.json` turns into the declared body: a Date serializes to its ISO string. */
type Sendable<T> = T extends string ? T | Date : T extends object ? { [K in keyof T]: Sendable<T[K]> } : T;
type BodyOf<R extends Answer> = R['schema'] extends z.ZodType ? Sendable<z.input<R['schema']>> : never;

export function route<const A extends Record<number, Answer>>(decl: RouteDecl<A>): Route<A> {
  return {
    ...decl,
    on(router, ...handlers) {
      router[decl.method](decl.path.replace(/\{(\w+)\}/g, ':$1'), ...handlers);
    },
    send(res, status, body) {
      res.status(status).json(body);
    },
  };
}

export const refusal = (description: string, ...codes: string[]): Refusal => ({ description, codes });

/** The one error body (src/api/errors.ts). */
export const errorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.string().meta({ description: 'stable, machine-readable; clients branch on it' }),
    message: z.string().meta({ description: 'for people; may change' }),
    details: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'e.g. `field`, the path of the offending input' }),
  }),
});

const seconds = { 'Retry-After': { description: 'seconds', schema: { type: 'integer' } } };
export const RATE_LIMITED: Refusal = {
  description: "over the caller's per-minute rate limit, or too many failed authentications from this address",
  codes: ['RATE_LIMITED', 'AUTH_RATE_LIMITED'],
  headers: seconds,
};
export const INTERNAL = refusal('unexpected failure', 'INTERNAL');
export const NO_STORE: Headers = { 'Cache-Control': { description: '`no-store`', schema: { type: 'string' } } };
export const cacheFor = (s: number): Headers => ({
  'Cache-Control': { description: `\`public, max-age=${s}\``, schema: { type: 'string' } },
});

/** What each kind of credential refuses with (a route may say more). */
export const AUTH_ERRORS: Record<Auth, Record<number, Refusal>> = {
  public: {},
  apiKey: { 401: refusal('no valid `x-api-key`', 'UNAUTHENTICATED'), 429: RATE_LIMITED },
  adminBearer: { 401: refusal('no valid admin token', 'ADMIN_UNAUTHENTICATED'), 429: RATE_LIMITED },
  verifierJwt: { 401: refusal('no valid Verifier JWT', 'VERIFIER_UNAUTHENTICATED'), 429: RATE_LIMITED },
  codec: {
    401: refusal('no valid bearer token or session', 'CODEC_UNAUTHENTICATED'),
    403: refusal('origin not allowed', 'CODEC_ORIGIN_NOT_ALLOWED'),
    429: refusal('over the per-session rate limit, or too many failed tokens from this address', ...RATE_LIMITED.codes),
  },
};

/** A body that cannot be read: cut short, or a Content-Encoding that does not decode. */
export const FRAMING_400 = ['REQUEST_ABORTED', 'MALFORMED_ENCODING'] as const;
export const SAFE_JSON_ERRORS = ['UNSAFE_KEY', 'JSON_TOO_DEEP', 'JSON_TOO_MANY_KEYS'] as const;
