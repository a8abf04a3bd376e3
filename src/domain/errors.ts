/**
 * The one error type that crosses module boundaries. `code` is stable and machine-readable
 * (clients and logs branch on it); `status` is the HTTP status the API maps it to.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
    Object.setPrototypeOf(this, AppError.prototype);
  }
}
