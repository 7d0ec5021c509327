import type { IncomingMessage, ServerResponse } from 'node:http';
import { compiledCheck } from '../common/compiled-validation';
import { optionalHeader } from '../common/optional-header.decorator';
import { toJobView } from '../core/job.view';
import { requestIdOf } from '../logging/request-id.decorator';
import { CreateJobDto } from './dto/create-job.dto';
import type { JobsService } from './jobs.service';

type Next = (err?: unknown) => void;

/**
 * `POST /v1/jobs` on the standalone Express server, answered without Nest's per-request pipeline
 * when nothing in it would act: the request gate has already done what the route's guards do
 * (the key, a JSON body, no hostile JSON), and the body is one the compiled check accepts, so the
 * validation pipe would hand it on as it is. The submission is the route's own (`JobsService.submit`),
 * and so is the answer: status 201 (200 for an Idempotency-Key replay), `Location`, the job view
 * as JSON with the headers Express's `res.json` sets. An error goes to `next`: Express's error
 * path ends in the same `DomainExceptionFilter` as the route. Any other request (another path or
 * method, a query string, a body the check does not accept) goes on to the route, untouched.
 *
 * What it saves per submission: Nest's route resolution, its guards, pipes and interceptor chain
 * with their promises, and Express's `res.json`/`res.send` (docs/decisions.md).
 */
export function directSubmit(jobs: JobsService): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  const accepts = compiledCheck(CreateJobDto);
  return (req, res, next) => {
    // Exactly the route's path on the standalone server (no prefix, no query): anything else is the route's.
    if (req.method !== 'POST' || req.url !== '/v1/jobs' || !accepts) return next();
    const body = (req as IncomingMessage & { body?: unknown }).body;
    if (!accepts(body)) return next();
    jobs
      .submit(body as CreateJobDto, optionalHeader(req, 'idempotency-key'), requestIdOf(req))
      .then(({ job, created }) => {
        const text = JSON.stringify(toJobView(job));
        res.statusCode = created ? 201 : 200;
        res.setHeader('Location', `/v1/jobs/${job.id}`);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', Buffer.byteLength(text));
        res.end(text);
      })
      .catch(next);
  };
}
