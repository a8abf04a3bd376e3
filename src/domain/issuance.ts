/**
 * Types shared by the issuance API, workflow and activities. Type-only and free of Node imports,
 * so workflow code may import it.
 */
export type CakCurve = 'secp256r1' | 'secp256k1';

/** The text fields travel as one item of this kind; files carry their own kind (e.g. `id-front`). */
export const FIELDS_ITEM_KIND = 'fields';

/** The outer-layer context of staged items: bound to the issuance so entries cannot be swapped. */
export function stagingContext(issuanceId: string, itemId: string) {
  return { recordId: `staging:${issuanceId}`, itemId };
}

/** What the workflow knows about one sensitive item: never its bytes (those are staged encrypted). */
export interface ItemDescriptor {
  itemId: string;
  kind: string;
  contentType: string;
  /** plaintext size in bytes */
  size: number;
}

/** The workflow input: identifiers and metadata only; raw items and credentialSubject stay in staging. */
export interface IssuanceInput {
  issuanceId: string;
  recordId: string;
  userId: string;
  issuerDid: string;
  schemaId: string;
  credentialId: string;
  curve: CakCurve;
  /** as supplied by the front end (from the SDK); absent means "ask the platform" */
  cakPublicKey?: string;
  items: ItemDescriptor[];
}

/** An encrypted package written by `encrypt`, awaiting (or part of) a record version. */
export interface PackageRef {
  itemId: string;
  kind: string;
  contentType: string;
  /** id of the stored package; also the `itemId` of its outer-layer context */
  packageId: string;
  /** stored package size in bytes (inner ECIES package sealed by the outer layer) */
  size: number;
  /** sha256 (hex) of the stored package bytes */
  sha256: string;
  curve: CakCurve;
  /** id of the issuer-managed key that sealed the outer layer */
  keyId: string;
  storage: 'inline' | 'gridfs';
}

export interface StoredVersion {
  recordId: string;
  version: number;
  issuanceId: string;
}

export const ISSUANCE_STEPS = ['issue', 'encrypt', 'store', 'shred'] as const;
export type IssuanceStep = (typeof ISSUANCE_STEPS)[number];
export type StepState = 'pending' | 'running' | 'completed' | 'failed';
export type IssuanceStatus = 'accepted' | 'running' | 'stored' | 'completed' | 'failed';

/** ApplicationFailure types that end an issuance run (non-retryable). */
export const IssuanceFailureType = {
  PlatformRejected: 'PlatformRejected',
  InvalidCakPublicKey: 'InvalidCakPublicKey',
  StagingMissing: 'StagingMissing',
  PlatformResponseInvalid: 'PlatformResponseInvalid',
  /** the input does not match the issuance the API accepted: not our run */
  ForgedInput: 'ForgedInput',
  /** the user's record for this issuer and schema belongs to another API client */
  RecordOwnedElsewhere: 'RecordOwnedElsewhere',
  /** the platform refused our Partner JWT (401/403) for the whole retry horizon: check our JWKS and keys */
  PlatformAuthRejected: 'PlatformAuthRejected',
  /** the platform was unavailable (5xx, 408, 429, timeouts, unreachable) for the whole retry horizon */
  PlatformUnavailable: 'PlatformUnavailable',
} as const;

/** Failures a retry of the same run would repeat: the request, the client's key or the staged items are at fault. */
const PERMANENT_FAILURES: readonly string[] = [
  IssuanceFailureType.PlatformRejected,
  IssuanceFailureType.InvalidCakPublicKey,
  IssuanceFailureType.StagingMissing,
  IssuanceFailureType.PlatformResponseInvalid,
  IssuanceFailureType.ForgedInput,
  IssuanceFailureType.RecordOwnedElsewhere,
];

/**
 * Whether an issuance that ended with this failure type was, or could have been, transient: its
 * sealed staging is kept until STAGING_TTL_SECONDS and an operator may retry it as is (`cak
 * issuances retry`). That is every type but the permanent ones above (the platform refused the
 * request, the key is bad, the staged items are gone: the client must resubmit), so it covers the
 * platform unavailable or refusing our Partner JWT for the whole retry horizon (our JWKS or keys
 * may be fixed since) and any type we do not know (an unexpected error keeps the data).
 */
export function isTransientIssuanceFailure(type: string): boolean {
  return !PERMANENT_FAILURES.includes(type);
}
