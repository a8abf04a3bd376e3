/**
 * Every exit status of `cak`, in one place: the CLI exits only with these, `cak --help` prints this
 * table, and docs/cli.md ("Exit codes") lists the same rows (a test compares them).
 */
export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  CHECK_FAILED: 3,
  REFUSED: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each status means, as `--help` prints it and docs/cli.md documents it. */
export const EXIT_CODE_TABLE: readonly { code: ExitCode; meaning: string }[] = [
  { code: EXIT.OK, meaning: 'done' },
  { code: EXIT.ERROR, meaning: 'failed: a service unreachable, an invalid configuration, an unexpected error' },
  {
    code: EXIT.USAGE,
    meaning: 'usage: a wrong command, option or argument; a key or package that does not parse or decrypt',
  },
  {
    code: EXIT.CHECK_FAILED,
    meaning: 'a check failed: `audit verify` found a broken link; `verifier fetch` a package unlike its manifest',
  },
  {
    code: EXIT.REFUSED,
    meaning: 'refused, not found or partly done (the output says why); `verifier fetch`: the API said no (its code)',
  },
];

export function exitCodesHelp(): string {
  return ['Exit codes:', ...EXIT_CODE_TABLE.map((row) => `  ${row.code}  ${row.meaning}`)].join('\n');
}

/** The command line is wrong: exit 2, with the message (commander's own usage errors exit 2 as well). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The other side refused, or what was asked for does not exist: exit 4, with the code. */
export class RefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RefusedError';
  }
}

/** Data failed a check (an integrity mismatch): exit 3. */
export class CheckFailedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CheckFailedError';
  }
}
