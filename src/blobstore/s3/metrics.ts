import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { s3Requests, s3RequestSeconds } from '../../metrics/registry.js';
import { isMissing } from './errors.js';
import { SilenceRefusal } from './silence.js';

/**
 * Counts every request attempt the client sends, by operation and outcome, with its latency.
 * The step sits below the SDK's retries, so a retried call counts each round trip it cost.
 */
export function countRequests(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      const stop = s3RequestSeconds.startTimer({ operation });
      try {
        const result = await next(args);
        s3Requests.inc({ operation, outcome: 'ok' });
        stop();
        return result;
      } catch (err) {
        const outcome = outcomeOf(err);
        s3Requests.inc({ operation, outcome });
        // an attempt not sent took S3 no time
        if (outcome !== 'not_sent') stop();
        throw err;
      }
    },
    { step: 'deserialize', name: 's3csCountRequests', priority: 'high' },
  );
}

function outcomeOf(err: unknown): string {
  if (isMissing(err)) return 'missing';
  // refused at the attempt's start, S3 being silent: nothing went out
  if (err instanceof SilenceRefusal) return 'not_sent';
  // a service exception carries S3's answer; anything else never got one
  return err instanceof S3ServiceException && err.$metadata?.httpStatusCode ? 'error' : 'unanswered';
}
