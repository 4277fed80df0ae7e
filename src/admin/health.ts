import { Metadata } from '@grpc/grpc-js';
import type { HealthCheckResponse__Output } from '../generated/grpc/health/v1/HealthCheckResponse.js';
import { unary } from './connection.js';
import { AdminFailure } from './failure.js';
import type { AdminContext, CommandSpec } from './spec.js';

/**
 * `health`: asks the daemon's own health service, for a container's health check. `check` probes
 * the bucket instead, and says nothing of whether the daemon answers; the daemon's status is
 * NOT_SERVING while S3 does not answer it and once it is stopping.
 */

/** A daemon that answers nothing within this is unhealthy (a container runtime's check times out later). */
const CHECK_DEADLINE_MS = 10_000;

async function check(ctx: AdminContext): Promise<void> {
  const service = ctx.args[0] ?? '';
  const health = ctx.connection.health();
  const { status } = await unary<HealthCheckResponse__Output>((cb) =>
    health.Check({ service }, new Metadata(), { deadline: Date.now() + CHECK_DEADLINE_MS }, cb),
  );
  ctx.io.stdout.write(ctx.json ? `${JSON.stringify({ service, status })}\n` : `${status}\n`);
  if (status !== 'SERVING') throw new AdminFailure(`${service === '' ? 'the daemon' : service} is ${status}`);
}

export const HEALTH_COMMANDS: CommandSpec[] = [
  {
    name: 'health',
    usage: '[SERVICE]',
    summary: 'ask the daemon\'s health service (exit 0 only when SERVING): for a container\'s health check',
    options: [],
    args: [0, 1],
    run: check,
  },
];
