import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Metrics } from '../observability/metrics';

function errorType(err: unknown): string {
  if (err instanceof ApplicationFailure && err.type) return err.type;
  return err instanceof Error ? err.name : 'unknown';
}

/** Counts failed activity attempts by activity type and error type (ApplicationFailure type or error name). */
export function activityFailureMetrics(metrics: Metrics): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (err) {
          metrics.activityFailures.inc({ activity: ctx.info.activityType, type: errorType(err) });
          throw err;
        }
      },
    },
  });
}
