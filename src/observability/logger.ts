import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Field paths that may carry personal data. Anything at these paths is replaced before a log line is
 * written, so a careless `log.info({ body })` cannot leak a passport number into log storage.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-partner-auth"]',
  'req.headers["webhook-signature"]',
  'headers.authorization',
  '*.items',
  '*.sensitive',
  '*.fullName',
  '*.name',
  '*.dateOfBirth',
  '*.dob',
  '*.documentNumber',
  '*.passportNumber',
  '*.credentialSubject',
  '*.content',
  '*.data',
  '*.privateKey',
  '*.cakPrivateKey',
  '*.secret',
  '*.password',
  'body',
  'req.body',
  'items',
  'sensitive',
  'credentialSubject',
  'privateKey',
  'cakPrivateKey',
];

/** JSON lines to stdout, or to `destination` (tests read what would be logged). */
export function createLogger(options: { level: string; name: string }, destination?: DestinationStream): Logger {
  const settings = {
    name: options.name,
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: 'cak-issuer', component: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(settings, destination) : pino(settings);
}

export type { Logger };
