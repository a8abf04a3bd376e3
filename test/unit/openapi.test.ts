import { execFileSync } from 'node:child_process';
import type { z } from 'zod';
import { buildOpenApiDocument, parametersOf, ROUTES } from '../../src/api/openapi';
import { loadConfig } from '../../src/config';
import { multipartTextSchema } from '../../src/domain/issuance-request';
import { loadSchemaRegistry } from '../../src/routing/schema-registry';

type Doc = ReturnType<typeof buildOpenApiDocument>;
type Operation = {
  parameters?: { name: string; in: string; example?: unknown; examples?: unknown }[];
  requestBody?: { content: Record<string, { example?: unknown; examples?: Record<string, { value: unknown }> }> };
};

/** Every example in the document, each with the zod schema it documents (found through the descriptors). */
function examplesOf(doc: Doc): { where: string; schema: z.ZodType | undefined; value: unknown }[] {
  const found: { where: string; schema: z.ZodType | undefined; value: unknown }[] = [];
  const paths = doc.paths as Record<string, Record<string, Operation>>;
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const descriptor = ROUTES.find((o) => o.path === path && o.method === method);
      const params = descriptor ? parametersOf(descriptor) : [];
      for (const p of op.parameters ?? []) {
        const schema = params.find((d) => d.name === p.name && d.in === p.in)?.schema;
        if ('example' in p) found.push({ where: `${method} ${path} ${p.in} ${p.name}`, schema, value: p.example });
        for (const [name, ex] of Object.entries((p.examples ?? {}) as Record<string, { value: unknown }>)) {
          found.push({ where: `${method} ${path} ${p.in} ${p.name} ${name}`, schema, value: ex.value });
        }
      }
      for (const [mediaType, media] of Object.entries(op.requestBody?.content ?? {})) {
        const schema = descriptor?.body?.content[mediaType]?.schema;
        if ('example' in media) found.push({ where: `${method} ${path} ${mediaType}`, schema, value: media.example });
        for (const [name, ex] of Object.entries(media.examples ?? {})) {
          found.push({ where: `${method} ${path} ${mediaType} ${name}`, schema, value: ex.value });
        }
      }
    }
  }
  return found;
}

function failures(doc: Doc): string[] {
  return examplesOf(doc).flatMap(({ where, schema, value }) => {
    if (!schema) return [`${where}: no zod schema documents it`];
    const parsed = schema.safeParse(value);
    return parsed.success ? [] : [`${where}: ${parsed.error.issues.map((i) => i.message).join('; ')}`];
  });
}

