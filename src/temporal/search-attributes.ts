import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * The custom search attributes our runs carry: pseudonymous ids an operator filters by in the Web UI.
 * Registered on the server by scripts/lib/local-services.ts and by the search-attribute job in
 * docker-compose.yml.
 */
export const CakUserId = defineSearchAttributeKey('CakUserId', SearchAttributeType.KEYWORD);
export const CakSchemaId = defineSearchAttributeKey('CakSchemaId', SearchAttributeType.KEYWORD);
export const CakIssuerDid = defineSearchAttributeKey('CakIssuerDid', SearchAttributeType.KEYWORD);
export const CakVerifierDid = defineSearchAttributeKey('CakVerifierDid', SearchAttributeType.KEYWORD);
