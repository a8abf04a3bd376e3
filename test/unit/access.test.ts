import { isAccessAllowed, type AccessFacts } from '../../src/domain/access';

/** The one access rule (src/domain/access.ts), as a table: every path that hands out data asks it. */
describe('isAccessAllowed', () => {
  const now = new Date('2026-06-01T12:00:00Z');
  const later = new Date('2026-06-30T12:00:00Z');
  const earlier = new Date('2026-05-01T12:00:00Z');
  const facts = (patch: Partial<AccessFacts>): AccessFacts => ({
    state: 'active',
    accessUntil: later,
    revoked: false,
    ...patch,
  });

  it.each<[string, AccessFacts | undefined, string]>([
    ['active, inside its window', facts({}), 'ALLOWED'],
    ['no authorization at all', undefined, 'AUTHORIZATION_REQUIRED'],
    ['delivered, not yet routed', facts({ state: 'received', accessUntil: undefined }), 'AUTHORIZATION_REQUIRED'],
    ['routed without grant-access', facts({ state: 'routed' }), 'AUTHORIZATION_REQUIRED'],
    ['unrouted', facts({ state: 'unrouted', accessUntil: undefined }), 'AUTHORIZATION_REQUIRED'],
    ['no data held', facts({ state: 'no-data', accessUntil: undefined }), 'AUTHORIZATION_REQUIRED'],
    ['active without a window', facts({ accessUntil: undefined }), 'AUTHORIZATION_REQUIRED'],
    ['revoked inside its window', facts({ revoked: true }), 'AUTHORIZATION_REVOKED'],
    ['revoked after its window', facts({ revoked: true, accessUntil: earlier }), 'AUTHORIZATION_REVOKED'],
    ['window closed', facts({ accessUntil: earlier }), 'AUTHORIZATION_EXPIRED'],
    ['window closing this very instant', facts({ accessUntil: now }), 'AUTHORIZATION_EXPIRED'],
  ])('%s -> %s', (_name, input, expected) => {
    const decision = isAccessAllowed(input, now);
    expect(decision.allowed ? 'ALLOWED' : decision.code).toBe(expected);
  });

  it('says until when access holds', () => {
    expect(isAccessAllowed(facts({}), now)).toEqual({ allowed: true, until: later });
  });
});