/** The OpenAPI 3.1 meta-schema check (the validator is ESM-only, so it runs in a child node). */
function validateOpenApi(doc: unknown): { valid: boolean; errors?: unknown } {
  const script = `
    import { Validator } from '@seriousme/openapi-schema-validator';
    let input = '';
    for await (const chunk of process.stdin) input += chunk;
    const result = await new Validator().validate(JSON.parse(input));
    process.stdout.write(JSON.stringify({ valid: result.valid, errors: result.errors }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    input: JSON.stringify(doc),
    encoding: 'utf8',
  });
  return JSON.parse(out) as { valid: boolean; errors?: unknown };
}

function refsOf(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => refsOf(v, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refsOf(v, out);
    }
  }
  return out;
}

function resolve(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
}

describe('the OpenAPI document', () => {
  const doc = buildOpenApiDocument();

  it('is valid OpenAPI 3.1 (meta-schema), and the check does refuse a broken document', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(validateOpenApi(doc)).toEqual({ valid: true });
    const broken: Record<string, unknown> = structuredClone(doc);
    delete broken.info;
    (broken.paths as Record<string, unknown>)['no-leading-slash'] = {};
    expect(validateOpenApi(broken).valid).toBe(false);
  });

  it('has one operation per declaration, each with a unique operationId, a summary, a tag and responses', () => {
    const paths = doc.paths as Record<string, Record<string, { operationId: string; responses: object }>>;
    const ops = Object.entries(paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([m, op]) => ({ path, m, op })),
    );
    expect(ops).toHaveLength(ROUTES.length);
    expect(new Set(ops.map((o) => o.op.operationId)).size).toBe(ROUTES.length);
    for (const { op } of ops) {
      expect(Object.keys(op.responses).length).toBeGreaterThan(0);
      expect(op.responses).toHaveProperty('500');
    }
    for (const o of ROUTES) {
      expect(o.path).toMatch(/^\/[^:]*$/); // OpenAPI form: {id}, never :id
      expect(o.summary.length).toBeGreaterThan(0);
      expect(o.tag.length).toBeGreaterThan(0);
    }
  });

  it('resolves every $ref and names only security schemes it defines', () => {
    const refs = refsOf(doc);
    expect(refs.length).toBeGreaterThan(10);
    expect(refs.filter((r) => resolve(doc, r) === undefined)).toEqual([]);
    const schemes = Object.keys((doc.components as { securitySchemes: object }).securitySchemes);
    const paths = doc.paths as Record<string, Record<string, { security: Record<string, string[]>[] }>>;
    const used = Object.values(paths).flatMap((methods) =>
      Object.values(methods).flatMap((o) => o.security.flatMap((s) => Object.keys(s))),
    );
    expect(used.filter((s) => !schemes.includes(s))).toEqual([]);
    expect(new Set(used)).toEqual(new Set(schemes));
  });

  it('documents the common error body and the codes of each error response', () => {
    const errorBody = resolve(doc, '#/components/schemas/ErrorBody') as { required: string[] };
    expect(errorBody.required).toEqual(['error']);
    const issuance = (doc.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)[
      '/v1/issuances'
    ]!.post!.responses;
    expect(JSON.stringify(issuance['409'])).toContain('IDEMPOTENCY_KEY_REUSED');
    expect(JSON.stringify(issuance['400'])).toContain('ITEM_NOT_ALLOWED');
  });

  it('has at least one example for every request body', () => {
    const bodies = ROUTES.flatMap((o) => Object.values(o.body?.content ?? {}));
    expect(bodies.length).toBeGreaterThan(0);
    for (const c of bodies) expect(Object.keys(c.examples).length).toBeGreaterThan(0);
  });

  it('every example validates against the zod schema the route validates with', () => {
    const examples = examplesOf(doc);
    expect(examples.length).toBeGreaterThanOrEqual(ROUTES.filter((o) => o.body).length);
    expect(failures(doc)).toEqual([]);
  });

  it('every issuance example is one the development registry issues (no PlatformRejected for an unknown program)', () => {
    const config = loadConfig({});
    const registry = loadSchemaRegistry(config.SCHEMA_REGISTRY_PATH, config.ISSUER_DIDS);
    const issuance = ROUTES.find((o) => o.operationId === 'createIssuance')!;
    const examples = Object.entries(issuance.body!.content).flatMap(([mediaType, c]) =>
      Object.entries(c.examples).map(([name, ex]) => ({
        where: `${mediaType} ${name}`,
        multipart: mediaType === 'multipart/form-data',
        value: ex.value,
      })),
    );
    expect(examples.length).toBeGreaterThanOrEqual(3);
    const refused = examples.flatMap(({ where, multipart, value }) => {
      const v = value as Record<string, unknown> & { files?: { kind: string }[]; fields?: object };
      const kinds = [
        ...(v.fields ? ['fields'] : []),
        ...(v.files ?? []).map((f) => f.kind),
        // multipart: one file part per kind, named by it
        ...(multipart ? Object.keys(v).filter((k) => !(k in multipartTextSchema.shape)) : []),
      ];
      const request = {
        issuerDid: String(v.issuerDid),
        credentialId: String(v.credentialId),
        schemaId: String(v.schemaId),
      };
      try {
        registry.assertIssuable(request, kinds);
        return [];
      } catch (err) {
        return [`${where}: ${err instanceof Error ? err.message : String(err)}`];
      }
    });
    expect(refused).toEqual([]);
    // and the check does refuse a program the registry does not have
    expect(() =>
      registry.assertIssuable(
        { issuerDid: config.ISSUER_DIDS[0]!, credentialId: 'kyc-program', schemaId: 'kyc-basic' },
        [],
      ),
    ).toThrow(/not a registered issuance program/);
  });

  it('documents the issuance status with its workflowId and Web UI link', () => {
    const status = resolve(doc, '#/components/schemas/IssuanceStatus') as {
      properties: Record<string, { type?: string; format?: string }>;
      required: string[];
    };
    expect(status.properties.workflowId).toMatchObject({ type: 'string' });
    expect(status.properties.webUiUrl).toMatchObject({ type: 'string', format: 'uri' });
    expect(status.required).toContain('workflowId');
  });

  it('the example check fails on a broken example (negative control)', () => {
    const broken = JSON.parse(JSON.stringify(doc)) as Doc; // as served: no shared objects
    const paths = broken.paths as Record<string, Record<string, Operation>>;
    const media = paths['/v1/cak/callbacks']!.post!.requestBody!.content['application/json']!;
    (media.examples!.consent!.value as Record<string, unknown>).verifierDid = 'not a DID';
    const issuance = paths['/v1/issuances']!.post!.requestBody!.content;
    (issuance['multipart/form-data']!.examples!.withFile!.value as Record<string, unknown>)['Not_A_Kind'] = 'x';
    (issuance['application/json']!.examples!.withFile!.value as Record<string, unknown>).surprise = true;
    paths['/v1/admin/authorizations']!.get!.parameters!.find((p) => p.name === 'limit')!.example = 501;
    const found = failures(broken);
    expect(found).toHaveLength(4);
    expect(found.join('\n')).toMatch(/post \/v1\/cak\/callbacks application\/json consent: expected a DID/);
    expect(found.join('\n')).toMatch(/multipart\/form-data withFile/);
    expect(found.join('\n')).toMatch(/application\/json withFile/);
    expect(found.join('\n')).toMatch(/query limit/);
  });
});
